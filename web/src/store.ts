// What the page knows, in one place; views subscribe and re-render on change.
import type { Alert, FeedPatient, Me, Patient, Position } from "./model";
import type { FeedState } from "./feed";
import { shouldRing, type RingInfo } from "./alerts";
import { lang } from "./i18n";

/** `missed`: how many alerts changed while the page was away (new, acknowledged, resolved...). */
export type Banner = { kind: "lost"; since: number } | { kind: "back"; missed: number; at: number } | null;

const RECOVER_MS = 15_000; // after a reconnect, alert changes in this window count as "missed"

export class Store {
  me: Me | null = null;
  patients = new Map<number, Patient>();
  alerts = new Map<number, Alert>();
  positions = new Map<number, Position>();
  private rang = new Map<number, number>(); // alert id → when it last rang (ms)
  feed: FeedState = "connecting";
  banner: Banner = null;
  tab: "alerts" | "map" = "alerts";
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
    this.emit();
  }

  upsert(a: Alert, info: RingInfo | null = null): void {
    const before = this.alerts.get(a.id);
    if (a.patient) this.notePatients([a.patient]);
    this.countMissed(before, a);
    this.alerts.set(a.id, { ...before, ...a });
    if (info && shouldRing(before, a, info)) this.ring(a);
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
