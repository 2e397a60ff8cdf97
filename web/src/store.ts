// What the page knows, in one place; views subscribe and re-render on change.
import type { Alert, FeedPatient, Me, Overview, Patient, PatientStatus, PendingAction, Position } from "./model";
import type { FeedState } from "./feed";
import { shouldRing, type RingInfo } from "./alerts";
import { lang } from "./i18n";

/** `missed`: how many alerts changed while the page was away (new, acknowledged, resolved...). */
export type Banner = { kind: "lost"; since: number } | { kind: "back"; missed: number; at: number } | null;

const CACHE_KEY = "chumphae.lastKnown";
const PENDING_KEY = "chumphae.pending";

/** What the page last knew, kept on the phone so it opens on a flaky connection (cleared at sign-out). */
export interface Cached {
  me: Me;
  patients: Patient[];
  alerts: Alert[];
  positions: Position[];
  statuses?: PatientStatus[];
  savedAt: number;
}

export function loadCache(): Cached | null {
  try {
    const c = JSON.parse(localStorage.getItem(CACHE_KEY) ?? "null") as Cached | null;
    return c && c.me && Array.isArray(c.alerts) ? c : null;
  } catch {
    return null;
  }
}

export function clearCache(): void {
  localStorage.removeItem(CACHE_KEY);
  localStorage.removeItem(PENDING_KEY);
}

const RECOVER_MS = 15_000; // after a reconnect, alert changes in this window count as "missed"

export class Store {
  me: Me | null = null;
  patients = new Map<number, Patient>();
  alerts = new Map<number, Alert>();
  positions = new Map<number, Position>();
  private rang = new Map<number, number>(); // alert id → when it last rang (ms)
  feed: FeedState = "connecting";
  banner: Banner = null;
  tab: "alerts" | "district" | "map" = "alerts";
  /** What the wide screen's left column shows (the phone shows one tab at a time). */
  side: "alerts" | "district" = "alerts";
  /** Statuses of my patients (mobile API), null until the first answer. */
  statuses: Map<number, PatientStatus> | null = null;
  /** The feed has been live at least once in this page's life. */
  everLive = false;
  /** The list shows what was saved on this phone at this time (not live). */
  cachedAt: number | null = null;
  pending: PendingAction[] = [];
  /** The alert this user just acted on: its card keeps itself in view with the confirmation. */
  justActed: { id: number; at: number } | null = null;
  district: Overview | null = null;
  districtFilter: { village: string | null; status: string | null; volunteer: number | null } = { village: null, status: null, volunteer: null };
  /** Zoom the map to this village's homes (care manager's view). */
  villageFocus: { bbox: [number, number, number, number] | null; lat: number | null; lon: number | null; at: number } | null = null;
  selected: number | null = null;
  focus: { lat: number; lon: number; at: number } | null = null;
  private recoveringUntil = 0;
  private missed = new Set<number>();
  private listeners = new Set<() => void>();
  /** Called for each alert that should ring (sound + notification). */
  onRing: (a: Alert) => void = () => {};

  subscribe(fn: () => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  emit(): void {
    for (const fn of this.listeners) fn();
  }

  patientName(id: number | null | undefined): string {
    if (id == null) return lang() === "th" ? "เกตเวย์" : "Gateway";
    const p = this.patients.get(id);
    if (!p) return lang() === "th" ? `ผู้ป่วย #${id}` : `Patient #${id}`;
    if (lang() === "en" && p.name_en) return p.name_en;
    return `${p.prename ?? ""}${p.name_th}`;
  }

  private recovering(): boolean {
    return Date.now() < this.recoveringUntil;
  }

  private countMissed(before: Alert | undefined, after: Alert): void {
    if (!this.recovering() || this.banner?.kind !== "back") return;
    if (!before || before.status !== after.status || (after.count ?? 1) !== (before.count ?? 1)) {
      this.missed.add(after.id);
      this.banner = { ...this.banner, missed: this.missed.size };
    }
  }

  /** Save what is known now, for the next start without a connection. */
  save(): void {
    if (!this.me) return;
    const c: Cached = { me: this.me, patients: [...this.patients.values()], alerts: [...this.alerts.values()],
      positions: [...this.positions.values()], statuses: this.statuses ? [...this.statuses.values()] : undefined,
      savedAt: Date.now() };
    try {
      localStorage.setItem(CACHE_KEY, JSON.stringify(c));
    } catch {
      /* storage full or blocked: the page still works live */
    }
  }

  restore(c: Cached): void {
    this.me = c.me;
    for (const p of c.patients) this.patients.set(p.id, p);
    for (const a of c.alerts) this.alerts.set(a.id, a);
    for (const p of c.positions) this.positions.set(p.patient_id, p);
    if (c.statuses && !this.statuses) this.statuses = new Map(c.statuses.map((s) => [s.patient_id, s]));
    this.cachedAt = c.savedAt;
  }

  loadPending(): void {
    try {
      const p = JSON.parse(localStorage.getItem(PENDING_KEY) ?? "[]") as PendingAction[];
      this.pending = Array.isArray(p) ? p.map((x) => (x.state === "sending" ? { ...x, state: "queued" } : x)) : [];
    } catch {
      this.pending = [];
    }
  }

  savePending(): void {
    try {
      localStorage.setItem(PENDING_KEY, JSON.stringify(this.pending.filter((p) => p.state === "queued" || p.state === "sending")));
    } catch {
      /* ignore */
    }
  }

  /** Patients to check although nothing is open: band never heard, no band, band off, out of coverage. */
  worries(): { id: number; why: string }[] {
    const out: { id: number; why: string }[] = [];
    if (!this.statuses) return out;
    for (const s of this.statuses.values()) {
      if (s.status === "ok" || s.status === "alert") continue;
      const band = s.band;
      const why = !band ? (lang() === "th" ? "ยังไม่มีสายรัดข้อมือ" : "no band registered")
        : !band.last_seen_at ? (lang() === "th" ? "ยังไม่เคยได้รับสัญญาณสายรัดข้อมือ" : "band has never been heard")
        : lang() === "th" ? s.status_th : s.status_en;
      out.push({ id: s.patient_id, why });
    }
    return out;
  }

  /** Names from the feed for patients the REST list did not have (yet). */
  notePatients(ps: FeedPatient[]): void {
    for (const p of ps) {
      if (!this.patients.has(p.id) && p.name_th) this.patients.set(p.id, { id: p.id, name_th: p.name_th, name_en: p.name_en });
    }
  }

  private ring(a: Alert): void {
    const last = this.rang.get(a.id) ?? 0;
    if (Date.now() - last < 60_000) return; // at most once a minute per alert
    this.rang.set(a.id, Date.now());
    this.onRing(a);
  }

  /** The feed's full state. The first one never rings; a later one (after a drop) rings for what is new. */
  snapshot(alerts: Alert[], positions: Position[], first: boolean): void {
    const next = new Map<number, Alert>();
    for (const a of alerts) {
      const before = this.alerts.get(a.id);
      next.set(a.id, a);
      if (a.patient) this.notePatients([a.patient]);
      if (!first) {
        this.countMissed(before, a);
        if (!before && shouldRing(before, a, { ring: true, attention: a.attention ?? true, event: "opened" })) this.ring(a);
      }
    }
    // Alerts resolved while we were away are not in a snapshot: drop them.
    this.alerts = next;
    for (const p of positions) this.setPosition(p, false);
    this.cachedAt = null;
    this.save();
    this.emit();
  }

  upsert(a: Alert, info: RingInfo | null = null): void {
    const before = this.alerts.get(a.id);
    if (a.patient) this.notePatients([a.patient]);
    this.countMissed(before, a);
    this.alerts.set(a.id, { ...before, ...a });
    if (info && shouldRing(before, a, info)) this.ring(a);
    this.save();
    this.emit();
  }

  setPosition(p: Position, emit = true): void {
    const before = this.positions.get(p.patient_id);
    if (before && before.t > p.t) return;
    this.positions.set(p.patient_id, p);
    if (emit) this.emit();
  }

  setFeed(state: FeedState): void {
    const was = this.feed;
    this.feed = state;
    if (state === "live") this.everLive = true;
    if (state === "lost" && this.banner?.kind !== "lost") {
      this.banner = { kind: "lost", since: Date.now() };
    } else if (state === "live" && was === "lost") {
      this.banner = { kind: "back", missed: 0, at: Date.now() };
      this.missed.clear();
      this.recoveringUntil = Date.now() + RECOVER_MS;
      const at = this.banner.at;
      window.setTimeout(() => {
        if (this.banner?.kind === "back" && this.banner.at === at) {
          this.banner = null;
          this.emit();
        }
      }, 20_000);
    }
    this.emit();
  }
}
