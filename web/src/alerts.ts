// The alert list's order and the rule for what rings.
import type { Alert } from "./model";
import { severityRank } from "./i18n";

function time(a: Alert): number {
  const t = Date.parse(a.last_triggered_at || a.opened_at);
  return Number.isNaN(t) ? 0 : t;
}

/**
 * Open alerts for the list: those nobody has acknowledged yet first, then the most
 * severe, then the newest. Resolved alerts are not shown.
 */
export function sortAlerts(alerts: Iterable<Alert>): Alert[] {
  return [...alerts]
    .filter((a) => a.status !== "resolved")
    .sort((a, b) => {
      const ackA = a.status === "open" ? 0 : 1;
      const ackB = b.status === "open" ? 0 : 1;
      if (ackA !== ackB) return ackA - ackB;
      const sev = severityRank(b.severity) - severityRank(a.severity);
      if (sev !== 0) return sev;
      return time(b) - time(a);
    });
}

export interface RingInfo {
  ring: boolean;
  attention: boolean;
  event: string;
}

/**
 * Ring (sound + notification) for a high or critical alert that this user must act on now
 * (the server's `ring` and `attention`), when it is new to the page, reached this user by
 * escalation, or changed state. A re-trigger of an alert already on screen stays quiet, and
 * late news never rings (the server sends ring=false for it).
 */
export function shouldRing(before: Alert | undefined, after: Alert, info: RingInfo): boolean {
  if (!info.ring || !info.attention || after.status !== "open" || after.late) return false;
  if (severityRank(after.severity) < severityRank("high")) return false;
  if (info.event === "retriggered") return !before || before.status !== after.status;
  return true;
}
