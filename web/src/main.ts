// Start-up: sign in (token from the login form, or once from the URL's #token=), then the feed.
import { render } from "preact";
import { html } from "htm/preact";
import "./styles.css";
import { Api, ApiError } from "./api";
import { Feed } from "./feed";
import { initialLang, lang, saveLang, setLang, t } from "./i18n";
import { MapView } from "./mapview";
import { Store, clearCache, loadCache } from "./store";
import { Login, Main, type Ctx } from "./ui";
import { beep, notify, unlockSound } from "./notify";
import * as notifyStats from "./notify";
import { DISTRICT_ROLES, OVERVIEW_ROLES, type Alert, type PendingAction } from "./model";

const TOKEN_KEY = "chumphae.token";
const root = document.getElementById("app")!;

let feed: Feed | null = null;
let mapView: MapView | null = null;
let timers: number[] = [];

/** Start from an empty root: the static "loading" line of index.html must not stay above the page. */
function mount(vnode: unknown): void {
  if (root.dataset.mounted !== "1") {
    root.replaceChildren();
    root.dataset.mounted = "1";
  }
  render(vnode as Parameters<typeof render>[0], root);
}

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
  for (const id of timers) window.clearInterval(id);
  timers = [];
  document.title = "Smart Chumphae";
  mount(null);
  const again = () => showLogin(error);
  mount(html`<${Login} error=${error} onLang=${() => {
    setLang(lang() === "th" ? "en" : "th");
    saveLang(lang());
    again();
  }} onToken=${(tok: string) => {
    unlockSound();
    void start(tok);
  }} />`);
}

async function start(token: string): Promise<void> {
  const api = new Api(token);
  const store = new Store();
  store.loadPending();
  const cached = localStorage.getItem(TOKEN_KEY) === token ? loadCache() : null;
  try {
    store.me = await api.me();
  } catch (e) {
    if (e instanceof ApiError && e.status === 0 && cached) {
      store.restore(cached); // no connection: the last known alerts, clearly marked "not live"
    } else {
      localStorage.removeItem(TOKEN_KEY);
      showLogin(e instanceof ApiError && e.status === 401 ? t("badToken") : t("serverDown"));
      return;
    }
  }
  if (cached && store.me && cached.me.id !== store.me.id) clearCache();
  else if (cached && !store.cachedAt) store.restore({ ...cached, me: store.me! }); // shown until the feed's snapshot
  localStorage.setItem(TOKEN_KEY, token);
  const me = store.me!;
  const district = DISTRICT_ROLES.includes(me.role);
  if (!localStorage.getItem("chumphae.lang") && (me.lang === "en" || me.lang === "th")) setLang(me.lang);

  store.onRing = (a: Alert) => {
    beep();
    const what = lang() === "en" ? a.type_en ?? a.type : a.type_th ?? a.type;
    const where = lang() === "en" ? a.last_seen?.description_en : a.last_seen?.description_th;
    notify(`${what}: ${store.patientName(a.patient_id)}`, where ?? "", `alert-${a.id}`);
  };

  if (!store.cachedAt || navigator.onLine) {
    try {
      for (const p of await api.patients()) store.patients.set(p.id, p);
    } catch {
      /* names fall back to "patient #id" */
    }
  }

  // Statuses of my patients (band heard? battery? where last seen, in words): now, every minute,
  // and a few seconds after an alert or a position of a patient with an open alert changes.
  let statusTimer: number | undefined;
  let statusBusy = false;
  const refreshStatuses = async () => {
    if (statusBusy || district) return; // a district sees hundreds: the overview has the counts
    statusBusy = true;
    try {
      const all = await api.myStatuses();
      store.statuses = new Map(all.map((s) => [s.patient_id, s]));
      mapView?.takeStatuses(all);
      store.save();
      store.emit();
    } catch {
      /* offline: keep what we had */
    } finally {
      statusBusy = false;
    }
  };
  const soonStatuses = () => {
    window.clearTimeout(statusTimer);
    statusTimer = window.setTimeout(() => void refreshStatuses(), 2500);
  };
  const refreshDistrict = async () => {
    if (!OVERVIEW_ROLES.includes(me.role)) return;
    try {
      store.district = await api.district(store.districtFilter);
      store.emit();
    } catch {
      /* offline: keep what we had */
    }
  };

  // Acknowledge / resolve made offline: queued on the phone, sent in order once the feed is back.
  let flushing = false;
  const flush = async () => {
    if (flushing) return;
    flushing = true;
    try {
      for (const p of store.pending) {
        if (p.state !== "queued") continue;
        p.state = "sending";
        store.emit();
        try {
          const updated = p.kind === "ack" ? await api.acknowledge(p.alertId) : await api.resolve(p.alertId, p.outcome ?? "other", p.note ?? "");
          p.state = "sent";
          if (updated && typeof updated.id === "number") store.upsert(updated);
        } catch (e) {
          if (e instanceof ApiError && e.status === 0) {
            p.state = "queued"; // still offline: try again later
            break;
          }
          p.state = "failed";
          p.message = (e as Error).message;
        }
        store.savePending();
        store.emit();
      }
    } finally {
      flushing = false;
      store.savePending();
      store.emit();
    }
  };
  const act = async (p: Omit<PendingAction, "key" | "at" | "state">): Promise<Alert | null> => {
    const queue = () => {
      store.pending = [...store.pending, { ...p, key: `${p.kind}-${p.alertId}-${Date.now()}`, at: Date.now(), state: "queued" }];
      store.savePending();
      store.emit();
      return null;
    };
    if (store.feed !== "live" && !navigator.onLine) return queue();
    try {
      return p.kind === "ack" ? await api.acknowledge(p.alertId) : await api.resolve(p.alertId, p.outcome ?? "other", p.note ?? "");
    } catch (e) {
      if (e instanceof ApiError && e.status === 0) return queue();
      throw e;
    }
  };
  let first = true; // the first snapshot fills the list quietly; later ones ring for what is new

  const ctx: Ctx = {
    store,
    api,
    signOut: () => {
      localStorage.removeItem(TOKEN_KEY);
      clearCache();
      showLogin();
    },
    switchLang: () => {
      setLang(lang() === "th" ? "en" : "th");
      saveLang(lang());
      store.emit();
    },
    mapView: () => mapView,
    mountMap: (el: HTMLElement) => {
      mapView = new MapView(el, store, api, district);
      if (!district) for (const id of store.patients.keys()) void mapView.loadPatient(id);
      if (store.statuses) mapView.takeStatuses([...store.statuses.values()]);
      mapView.render();
      void mapView.loadLayers(true);
      return mapView;
    },
    act,
    refreshDistrict,
  };

  feed = new Feed(token, {
    snapshot: (alerts, positions, patients) => {
      store.notePatients(patients);
      store.snapshot(alerts, positions, first);
      first = false;
    },
    alert: (a, meta) => {
      store.upsert(a, meta);
      soonStatuses();
    },
    position: (p) => {
      store.setPosition(p);
      if ([...store.alerts.values()].some((a) => a.patient_id === p.patient_id && a.status !== "resolved")) soonStatuses();
    },
    state: (s) => {
      store.setFeed(s);
      if (s === "live") {
        void flush();
        void refreshStatuses();
        void refreshDistrict();
      }
    },
    unauthorized: () => {
      localStorage.removeItem(TOKEN_KEY);
      showLogin(t("badToken"));
    },
  });
  mount(html`<${Main} ctx=${ctx} />`);
  feed.start();
  void refreshStatuses();
  void refreshDistrict();
  timers = [window.setInterval(() => void refreshStatuses(), 60_000), window.setInterval(() => void refreshDistrict(), 60_000)];
  window.addEventListener("online", () => void flush());
  // For the end-to-end tests and for anyone debugging: what the page did, no personal data.
  (window as unknown as Record<string, unknown>).__chumphae = {
    feedState: () => store.feed,
    beeps: () => notifyStats.beepsPlayed,
    notifications: () => notifyStats.notificationsShown,
    alertIds: () => [...store.alerts.keys()],
    pending: () => store.pending.map((p) => ({ kind: p.kind, alertId: p.alertId, state: p.state })),
  };
}

// Installable and resilient: the service worker keeps the page's shell for a flaky village connection.
if ("serviceWorker" in navigator && location.protocol !== "file:") {
  void navigator.serviceWorker.register("/sw.js").catch(() => {});
}

setLang(initialLang());
const token = tokenFromUrl() ?? localStorage.getItem(TOKEN_KEY);
if (token) void start(token);
else showLogin();
