// The page's views (Preact + htm: no JSX build step).
import { html } from "htm/preact";
import { useEffect, useRef, useState } from "preact/hooks";
import type { Api } from "./api";
import type { Alert, PatientStatus, TrackPoint } from "./model";
import type { Store } from "./store";
import type { MapView } from "./mapview";
import { sortAlerts } from "./alerts";
import {
  OUTCOMES, aboutMetres, alertIcon, alertTypeLabel, channelLabel, formatAgo, formatDuration, formatTime, lang, outcomeLabel, roleLabel,
  severityLabel, statusLabel, STATUS_CODES, t,
} from "./i18n";
import { OVERVIEW_ROLES, type Delivery, type PendingAction } from "./model";
import { askNotifications, notificationsUndecided } from "./notify";

export interface Ctx {
  store: Store;
  api: Api;
  signOut: () => void;
  switchLang: () => void;
  mapView: () => MapView | null;
  mountMap: (el: HTMLElement) => MapView;
  /** Acknowledge or resolve now, or queue it when offline (null: queued). */
  act: (p: Omit<PendingAction, "key" | "at" | "state">) => Promise<Alert | null>;
  refreshDistrict: () => Promise<void>;
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

/** Words of a place, in the page's language (the other one if that is all there is). */
function words(o: { description_th?: string | null; description_en?: string | null } | null | undefined): string | null {
  if (!o) return null;
  return (lang() === "en" ? o.description_en || o.description_th : o.description_th || o.description_en) || null;
}

/** Words that say where (a landmark, a distance), not only "outside the safe zone". */
function useful(w: string | null): boolean {
  return w != null && /[0-9๐-๙]/.test(w);
}

export interface Seen {
  t: string | null;
  words: string | null;
  uncertainty: number | null;
  lat: number | null;
  lon: number | null;
  zone: string | null | undefined;
}

/** Where a patient was last seen: the newest position (live feed or the status API), in the best words known. */
export function lastSeen(store: Store, patientId: number | null, a: Alert | null): Seen | null {
  if (patientId == null) {
    if (!a?.last_seen) return null;
    return { t: a.last_triggered_at || a.opened_at, words: words(a.last_seen), uncertainty: a.last_seen.uncertainty_m,
      lat: a.last_seen.lat, lon: a.last_seen.lon, zone: null };
  }
  const live = store.positions.get(patientId);
  const st = store.statuses?.get(patientId)?.last_position ?? null;
  const pos = live && (!st || live.t >= st.t) ? live : st;
  // The server's status words come from the tax map; the live feed may only say "outside the zone".
  const candidates = [words(pos), st && st.t === pos?.t ? words(st) : null, words(st), a ? words(a.last_seen) : null];
  const best = candidates.find((w) => useful(w)) ?? candidates.find((w) => w) ?? null;
  if (pos) return { t: pos.t, words: best, uncertainty: pos.uncertainty_m, lat: pos.lat, lon: pos.lon, zone: pos.zone_status };
  if (a?.last_seen?.lat != null) {
    return { t: a.last_triggered_at || a.opened_at, words: best, uncertainty: a.last_seen.uncertainty_m,
      lat: a.last_seen.lat, lon: a.last_seen.lon, zone: null };
  }
  return null;
}

const OUTSIDE_TYPES = new Set(["wander", "left_zone", "night_wander", "left_coverage", "coverage"]);
const COVERAGE_TYPES = new Set(["left_coverage", "coverage"]);

function SeenLine({ seen, testid }: { seen: Seen | null; testid: string }) {
  if (!seen) return html`<span data-testid=${testid}>${t("unknownPlace")}</span>`;
  return html`<span data-testid=${testid}>
    ${seen.t ? html`<time datetime=${seen.t}>${formatTime(seen.t)}</time> (${formatAgo(seen.t)})` : ""}${seen.words ? html`: <strong>${seen.words}</strong>` : ""}
    ${seen.uncertainty != null ? html`<span class="sure" data-testid=${`${testid}-sure`}> · ${aboutMetres(seen.uncertainty)}</span>` : ""}
  </span>`;
}

/** When the patient left: the detector's `details.outside_since` (the alert opens only after the care plan's
 * dwell, 5 min by default, so its opening would say "outside for" that much too little), else the opening. */
export function outsideSince(a: Alert): string | null {
  const d = a.details ?? {};
  const s = d.outside_since;
  if (typeof s === "string" && !Number.isNaN(Date.parse(s))) return s;
  if (COVERAGE_TYPES.has(a.type)) {
    // Left coverage: outside the zone only when the detector says for how long (`outside_for_s`, up to
    // the alert's time); a band unheard while inside its zone is not "outside for" anything.
    const forS = d.outside_for_s;
    if (typeof forS !== "number" || d.last_status === "inside") return null;
    return new Date(Date.parse(a.last_triggered_at || a.opened_at) - forS * 1000).toISOString();
  }
  return a.opened_at;
}

/** "Outside for 12 min (since 13:53)": since the patient left, while the newest position is not back inside. */
function outsideText(a: Alert, seen: Seen | null): string | null {
  if (!OUTSIDE_TYPES.has(a.type) || a.status === "resolved") return null;
  if (seen?.zone === "inside") return t("backInside");
  const since = outsideSince(a);
  if (since == null) return null;
  return `${t("outsideFor")} ${formatDuration(Date.now() - Date.parse(since))} (${t("since")} ${formatTime(since)})`;
}

export function Login({ onToken, onLang, error }: { onToken: (tok: string) => void; onLang: () => void; error: string | null }) {
  const [tok, setTok] = useState("");
  return html`
    <main class="login">
      <div class="login-top">
        <h1>${t("title")}</h1>
        <button type="button" class="btn small" data-testid="lang" lang=${lang() === "th" ? "en" : "th"} onClick=${onLang}>${t("langSwitch")}</button>
      </div>
      <form
        onSubmit=${(e: Event) => {
          e.preventDefault();
          if (tok.trim()) onToken(tok.trim());
        }}
      >
        <h2>${t("loginTitle")}</h2>
        <p data-testid="login-help">${t("loginHelp")}</p>
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
  const offline = store.feed === "lost" || (store.feed === "connecting" && !navigator.onLine);
  const label = store.feed === "live" ? t("live") : offline ? t("offline") : t("connecting");
  return html`<span class="pill feed-${offline ? "lost" : store.feed}" data-testid="feed-status" data-state=${store.feed}>● ${label}</span>`;
}

function BannerView({ store }: { store: Store }) {
  const b = store.banner;
  const stale = store.cachedAt != null && store.feed !== "live";
  if (stale) {
    return html`<div class="banner lost" role="alert" data-testid="feed-banner" data-kind="stale">
      ⚠ ${t("notLive")} ${formatTime(new Date(store.cachedAt!).toISOString())}</div>`;
  }
  if (!b) return null;
  if (b.kind === "lost") {
    return html`<div class="banner lost" role="alert" data-testid="feed-banner" data-kind="lost">⚠ ${t("feedLost")}
      ${store.alerts.size > 0 ? html`<br /><small>${t("notLive")} ${formatTime(new Date(b.since).toISOString())}</small>` : ""}</div>`;
  }
  const missed = b.missed > 0 ? `${b.missed} ${t("feedBackMissed")}` : t("feedBackNone");
  return html`<div class="banner back" role="status" data-testid="feed-banner" data-kind="back" data-missed=${b.missed}>
    ✓ ${t("feedBack")} (${formatTime(new Date(b.at).toISOString())}) · ${missed}
    <button class="btn small" onClick=${() => { store.banner = null; store.emit(); }} aria-label=${t("close")}>✕</button>
  </div>`;
}

/** What was done offline and what became of it once sent. */
function Outbox({ store }: { store: Store }) {
  const shown = store.pending.filter((p) => p.state !== "sent" || Date.now() - p.at < 10 * 60_000);
  if (!shown.length) return null;
  const label = (p: PendingAction) => `${p.kind === "ack" ? t("acknowledge") : t("resolve")} · ${store.patientName(store.alerts.get(p.alertId)?.patient_id)}`;
  return html`<section class="outbox" data-testid="outbox" aria-label=${t("outbox")} role="status">
    <strong>${t("outbox")}</strong>
    <ul>${shown.map((p) => html`<li data-testid="outbox-item" data-state=${p.state} data-alert-id=${p.alertId}>${
      `${p.state === "sent" ? "✓" : p.state === "failed" ? "✗" : "⏳"} ${label(p)}: ${
        p.state === "sent" ? t("sentOk") : p.state === "failed" ? `${t("sentFailed")} (${p.message ?? ""})` : t("queued")}`}</li>`)}</ul>
    ${shown.every((p) => p.state === "sent" || p.state === "failed") && html`<button class="btn small" onClick=${() => {
      store.pending = store.pending.filter((p) => p.state === "queued" || p.state === "sending");
      store.emit();
    }}>${t("close")}</button>`}
  </section>`;
}

/** What became of one notice: the backend says whether it was delivered (`status`, `delivered`), never
 * whether a person read it; "seen" only when it does say so. */
export function deliveryState(d: Delivery): string {
  if (d.seen_at || d.read_at) return `✓ ${t("seen")}`;
  if (d.delivered || d.status === "sent") return `· ✓ ${t("delivered")}`;
  if (d.status === "queued" || d.status === "sending") return `· ⏳ ${t("sending")}`;
  if (d.status === "cancelled") return `· ${t("cancelled")}`;
  if (d.status) return `· ✗ ${t("notDelivered")}`;
  return "";
}

/** Who was told, once the backend has per-alert deliveries (another branch); nothing when it has not. */
let deliveriesMissing = false;
function Deliveries({ ctx, a }: { ctx: Ctx; a: Alert }) {
  const [list, setList] = useState<Delivery[] | null>(null);
  useEffect(() => {
    if (deliveriesMissing || ctx.store.cachedAt != null) return;
    let live = true;
    void ctx.api.deliveries(a.id).then((d) => {
      if (d === null) deliveriesMissing = true;
      else if (live) setList(d);
    }).catch(() => {});
    return () => { live = false; };
  }, [a.id, a.status, a.escalation_level]);
  if (!list || list.length === 0) return null;
  const who = (d: Delivery) => d.user_name ?? d.name ?? d.recipient ?? d.channel ?? "?";
  return html`<dt>📣</dt><dd data-testid="alert-told">${t("told")}: ${list.map((d, i) => html`${i ? ", " : ""}${who(d)}${
    d.channel ? ` (${channelLabel(d.channel)})` : ""} ${deliveryState(d)}`)}</dd>`;
}

function AlertCard({ a, ctx, onResolve }: { a: Alert; ctx: Ctx; onResolve: (a: Alert) => void }) {
  const { store } = ctx;
  const [busy, setBusy] = useState(false);
  const [err, setErr] = useState<string | null>(null);
  const ref = useRef<HTMLLIElement>(null);
  const when = a.last_triggered_at || a.opened_at;
  const queued = store.pending.find((p) => p.alertId === a.id && (p.state === "queued" || p.state === "sending"));
  const mine = store.justActed?.id === a.id && Date.now() - store.justActed.at < 60_000;
  useEffect(() => {
    // The card moved (acknowledged ones go below open ones): keep it and its confirmation in view.
    if (mine) ref.current?.scrollIntoView({ block: "nearest" });
  }, [mine, a.status]);
  const ack = async () => {
    setBusy(true);
    setErr(null);
    try {
      const updated = await ctx.act({ kind: "ack", alertId: a.id });
      if (updated && typeof updated.id === "number") store.upsert(updated);
      store.justActed = { id: a.id, at: Date.now() };
      store.emit();
    } catch (e) {
      setErr(`${t("actionFailed")}: ${(e as Error).message}`);
    } finally {
      setBusy(false);
    }
  };
  const seen = lastSeen(store, a.patient_id, a);
  const outside = outsideText(a, seen);
  const showOnMap = () => {
    const at = seen ?? (a.last_seen?.lat != null ? { lat: a.last_seen.lat, lon: a.last_seen.lon } : null);
    if (at?.lat != null && at.lon != null) store.focus = { lat: at.lat, lon: at.lon, at: Date.now() };
    store.tab = "map";
    if (a.patient_id != null) store.selected = a.patient_id;
    store.emit();
  };
  return html`
    <li ref=${ref} class="alert-card sev-${a.severity} status-${a.status}" data-testid="alert-card" data-alert-id=${a.id}
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
        <dt>📍</dt><dd data-testid="alert-where">${t("lastSeen")} <${SeenLine} seen=${seen} testid="alert-seen" /></dd>
        ${outside && html`<dt>⏱</dt><dd data-testid="alert-outside">${outside}</dd>`}
        <dt>👤</dt><dd data-testid="alert-state">${a.status === "acknowledged"
          ? `${t("acknowledgedBy")} ${a.acknowledged_by_name ?? `#${a.acknowledged_by ?? "?"}`} ${a.acknowledged_at ? formatTime(a.acknowledged_at) : ""}`
          : queued ? `⏳ ${queued.kind === "ack" ? t("queuedAck") : t("queuedResolve")}` : t("open")}</dd>
        <${Deliveries} ctx=${ctx} a=${a} />
        ${a.late && html`<dt>⏳</dt><dd>${t("late")}</dd>`}
      </dl>
      ${mine && a.status === "acknowledged" && html`<p class="confirm" role="status" data-testid="ack-confirm">✓ ${t("youAcked")}</p>`}
      ${err && html`<p class="error" role="alert">${err}</p>`}
      <div class="actions">
        ${a.status === "open" && !queued && html`<button class="btn primary" data-testid="ack" disabled=${busy} onClick=${ack}>✋ ${t("acknowledge")}</button>`}
        <button class="btn" data-testid="resolve" disabled=${busy || queued?.kind === "resolve"} onClick=${() => onResolve(a)}>✔ ${t("resolve")}</button>
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
      const updated = await ctx.act({ kind: "resolve", alertId: a.id, outcome, note });
      if (updated && typeof updated.id === "number") ctx.store.upsert(updated);
      close();
    } catch (ex) {
      setErr(`${t("actionFailed")}: ${(ex as Error).message}`);
      setBusy(false);
    }
  };
  return html`
    <dialog ref=${ref} class="dialog" data-testid="resolve-dialog" onCancel=${close} aria-labelledby="resolve-title">
      <form onSubmit=${submit}>
        <h2 id="resolve-title">${t("resolveTitle")}</h2>
        <p>${alertIcon(a.type)} ${typeText(a)} · ${ctx.store.patientName(a.patient_id)}</p>
        <fieldset class="outcomes">
          <legend class="sr-only">${t("resolveTitle")}</legend>
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

/** The empty list: "everyone is safe" only when the feed is live and every band is heard. */
function EmptyList({ store }: { store: Store }) {
  if (store.feed !== "live" || store.cachedAt != null) {
    return html`<p class="empty waiting" data-testid="no-alerts" data-safe="unknown">⏳ ${t("waitingLive")}</p>`;
  }
  const d = store.district?.totals;
  if (!store.statuses && d) {
    // A care manager: the district's counts say whether every band is heard.
    const off = d.band_off + d.out_of_coverage;
    if (off === 0) return html`<p class="empty" data-testid="no-alerts" data-safe="yes">✅ ${t("noAlerts")}</p>`;
    return html`<div class="empty" data-testid="no-alerts" data-safe="no"><p>${t("noOpenAlerts")}</p>
      <p class="check">⚠ ${t("butCheck")} ${d.band_off} ${t("cntBandOff")} · ${d.out_of_coverage} ${t("cntCoverage")}</p></div>`;
  }
  const worries = store.worries();
  if (!store.statuses || worries.length) {
    return html`<div class="empty" data-testid="no-alerts" data-safe=${store.statuses ? "no" : "unknown"}>
      <p>${t("noOpenAlerts")}</p>
      ${worries.length > 0 && html`<p class="check">⚠ ${t("butCheck")}</p><ul class="worries" data-testid="worries">
        ${worries.map((w) => html`<li>${store.patientName(w.id)}: ${w.why}</li>`)}</ul>`}
    </div>`;
  }
  return html`<p class="empty" data-testid="no-alerts" data-safe="yes">✅ ${t("noAlerts")}</p>`;
}

function AlertList({ ctx }: { ctx: Ctx }) {
  const [resolving, setResolving] = useState<Alert | null>(null);
  const alerts = sortAlerts(ctx.store.alerts.values());
  return html`
    <section class="alerts" aria-label=${t("alerts")}>
      <${Outbox} store=${ctx.store} />
      ${alerts.length === 0
        ? html`<${EmptyList} store=${ctx.store} />`
        : html`<ul class="alert-list" data-testid="alert-list">
            ${alerts.map((a) => html`<${AlertCard} key=${a.id} a=${a} ctx=${ctx} onResolve=${setResolving} />`)}
          </ul>`}
      ${resolving && html`<${ResolveDialog} a=${resolving} ctx=${ctx} close=${() => setResolving(null)} />`}
    </section>
  `;
}

function PatientPanel({ ctx, id }: { ctx: Ctx; id: number }) {
  const { store, api } = ctx;
  const [status, setStatus] = useState<PatientStatus | null>(store.statuses?.get(id) ?? null);
  const [recent, setRecent] = useState<Alert[]>([]);
  const [track, setTrack] = useState<TrackPoint[]>([]);
  useEffect(() => {
    let live = true;
    void api.patientStatus(id).then((s) => live && setStatus(s)).catch(() => {});
    void api.patientAlerts(id).then((a) => live && setRecent(a)).catch(() => {});
    void ctx.mapView()?.loadPatient(id);
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
  useEffect(() => {
    // The sheet took space from the map: re-read its size and keep the patient in the middle of what is left.
    const mv = ctx.mapView();
    if (!mv) return;
    window.setTimeout(() => mv.centreOn(id), 0);
    return () => void window.setTimeout(() => mv.resize(), 0);
  }, [id]);
  const close = () => {
    store.selected = null;
    store.emit();
  };
  const fromFeed = [...store.alerts.values()].filter((a) => a.patient_id === id);
  const alerts = [...new Map([...recent, ...fromFeed].map((a) => [a.id, a])).values()]
    .sort((a, b) => (b.opened_at > a.opened_at ? 1 : -1)).slice(0, 5);
  const s = status ?? store.statuses?.get(id) ?? null;
  const band = s?.band ?? null;
  const newestOpen = alerts.find((a) => a.status !== "resolved") ?? null;
  const seen = lastSeen(store, id, newestOpen);
  const coverage = store.positions.get(id)?.in_coverage ?? s?.last_position?.in_coverage;
  const zone = seen?.zone;
  const zoneText = coverage === false ? t("noCoverage") : zone === "outside" ? t("outZone") : zone === "inside" ? t("inZone") : t("unknown");
  const bandHeard = band?.last_seen_at;
  return html`
    <aside class="patient-panel" data-testid="patient-panel" aria-labelledby="panel-name">
      <header>
        <h2 id="panel-name">${store.patientName(id)}</h2>
        <button class="btn small" onClick=${close} data-testid="panel-close">✕ ${t("close")}</button>
      </header>
      <dl class="facts">
        <dt>🔋 ${t("battery")}</dt><dd data-testid="panel-battery">${band?.battery_pct != null ? `${Math.round(band.battery_pct)} %` : t("unknown")}</dd>
        <dt>⌚ ${t("worn")}</dt><dd data-testid="panel-worn">${!band ? t("noBand") : band.worn == null ? (bandHeard ? t("unknown") : t("neverHeard")) : band.worn ? t("wornYes") : t("wornNo")}</dd>
        <dt>📍 ${t("lastSeen")}</dt><dd data-testid="panel-last-seen"><${SeenLine} seen=${seen} testid="panel-seen" />${
          seen?.uncertainty != null ? html` <small>${t("circleHint")}</small>` : ""}</dd>
        <dt>${t("status")}</dt><dd data-testid="panel-status">${zoneText}</dd>
        ${s && html`<dt>${t("condition")}</dt><dd data-testid="panel-condition" data-status=${s.status}>${lang() === "en" ? s.status_en : s.status_th}${
          s.reasons.length > 1 ? html`<br /><small>${s.reasons.map((r) => (lang() === "en" ? r.en : r.th)).join(" · ")}</small>` : ""}</dd>`}
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

/** "อสม. มาลี": a volunteer's name often carries the title already; the label is not said twice ("อสม. อสม. มาลี"). */
export function volunteerNames(names: string[]): string {
  const label = t("volunteer");
  return names.map((n) => (n.startsWith(label) ? n : `${label} ${n}`)).join(", ");
}

/** Does the user's name already say their role ("อสม. มาลี", "ผู้จัดการการดูแล (demo CM)")? Then the header
 * does not say it again after the name (a phone, which shows only the role, still does). */
export function roleInName(name: string, role: string): boolean {
  return role !== "" && name.toLocaleLowerCase().includes(role.toLocaleLowerCase());
}

/** The care manager's district: totals, villages with counts, and a filtered patient list. */
function DistrictView({ ctx }: { ctx: Ctx }) {
  const { store } = ctx;
  const d = store.district;
  if (!OVERVIEW_ROLES.includes(store.me?.role ?? "")) return null;
  if (!d) return html`<section class="district" aria-label=${t("districtTitle")}><p class="empty waiting">⏳ ${t("waitingLive")}</p></section>`;
  const f = store.districtFilter;
  const setF = (patch: Partial<typeof f>) => {
    store.districtFilter = { ...f, ...patch };
    void ctx.refreshDistrict();
  };
  const vname = (v: string) => (v === "" ? t("noVillage") : v);
  const chip = (n: number, label: string, cls: string) => html`<span class="chip ${n > 0 ? cls : "zero"}">${n} ${label}</span>`;
  const openVillage = (v: (typeof d.villages)[number]) => {
    store.villageFocus = { bbox: v.bbox, lat: v.lat, lon: v.lon, at: Date.now() };
    store.tab = "map"; // the phone shows the map; a wide screen keeps this list beside it
    store.emit();
  };
  return html`
    <section class="district" aria-labelledby="district-title" data-testid="district">
      <h2 id="district-title">${t("districtTitle")}</h2>
      <p class="totals" data-testid="district-totals">${d.totals.patients} ${t("cntPatients")} ·
        ${chip(d.totals.open_alerts, t("cntAlerts"), "bad")} ${chip(d.totals.out_of_coverage, t("cntCoverage"), "warn")}
        ${chip(d.totals.band_off, t("cntBandOff"), "warn")} ${chip(d.totals.battery_low, t("cntBattery"), "warn")}</p>
      <ul class="villages" data-testid="villages">
        ${d.villages.map((v) => html`<li class="village" data-testid="village" data-village=${v.village}>
          <button class="village-btn" onClick=${() => openVillage(v)}>
            <strong>🏘 ${vname(v.village)}</strong><span class="sr-only"> (${t("showVillage")})</span> <span class="muted">${v.patients} ${t("cntPatients")}</span>
            <span class="chips">${chip(v.open_alerts, t("cntAlerts"), "bad")} ${chip(v.out_of_coverage, t("cntCoverage"), "warn")}
              ${chip(v.band_off, t("cntBandOff"), "warn")} ${chip(v.battery_low, t("cntBattery"), "warn")}</span>
          </button></li>`)}
      </ul>
      <h3>${t("patientsListed")} (${d.total})</h3>
      <div class="filters">
        <label>${t("village")}
          <select data-testid="filter-village" value=${f.village ?? "*"} onChange=${(e: Event) => {
            const v = (e.target as HTMLSelectElement).value;
            setF({ village: v === "*" ? null : v });
          }}>
            <option value="*">${t("allVillages")}</option>
            ${d.villages.map((v) => html`<option value=${v.village}>${vname(v.village)}</option>`)}
          </select></label>
        <label>${t("status")}
          <select data-testid="filter-status" value=${f.status ?? "*"} onChange=${(e: Event) => {
            const v = (e.target as HTMLSelectElement).value;
            setF({ status: v === "*" ? null : v });
          }}>
            <option value="*">${t("allStatuses")}</option>
            ${STATUS_CODES.map((c) => html`<option value=${c}>${statusLabel(c)}</option>`)}
          </select></label>
        <label>${t("volunteer")}
          <select data-testid="filter-volunteer" value=${f.volunteer == null ? "*" : String(f.volunteer)} onChange=${(e: Event) => {
            const v = (e.target as HTMLSelectElement).value;
            setF({ volunteer: v === "*" ? null : Number(v) });
          }}>
            <option value="*">${t("allVolunteers")}</option>
            ${d.volunteers.map((v) => html`<option value=${String(v.id)}>${v.name}</option>`)}
          </select></label>
      </div>
      <ul class="district-patients" data-testid="district-patients">
        ${d.patients.map((p) => html`<li data-testid="district-patient" data-status=${p.status}>
          <button class="patient-btn" onClick=${() => {
            if (!store.patients.has(p.id)) store.patients.set(p.id, { id: p.id, name_th: p.name_th, name_en: p.name_en, home_lat: p.home_lat, home_lon: p.home_lon });
            store.selected = p.id;
            if (p.home_lat != null && p.home_lon != null) store.focus = { lat: p.home_lat, lon: p.home_lon, at: Date.now() };
            store.tab = "map";
            store.emit();
          }}>
            <span class="st st-${p.status}">${lang() === "en" ? p.status_en : p.status_th}</span>
            <strong>${lang() === "en" ? p.name_en || p.name_th : p.name_th}</strong>
            <span class="muted">${vname(p.village)}${p.volunteers.length ? ` · ${volunteerNames(p.volunteers.map((v) => v.name))}` : ""}</span>
          </button></li>`)}
      </ul>
    </section>`;
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
  const manager = OVERVIEW_ROLES.includes(store.me?.role ?? "");
  const role = roleLabel(store.me?.role ?? "");
  useEffect(() => {
    if (store.tab === "map") window.setTimeout(() => ctx.mapView()?.resize(), 0);
  }, [store.tab]);
  useEffect(() => {
    document.title = `${openCount ? `(${openCount}) ` : ""}Smart Chumphae · ${t("alerts")}`;
  }, [openCount, lang()]);
  const setTab = (tab: "alerts" | "district" | "map") => {
    store.tab = tab;
    if (tab !== "map") store.side = tab;
    store.emit();
  };
  // On a wide screen the left column shows alerts or the district; the map is always there.
  const side = store.side;
  const tab = (id: "alerts" | "district" | "map", label: unknown) => html`<button role="tab" id=${`tab-${id}`}
    aria-selected=${store.tab === id} class="tab tab-${id}" data-testid=${`tab-${id}`} onClick=${() => setTab(id)}>${label}</button>`;
  return html`
    <div class="shell tab-${store.tab} side-${side}">
      <header class="top">
        <h1><span class="brand">${t("title")}</span></h1>
        <span class=${`who${roleInName(store.me?.name ?? "", role) ? " role-in-name" : ""}`} data-testid="who"><span class="who-name">👤 ${store.me?.name ?? ""}<span class="who-sep"> · </span></span><span class="who-role" data-testid="role">${role}</span></span>
        <${FeedPill} store=${store} />
        <button class="btn small" data-testid="lang" lang=${lang() === "th" ? "en" : "th"} onClick=${ctx.switchLang}>${lang() === "th" ? "EN" : "ไทย"}</button>
        <button class="btn small" data-testid="sign-out" onClick=${ctx.signOut} title=${t("signOut")}>${t("signOutShort")}</button>
      </header>
      <${BannerView} store=${store} />
      ${notificationsUndecided() && html`<div class="hint-bar"><button class="btn small" data-testid="enable-alerts"
          onClick=${async () => { await askNotifications(); force((x) => x + 1); }}>🔔 ${t("enableAlerts")}</button></div>`}
      <nav class="tabs ${manager ? "three" : ""}" role="tablist" aria-label=${t("menu")}>
        ${tab("alerts", html`🔔 ${manager ? t("alertsShort") : t("alerts")} ${openCount > 0 && html`<span class="count" data-testid="open-count">${openCount}</span>`}`)}
        ${manager && tab("district", html`🏘 ${t("district")}`)}
        ${tab("map", html`🗺 ${t("map")}`)}
      </nav>
      <div class="panes">
        <div class="pane pane-side">
          ${side === "district" && manager ? html`<${DistrictView} ctx=${ctx} />` : html`<${AlertList} ctx=${ctx} />`}
        </div>
        <div class="pane pane-map">
          <div class="map-wrap"><${MapHost} ctx=${ctx} /></div>
          ${store.selected != null && html`<${PatientPanel} key=${store.selected} ctx=${ctx} id=${store.selected} />`}
        </div>
      </div>
    </div>
  `;
}
