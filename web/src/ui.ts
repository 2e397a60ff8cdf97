// The page's views (Preact + htm: no JSX build step).
import { html } from "htm/preact";
import { useEffect, useRef, useState } from "preact/hooks";
import type { Api } from "./api";
import type { Alert, PatientStatus, TrackPoint } from "./model";
import type { Store } from "./store";
import type { MapView } from "./mapview";
import { sortAlerts } from "./alerts";
import {
  OUTCOMES, alertIcon, alertTypeLabel, formatAgo, formatTime, lang, outcomeLabel, severityLabel, t,
} from "./i18n";
import { askNotifications, notificationsUndecided } from "./notify";

export interface Ctx {
  store: Store;
  api: Api;
  signOut: () => void;
  switchLang: () => void;
  mapView: () => MapView | null;
  mountMap: (el: HTMLElement) => MapView;
}

/** Re-render when the store changes, and every 30 s so "5 minutes ago" stays true. */
function useStore(store: Store): number {
  const [n, setN] = useState(0);
  useEffect(() => {
    const off = store.subscribe(() => setN((x) => x + 1));
    const tick = window.setInterval(() => setN((x) => x + 1), 30_000);
    return () => {
      off();
      window.clearInterval(tick);
    };
  }, [store]);
  return n;
}

function typeText(a: Alert): string {
  const server = lang() === "en" ? a.type_en : a.type_th;
  return server && server !== a.type ? server : alertTypeLabel(a.type);
}

function severityText(a: Alert): string {
  const server = lang() === "en" ? a.severity_en : a.severity_th;
  return server && server !== a.severity ? server : severityLabel(a.severity);
}

function whereText(a: Alert): string {
  const ls = a.last_seen;
  const d = lang() === "en" ? ls?.description_en || ls?.description_th : ls?.description_th || ls?.description_en;
  if (d) return d;
  if (ls?.lat != null && ls.lon != null) return `${ls.lat.toFixed(5)}, ${ls.lon.toFixed(5)}`;
  return t("unknownPlace");
}

export function Login({ onToken, error }: { onToken: (tok: string) => void; error: string | null }) {
  const [tok, setTok] = useState("");
  return html`
    <main class="login">
      <h1>${t("title")}</h1>
      <form
        onSubmit=${(e: Event) => {
          e.preventDefault();
          if (tok.trim()) onToken(tok.trim());
        }}
      >
        <h2>${t("loginTitle")}</h2>
        <p>${t("loginHelp")}</p>
        <label for="token">${t("token")}</label>
        <input id="token" name="token" type="password" autocomplete="off" autocapitalize="off" spellcheck=${false}
          value=${tok} onInput=${(e: Event) => setTok((e.target as HTMLInputElement).value)} />
        ${error && html`<p class="error" role="alert">${error}</p>`}
        <button type="submit" class="btn primary big">${t("signIn")}</button>
      </form>
    </main>
  `;
}

function FeedPill({ store }: { store: Store }) {
  const label = store.feed === "live" ? t("live") : store.feed === "lost" ? t("offline") : t("connecting");
  return html`<span class="pill feed-${store.feed}" data-testid="feed-status" data-state=${store.feed}>● ${label}</span>`;
}

function BannerView({ store }: { store: Store }) {
  const b = store.banner;
  if (!b) return null;
  if (b.kind === "lost") {
    return html`<div class="banner lost" role="alert" data-testid="feed-banner" data-kind="lost">⚠ ${t("feedLost")}</div>`;
  }
  const missed = b.missed > 0 ? `${b.missed} ${t("feedBackMissed")}` : t("feedBackNone");
  return html`<div class="banner back" role="status" data-testid="feed-banner" data-kind="back" data-missed=${b.missed}>
    ✓ ${t("feedBack")} (${formatTime(new Date(b.at).toISOString())}) · ${missed}
    <button class="btn small" onClick=${() => { store.banner = null; store.emit(); }} aria-label=${t("close")}>✕</button>
  </div>`;
}

function AlertCard({ a, ctx, onResolve }: { a: Alert; ctx: Ctx; onResolve: (a: Alert) => void }) {
  const { store, api } = ctx;
  const [busy, setBusy] = useState(false);
  const [err, setErr] = useState<string | null>(null);
  const when = a.last_triggered_at || a.opened_at;
  const ack = async () => {
    setBusy(true);
    setErr(null);
    try {
      const updated = await api.acknowledge(a.id);
      if (updated && typeof updated.id === "number") store.upsert(updated);
    } catch (e) {
      setErr(`${t("actionFailed")}: ${(e as Error).message}`);
    } finally {
      setBusy(false);
    }
  };
  const showOnMap = () => {
    if (a.last_seen?.lat != null && a.last_seen.lon != null) {
      store.focus = { lat: a.last_seen.lat, lon: a.last_seen.lon, at: Date.now() };
    }
    store.tab = "map";
    if (a.patient_id != null) store.selected = a.patient_id;
    store.emit();
  };
  return html`
    <li class="alert-card sev-${a.severity} status-${a.status}" data-testid="alert-card" data-alert-id=${a.id}
        data-type=${a.type} data-status=${a.status} data-patient-id=${a.patient_id ?? ""}>
      <div class="alert-head">
        <span class="alert-icon" aria-hidden="true">${alertIcon(a.type)}</span>
        <div class="alert-title">
          <strong class="alert-type">${typeText(a)}</strong>
          <span class="badge sev-${a.severity}">${severityText(a)}</span>
        </div>
      </div>
      <div class="alert-patient" data-testid="alert-patient">${store.patientName(a.patient_id)}</div>
      <dl class="alert-facts">
        <dt>🕒</dt><dd><time datetime=${when}>${formatTime(when)}</time> · ${formatAgo(when)}${(a.count ?? 1) > 1 ? ` · ${a.count} ${t("times")}` : ""}</dd>
        <dt>📍</dt><dd data-testid="alert-where">${t("lastSeen")}: ${whereText(a)}</dd>
        <dt>👤</dt><dd data-testid="alert-state">${a.status === "acknowledged"
          ? `${t("acknowledgedBy")} ${a.acknowledged_by_name ?? `#${a.acknowledged_by ?? "?"}`} ${a.acknowledged_at ? formatTime(a.acknowledged_at) : ""}`
          : t("open")}</dd>
        ${a.late && html`<dt>⏳</dt><dd>${t("late")}</dd>`}
      </dl>
      ${err && html`<p class="error" role="alert">${err}</p>`}
      <div class="actions">
        ${a.status === "open" && html`<button class="btn primary" data-testid="ack" disabled=${busy} onClick=${ack}>✋ ${t("acknowledge")}</button>`}
        <button class="btn" data-testid="resolve" disabled=${busy} onClick=${() => onResolve(a)}>✔ ${t("resolve")}</button>
        <button class="btn ghost" data-testid="show-on-map" onClick=${showOnMap}>🗺 ${t("showOnMap")}</button>
      </div>
    </li>
  `;
}

function ResolveDialog({ a, ctx, close }: { a: Alert; ctx: Ctx; close: () => void }) {
  const [outcome, setOutcome] = useState<string | null>(null);
  const [note, setNote] = useState("");
  const [busy, setBusy] = useState(false);
  const [err, setErr] = useState<string | null>(null);
  const ref = useRef<HTMLDialogElement>(null);
  useEffect(() => {
    const d = ref.current;
    if (d && !d.open) d.showModal?.();
  }, []);
  const submit = async (e: Event) => {
    e.preventDefault();
    if (!outcome) return;
    setBusy(true);
    try {
      const updated = await ctx.api.resolve(a.id, outcome, note);
      if (updated && typeof updated.id === "number") ctx.store.upsert(updated);
      close();
    } catch (ex) {
      setErr(`${t("actionFailed")}: ${(ex as Error).message}`);
      setBusy(false);
    }
  };
  return html`
    <dialog ref=${ref} class="dialog" data-testid="resolve-dialog" onCancel=${close}>
      <form onSubmit=${submit}>
        <h2>${t("resolveTitle")}</h2>
        <p>${alertIcon(a.type)} ${typeText(a)} · ${ctx.store.patientName(a.patient_id)}</p>
        <fieldset class="outcomes">
          ${OUTCOMES.map((o) => html`
            <label class="outcome ${outcome === o.value ? "chosen" : ""}">
              <input type="radio" name="outcome" value=${o.value} checked=${outcome === o.value}
                onChange=${() => setOutcome(o.value)} data-testid=${`outcome-${o.value}`} />
              ${lang() === "en" ? o.en : o.th}
            </label>`)}
        </fieldset>
        <label for="note">${t("note")}</label>
        <textarea id="note" rows="2" value=${note} onInput=${(e: Event) => setNote((e.target as HTMLTextAreaElement).value)}></textarea>
        ${err && html`<p class="error" role="alert">${err}</p>`}
        <div class="actions">
          <button type="button" class="btn" onClick=${close}>${t("cancel")}</button>
          <button type="submit" class="btn primary" data-testid="resolve-confirm" disabled=${!outcome || busy}>${t("confirm")}</button>
        </div>
      </form>
    </dialog>
  `;
}

function AlertList({ ctx }: { ctx: Ctx }) {
  const [resolving, setResolving] = useState<Alert | null>(null);
  const alerts = sortAlerts(ctx.store.alerts.values());
  return html`
    <section class="alerts" aria-label=${t("alerts")}>
      ${alerts.length === 0
        ? html`<p class="empty" data-testid="no-alerts">✅ ${t("noAlerts")}</p>`
        : html`<ul class="alert-list" data-testid="alert-list">
            ${alerts.map((a) => html`<${AlertCard} key=${a.id} a=${a} ctx=${ctx} onResolve=${setResolving} />`)}
          </ul>`}
      ${resolving && html`<${ResolveDialog} a=${resolving} ctx=${ctx} close=${() => setResolving(null)} />`}
    </section>
  `;
}

function PatientPanel({ ctx, id }: { ctx: Ctx; id: number }) {
  const { store, api } = ctx;
  const [status, setStatus] = useState<PatientStatus | null>(null);
  const [recent, setRecent] = useState<Alert[]>([]);
  const [track, setTrack] = useState<TrackPoint[]>([]);
  useEffect(() => {
    let live = true;
    void api.patientStatus(id).then((s) => live && setStatus(s)).catch(() => {});
    void api.patientAlerts(id).then((a) => live && setRecent(a)).catch(() => {});
    void api.patientTrack(id).then((tr) => {
      if (!live) return;
      setTrack(tr);
      ctx.mapView()?.showTrack(tr);
    }).catch(() => {});
    return () => {
      live = false;
      ctx.mapView()?.showTrack([]);
    };
  }, [id]);
  const close = () => {
    store.selected = null;
    store.emit();
  };
  const fromFeed = [...store.alerts.values()].filter((a) => a.patient_id === id);
  const alerts = [...new Map([...recent, ...fromFeed].map((a) => [a.id, a])).values()]
    .sort((a, b) => (b.opened_at > a.opened_at ? 1 : -1)).slice(0, 5);
  const live = store.positions.get(id);
  const stored = status?.last_position ?? null;
  const pos = live && (!stored || live.t >= stored.t) ? live : stored;
  const zone = pos?.zone_status;
  const coverage = pos?.in_coverage;
  const band = status?.band ?? null;
  const zoneText = coverage === false ? t("noCoverage") : zone === "outside" ? t("outZone") : zone === "inside" ? t("inZone") : t("unknown");
  // With no position yet, the newest alert tells where the patient was last seen.
  const newest = alerts.find((a) => a.last_seen?.lat != null);
  const lastSeen = pos?.t ?? band?.last_seen_at ?? (newest ? newest.last_triggered_at || newest.opened_at : null);
  const where = pos
    ? (lang() === "en" ? pos.description_en || pos.description_th : pos.description_th || pos.description_en)
    : newest ? whereText(newest) : null;
  return html`
    <aside class="patient-panel" data-testid="patient-panel" aria-label=${store.patientName(id)}>
      <header>
        <h2>${store.patientName(id)}</h2>
        <button class="btn" onClick=${close} data-testid="panel-close">✕ ${t("close")}</button>
      </header>
      <dl class="facts">
        <dt>${t("status")}</dt><dd data-testid="panel-status">${zoneText}</dd>
        ${status && html`<dt>${t("condition")}</dt><dd data-testid="panel-condition" data-status=${status.status}>${lang() === "en" ? status.status_en : status.status_th}${
          status.reasons.length > 1 ? html`<br /><small>${status.reasons.map((r) => (lang() === "en" ? r.en : r.th)).join(" · ")}</small>` : ""}</dd>`}
        <dt>${t("battery")}</dt><dd data-testid="panel-battery">${band?.battery_pct != null ? `${Math.round(band.battery_pct)} %` : t("unknown")}</dd>
        <dt>${t("worn")}</dt><dd data-testid="panel-worn">${band?.worn == null ? t("unknown") : band.worn ? t("wornYes") : t("wornNo")}</dd>
        <dt>${t("lastSeen")}</dt><dd data-testid="panel-last-seen">${lastSeen ? `${formatTime(lastSeen)} · ${formatAgo(lastSeen)}` : t("unknown")}${where ? html`<br />📍 ${where}` : ""}${pos ? html`<br /><small>${t("accuracy")} ${Math.round(pos.uncertainty_m)} m</small>` : ""}</dd>
      </dl>
      <h3>${t("recentAlerts")}</h3>
      ${alerts.length === 0 ? html`<p>${t("none")}</p>` : html`<ul class="mini-alerts" data-testid="panel-alerts">
        ${alerts.map((a) => html`<li>${alertIcon(a.type)} ${typeText(a)} · ${formatTime(a.opened_at)} · ${a.status === "resolved" ? `${t("resolved")}${a.outcome ? ` (${outcomeLabel(a.outcome)})` : ""}` : a.status === "acknowledged" ? t("acknowledged") : t("open")}</li>`)}
      </ul>`}
      <h3>${t("recentTrack")}</h3>
      <p data-testid="panel-track">${track.length ? `${track.length} ${t("trackPoints")} · ${formatTime(track[0].t)} – ${formatTime(track[track.length - 1].t)}` : t("none")}</p>
    </aside>
  `;
}

function MapHost({ ctx }: { ctx: Ctx }) {
  const ref = useRef<HTMLDivElement>(null);
  useEffect(() => {
    if (ref.current) ctx.mountMap(ref.current);
  }, []);
  return html`<div class="map" ref=${ref} data-testid="map" role="region" aria-label=${t("map")}></div>`;
}

export function Main({ ctx }: { ctx: Ctx }) {
  const { store } = ctx;
  useStore(store);
  const [, force] = useState(0);
  const openCount = [...store.alerts.values()].filter((a) => a.status === "open").length;
  useEffect(() => {
    if (store.tab === "map") window.setTimeout(() => ctx.mapView()?.resize(), 0);
  }, [store.tab]);
  useEffect(() => {
    document.title = `${openCount ? `(${openCount}) ` : ""}Smart Chumphae · ${t("alerts")}`;
  }, [openCount, lang()]);
  const setTab = (tab: "alerts" | "map") => {
    store.tab = tab;
    store.emit();
  };
  return html`
    <div class="shell tab-${store.tab}">
      <header class="top">
        <h1>${t("title")}</h1>
        <${FeedPill} store=${store} />
        <div class="top-actions">
          ${notificationsUndecided() && html`<button class="btn small" data-testid="enable-alerts"
              onClick=${async () => { await askNotifications(); force((x) => x + 1); }}>🔔 ${t("enableAlerts")}</button>`}
          <button class="btn small" data-testid="lang" onClick=${ctx.switchLang}>${t("langSwitch")}</button>
          <button class="btn small" data-testid="sign-out" onClick=${ctx.signOut}>${t("signOut")}</button>
        </div>
        ${store.me && html`<span class="who">👤 ${store.me.name}</span>`}
      </header>
      <${BannerView} store=${store} />
      <nav class="tabs" role="tablist">
        <button role="tab" aria-selected=${store.tab === "alerts"} class="tab" data-testid="tab-alerts" onClick=${() => setTab("alerts")}>
          🔔 ${t("alerts")} ${openCount > 0 && html`<span class="count" data-testid="open-count">${openCount}</span>`}</button>
        <button role="tab" aria-selected=${store.tab === "map"} class="tab" data-testid="tab-map" onClick=${() => setTab("map")}>🗺 ${t("map")}</button>
      </nav>
      <div class="panes">
        <div class="pane pane-alerts"><${AlertList} ctx=${ctx} /></div>
        <div class="pane pane-map">
          <${MapHost} ctx=${ctx} />
          ${store.selected != null && html`<${PatientPanel} key=${store.selected} ctx=${ctx} id=${store.selected} />`}
        </div>
      </div>
    </div>
  `;
}
