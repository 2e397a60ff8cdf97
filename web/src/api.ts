// The backend's REST API, called with the caregiver's token. Every path the page uses is here.
import type { Alert, Delivery, GeoJSON, Me, Overview, Page, Patient, PatientStatus, TrackPoint } from "./model";
import { lang } from "./i18n";

export class ApiError extends Error {
  constructor(
    public status: number,
    message: string,
  ) {
    super(message);
  }
}

export const PATHS = {
  me: "/api/v1/me",
  patients: "/api/v1/patients",
  alerts: "/api/v1/alerts",
  acknowledge: (id: number) => `/api/v1/alerts/${id}/acknowledge`,
  resolve: (id: number) => `/api/v1/alerts/${id}/resolve`,
  // The map's data: the volunteers' app API (docs/mobile-api.md), shared with the page.
  patientZone: (id: number) => `/api/v1/patients/${id}/zone`,
  patientStatus: (id: number) => `/api/v1/patients/${id}/status`,
  patientPositions: (id: number) => `/api/v1/patients/${id}/positions`,
  mapLayer: (layer: string) => `/api/v1/map/${layer}`,
  myPatients: "/api/v1/mobile/patients",
  district: "/api/v1/district/overview",
  feed: "/ws/alerts",
};

/** Routes another branch adds (delivery channels): asked once; a 404 means "not here", and nothing is shown. */
export const OPTIONAL_PATHS = {
  deliveries: (id: number) => `/api/v1/alerts/${id}/deliveries`,
};

export class Api {
  constructor(private token: string) {}

  private async call<T>(method: string, path: string, body?: unknown): Promise<T> {
    let res: Response;
    try {
      res = await fetch(path, {
        method,
        headers: {
          Authorization: `Bearer ${this.token}`,
          "Accept-Language": lang(),
          ...(body !== undefined ? { "Content-Type": "application/json" } : {}),
        },
        body: body !== undefined ? JSON.stringify(body) : undefined,
      });
    } catch {
      throw new ApiError(0, "network");
    }
    if (!res.ok) {
      let msg = res.statusText;
      try {
        const p = await res.json();
        msg = p.detail || p.title || msg;
      } catch {
        /* not JSON */
      }
      throw new ApiError(res.status, msg);
    }
    if (res.status === 204) return undefined as T;
    return (await res.json()) as T;
  }

  /** GET that answers null when the backend does not offer the route (404/405). */
  private async optional<T>(path: string): Promise<T | null> {
    try {
      return await this.call<T>("GET", path);
    } catch (e) {
      if (e instanceof ApiError && (e.status === 404 || e.status === 405)) return null;
      throw e;
    }
  }

  me(): Promise<Me> {
    return this.call("GET", PATHS.me);
  }

  patients(): Promise<Patient[]> {
    return this.call("GET", `${PATHS.patients}?limit=500`);
  }

  async patientAlerts(patientId: number): Promise<Alert[]> {
    const body = await this.optional<Alert[] | { items?: Alert[]; alerts?: Alert[] }>(
      `${PATHS.alerts}?patient_id=${patientId}&limit=10`,
    );
    if (!body) return [];
    return Array.isArray(body) ? body : body.items ?? body.alerts ?? [];
  }

  acknowledge(id: number): Promise<Alert> {
    return this.call("POST", PATHS.acknowledge(id), {});
  }

  resolve(id: number, outcome: string, note: string): Promise<Alert> {
    return this.call("POST", PATHS.resolve(id), { outcome, note: note || null });
  }

  /** Every patient of mine with status and last position (the volunteers' home screen), all pages. */
  async myStatuses(): Promise<PatientStatus[]> {
    const out: PatientStatus[] = [];
    for (let offset = 0; offset < 5000; ) {
      const page = await this.call<Page<PatientStatus>>("GET", `${PATHS.myPatients}?limit=200&offset=${offset}`);
      out.push(...page.items);
      if (page.next_offset == null) break;
      offset = page.next_offset;
    }
    return out;
  }

  /** Who was told of an alert; null when the backend has no such route (then nothing is shown). */
  async deliveries(id: number): Promise<Delivery[] | null> {
    const body = await this.optional<Delivery[] | { items?: Delivery[]; deliveries?: Delivery[] }>(OPTIONAL_PATHS.deliveries(id));
    if (!body) return null;
    return Array.isArray(body) ? body : body.items ?? body.deliveries ?? [];
  }

  district(filters: { village?: string | null; status?: string | null; volunteer?: number | null }): Promise<Overview> {
    const q = new URLSearchParams();
    if (filters.village != null) q.set("village", filters.village);
    if (filters.status) q.set("status", filters.status);
    if (filters.volunteer != null) q.set("volunteer", String(filters.volunteer));
    const qs = q.toString();
    return this.call("GET", `${PATHS.district}${qs ? `?${qs}` : ""}`);
  }

  patientStatus(id: number): Promise<PatientStatus | null> {
    return this.optional(PATHS.patientStatus(id));
  }

  /** Positions of the last `hours`, oldest first (the newest `limit` of them). */
  async patientTrack(id: number, hours = 2, limit = 300): Promise<TrackPoint[]> {
    const since = new Date(Date.now() - hours * 3600_000).toISOString();
    const body = await this.optional<Page<TrackPoint>>(
      `${PATHS.patientPositions(id)}?since=${encodeURIComponent(since)}&limit=${limit}`,
    );
    return body ? [...body.items].reverse() : []; // the API answers newest first
  }

  patientZone(id: number): Promise<GeoJSON | null> {
    return this.optional(PATHS.patientZone(id));
  }

  mapLayer(layer: string, bbox: [number, number, number, number]): Promise<GeoJSON | null> {
    return this.optional(`${PATHS.mapLayer(layer)}?bbox=${bbox.map((v) => v.toFixed(6)).join(",")}&limit=3000`);
  }
}
