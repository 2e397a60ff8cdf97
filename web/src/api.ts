// The backend's REST API, called with the caregiver's token. Every path the page uses is here.
import type { Alert, GeoJSON, Me, Page, Patient, PatientStatus, TrackPoint } from "./model";
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
  feed: "/ws/alerts",
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
