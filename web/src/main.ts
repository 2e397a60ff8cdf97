// Start-up: sign in (token from the login form, or once from the URL's #token=), then the feed.
import { render } from "preact";
import { html } from "htm/preact";
import "./styles.css";
import { Api, ApiError } from "./api";
import { Feed } from "./feed";
import { initialLang, lang, saveLang, setLang, t } from "./i18n";
import { MapView } from "./mapview";
import { Store } from "./store";
import { Login, Main, type Ctx } from "./ui";
import { beep, notify, unlockSound } from "./notify";
import * as notifyStats from "./notify";
import type { Alert } from "./model";

const TOKEN_KEY = "chumphae.token";
const root = document.getElementById("app")!;

let feed: Feed | null = null;
let mapView: MapView | null = null;

/** A token handed over in the link (`#token=` preferred: a fragment never reaches a server log). */
function tokenFromUrl(): string | null {
  const hash = /(?:^#|&)token=([^&]+)/.exec(location.hash);
  const query = new URLSearchParams(location.search).get("token");
  if (!hash && !query) return null;
  history.replaceState(null, "", location.pathname); // never leave it in the address bar or history
  return hash ? decodeURIComponent(hash[1]) : query;
}

function showLogin(error: string | null = null): void {
  feed?.stop();
  feed = null;
  mapView = null;
  render(null, root);
  render(html`<${Login} error=${error} onToken=${(tok: string) => {
    unlockSound();
    void start(tok);
  }} />`, root);
}

async function start(token: string): Promise<void> {
  const api = new Api(token);
  const store = new Store();
  try {
    store.me = await api.me();
  } catch (e) {
    localStorage.removeItem(TOKEN_KEY);
    showLogin(e instanceof ApiError && e.status === 401 ? t("badToken") : t("serverDown"));
    return;
  }
  localStorage.setItem(TOKEN_KEY, token);
  if (!localStorage.getItem("chumphae.lang") && (store.me.lang === "en" || store.me.lang === "th")) setLang(store.me.lang);

  store.onRing = (a: Alert) => {
    beep();
    const what = lang() === "en" ? a.type_en ?? a.type : a.type_th ?? a.type;
    const where = lang() === "en" ? a.last_seen?.description_en : a.last_seen?.description_th;
    notify(`${what}: ${store.patientName(a.patient_id)}`, where ?? "", `alert-${a.id}`);
  };

  try {
    for (const p of await api.patients()) store.patients.set(p.id, p);
  } catch {
    /* names fall back to "patient #id" */
  }
  let first = true; // the first snapshot fills the list quietly; later ones ring for what is new

  const ctx: Ctx = {
    store,
    api,
    signOut: () => {
      localStorage.removeItem(TOKEN_KEY);
      showLogin();
    },
    switchLang: () => {
      setLang(lang() === "th" ? "en" : "th");
      saveLang(lang());
      store.emit();
    },
    mapView: () => mapView,
    mountMap: (el: HTMLElement) => {
      mapView = new MapView(el, store, api);
      for (const id of store.patients.keys()) void mapView.loadPatient(id);
      mapView.render();
      void mapView.loadLayers(true);
      return mapView;
    },
  };

  feed = new Feed(token, {
    snapshot: (alerts, positions, patients) => {
      store.notePatients(patients);
      store.snapshot(alerts, positions, first);
      first = false;
    },
    alert: (a, meta) => {
      store.upsert(a, meta);
    },
    position: (p) => store.setPosition(p),
    state: (s) => store.setFeed(s),
    unauthorized: () => {
      localStorage.removeItem(TOKEN_KEY);
      showLogin(t("badToken"));
    },
  });
  render(html`<${Main} ctx=${ctx} />`, root);
  feed.start();
  // For the end-to-end tests and for anyone debugging: what the page did, no personal data.
  (window as unknown as Record<string, unknown>).__chumphae = {
    feedState: () => store.feed,
    beeps: () => notifyStats.beepsPlayed,
    notifications: () => notifyStats.notificationsShown,
    alertIds: () => [...store.alerts.keys()],
  };
}

setLang(initialLang());
const token = tokenFromUrl() ?? localStorage.getItem(TOKEN_KEY);
if (token) void start(token);
else showLogin();
