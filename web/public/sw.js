// Smart Chumphae service worker: keeps the page's shell (index + hashed bundle + icons) so the page
// opens on a flaky village connection. Never caches the API or the feed: alerts the page shows
// while offline come from its own "last known" copy and are marked "not live".
const SHELL = "chumphae-shell-v1";
const CORE = ["/", "/manifest.webmanifest", "/icon.svg", "/icon-192.png", "/icon-512.png"];

async function precache() {
  const cache = await caches.open(SHELL);
  const index = await fetch("/", { cache: "no-cache" });
  if (!index.ok) return;
  const text = await index.clone().text();
  await cache.put("/", index);
  // The bundle's hashed files named by this index.
  const assets = [...text.matchAll(/(?:src|href)="(\/assets\/[^"]+)"/g)].map((m) => m[1]);
  await cache.addAll([...new Set([...CORE.slice(1), ...assets])]);
}

self.addEventListener("install", (event) => {
  event.waitUntil(precache().then(() => self.skipWaiting()));
});

self.addEventListener("activate", (event) => {
  event.waitUntil((async () => {
    for (const key of await caches.keys()) if (key !== SHELL) await caches.delete(key);
    await self.clients.claim();
  })());
});

self.addEventListener("fetch", (event) => {
  const req = event.request;
  if (req.method !== "GET") return;
  const url = new URL(req.url);
  if (url.origin !== self.location.origin) return;
  if (url.pathname.startsWith("/api/") || url.pathname.startsWith("/ws/") || url.pathname === "/sw.js") return;
  if (req.mode === "navigate" || url.pathname === "/") {
    // The page: the network first (a new build is picked up), the saved shell when offline.
    event.respondWith((async () => {
      try {
        const res = await fetch(req);
        if (res.ok) {
          const cache = await caches.open(SHELL);
          await cache.put("/", res.clone());
        }
        return res;
      } catch {
        return (await caches.match("/")) || Response.error();
      }
    })());
    return;
  }
  if (url.pathname.startsWith("/assets/") || CORE.includes(url.pathname)) {
    // Hashed bundle files never change: the saved copy first.
    event.respondWith((async () => {
      const hit = await caches.match(req);
      if (hit) return hit;
      const res = await fetch(req);
      if (res.ok) (await caches.open(SHELL)).put(req, res.clone());
      return res;
    })());
  }
});
