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

/** Ring (sound + notification) for a new high or critical alert that is still open and not late. */
export function shouldRing(before: Alert | undefined, after: Alert): boolean {
  if (after.status !== "open" || after.late) return false;
  if (severityRank(after.severity) < severityRank("high")) return false;
  // New to this page, or re-opened after it was resolved; a re-trigger of an open alert stays quiet.
  return !before || before.status === "resolved";
}
