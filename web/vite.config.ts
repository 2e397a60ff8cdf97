// Builds the caregiver page into chumphae/web/dist (served by chumphae/web/serve.py).
// Everything the page needs is bundled: no CDN, no web fonts, no map tiles.
import { defineConfig } from "vite";

export default defineConfig({
  root: ".",
  base: "/",
  build: {
    outDir: "../chumphae/web/dist",
    emptyOutDir: true,
    assetsDir: "assets",
    sourcemap: false,
    target: "es2020",
    chunkSizeWarningLimit: 400,
  },
  server: {
    // `npm run dev` against a local backend (chumphae serve on :8080).
    proxy: { "/api": { target: "http://127.0.0.1:8080", ws: true } },
  },
});
