// The shapes the page reads from the backend (see chumphae/alert/render.py for an alert).

export interface LastSeen {
  lat: number | null;
  lon: number | null;
  uncertainty_m: number | null;
  parcel_code?: string | null;
  building_code?: string | null;
  description_th?: string | null;
  description_en?: string | null;
}

export interface Alert {
  id: number;
  patient_id: number | null;
  type: string;
  type_th?: string;
  type_en?: string;
  severity: string;
  severity_th?: string;
  severity_en?: string;
  status: "open" | "acknowledged" | "resolved" | string;
  opened_at: string;
  last_triggered_at?: string | null;
  received_at?: string | null;
  count?: number;
  late?: boolean;
  acknowledged_by?: number | null;
  acknowledged_by_name?: string | null;
  acknowledged_at?: string | null;
  resolved_by?: number | null;
  resolved_by_name?: string | null;
  resolved_at?: string | null;
  outcome?: string | null;
  attention?: boolean;
  escalation_level?: number;
  patient?: FeedPatient | null;
  last_seen?: LastSeen | null;
  /** The detector's facts (chumphae/alert/render.py): a wander's `outside_since`, `outside_for_s`… */
  details?: Record<string, unknown> | null;
}

/** A patient as the feed names them (only the user's own patients reach them). */
export interface FeedPatient {
  id: number;
  name_th: string | null;
  name_en: string | null;
}

/** A position as the feed shows it (chumphae/ingest/service.py position_dict). */
export interface Position {
  patient_id: number;
  t: string;
  lat: number;
  lon: number;
  uncertainty_m: number;
  in_coverage?: boolean | null;
  zone_status?: string | null;
  parcel_code?: string | null;
  building_code?: string | null;
  description_th?: string | null;
  description_en?: string | null;
}

export interface Me {
  id: number;
  name: string;
  role: string;
  lang: string;
}

export interface Patient {
  id: number;
  prename?: string | null;
  name_th: string;
  name_en?: string | null;
  home_lat?: number | null;
  home_lon?: number | null;
  adl_group?: string | null;
}

/** A patient's band as the mobile API gives it (chumphae/api/routes/mobile.py BandOut). */
export interface Band {
  id: number;
  address: string;
  active: boolean;
  battery_pct: number | null;
  worn: boolean | null;
  charging: boolean | null;
  last_seen_at: string | null;
}

export interface StatusReason {
  code: string;
  th: string;
  en: string;
}

/** A patient's status: `GET /api/v1/patients/{id}/status` (chumphae/api/routes/mobile.py StatusOut). */
export interface PatientStatus {
  patient_id: number;
  status: "alert" | "out_of_coverage" | "band_off" | "battery_low" | "ok" | string;
  status_th: string;
  status_en: string;
  reasons: StatusReason[];
  open_alerts: string[];
  band: Band | null;
  last_position: TrackPoint | null;
}

/** One position: `GET /api/v1/patients/{id}/positions` items (chumphae/ingest/service.py position_dict). */
export interface TrackPoint {
  t: string;
  lat: number;
  lon: number;
  uncertainty_m: number;
  source?: string;
  in_coverage?: boolean | null;
  zone_status?: string | null;
  description_th?: string | null;
  description_en?: string | null;
}

/** A list page of the mobile API. */
export interface Page<T> {
  items: T[];
  total: number;
  limit: number;
  offset: number;
  next_offset: number | null;
}

export type GeoJSON = { type: string; features?: GeoFeature[]; [k: string]: unknown };
export type GeoFeature = {
  type: "Feature";
  id?: string | number | null;
  properties: Record<string, unknown>;
  geometry: { type: string; coordinates: unknown } | null;
};

export function isOpen(a: Alert): boolean {
  return a.status !== "resolved";
}

/** The care manager's district overview: `GET /api/v1/district/overview` (chumphae/api/routes/district.py). */
export interface Counts {
  patients: number;
  open_alerts: number;
  alert_patients: number;
  out_of_coverage: number;
  band_off: number;
  battery_low: number;
}

export interface Village extends Counts {
  village: string;
  lat: number | null;
  lon: number | null;
  bbox: [number, number, number, number] | null;
}

export interface DistrictPatient {
  id: number;
  name_th: string;
  name_en: string | null;
  village: string;
  status: string;
  status_th: string;
  status_en: string;
  reasons: StatusReason[];
  open_alerts: string[];
  volunteers: { id: number; name: string }[];
  battery_pct: number | null;
  home_lat: number | null;
  home_lon: number | null;
}

export interface Overview {
  totals: Counts;
  villages: Village[];
  volunteers: { id: number; name: string }[];
  patients: DistrictPatient[];
  total: number;
}

/** Who was told of an alert (another branch's `GET /api/v1/alerts/{id}/deliveries`; read defensively). */
export interface Delivery {
  channel?: string;
  user_name?: string | null;
  recipient?: string | null;
  name?: string | null;
  status?: string;
  delivered?: boolean;
  seen_at?: string | null;
  read_at?: string | null;
  delivered_at?: string | null;
}

/** An acknowledge or resolve made while offline, sent once the page is back. */
export interface PendingAction {
  key: string;
  kind: "ack" | "resolve";
  alertId: number;
  outcome?: string;
  note?: string;
  at: number;
  state: "queued" | "sending" | "sent" | "failed";
  message?: string;
}

export const DISTRICT_ROLES = ["care_manager", "hospital", "admin"];
export const OVERVIEW_ROLES = ["care_manager", "admin"];
