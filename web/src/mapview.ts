// The map: our own tax-map layers drawn as vectors (no tiles), patients, zones, positions, alerts.
import L from "leaflet";
import type { Feature } from "geojson";
import "leaflet/dist/leaflet.css";
import type { Api } from "./api";
import type { Alert, GeoFeature, GeoJSON, PatientStatus, TrackPoint, Village } from "./model";
import type { Store } from "./store";
import { alertIcon, lang, t } from "./i18n";

const CHUMPHAE: L.LatLngExpression = [16.5442, 102.0997];
const LAYERS = ["parcels", "buildings", "routes", "landmarks"] as const;
const MIN_LAYER_ZOOM = 14; // below this the tax map would be thousands of parcels: not loaded
const LANDMARK_LABEL_ZOOM = 17; // landmark names only when there is room for them
const VILLAGE_ZOOM = 17; // opening a village shows its parcels at this zoom (or closer)

function esc(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

const STYLE: Record<string, L.PathOptions> = {
  parcels: { color: "#8a7f6a", weight: 1, fillColor: "#f3efe2", fillOpacity: 0.9 },
  buildings: { color: "#6b5b45", weight: 1, fillColor: "#cdb79a", fillOpacity: 1 },
  routes: { color: "#b5651d", weight: 3, dashArray: "6 5", opacity: 0.9 },
  zone: { color: "#137a3b", weight: 3, fillColor: "#2ea45d", fillOpacity: 0.12 },
  zoneNight: { color: "#0d4f27", weight: 2, dashArray: "4 4", fill: false },
  zoneRoute: { color: "#1f5fbf", weight: 5, opacity: 0.6 },
  track: { color: "#6a1b9a", weight: 4, opacity: 0.8 },
};

function geomToLayer(f: GeoFeature, style: L.PathOptions, renderer: L.Renderer): L.Layer {
  return L.geoJSON(f as unknown as Feature, {
    style: () => ({ ...style, renderer }),
    pointToLayer: (_p, latlng) => L.circleMarker(latlng, { radius: 6, renderer, color: "#444", fillColor: "#fff", fillOpacity: 1, weight: 2 }),
  } as L.GeoJSONOptions);
}

function name(props: Record<string, unknown>): string {
  const th = props.name_th as string | undefined;
  const en = props.name_en as string | undefined;
  return (lang() === "en" ? en || th : th || en) || String(props.code ?? "");
}

export class MapView {
  readonly map: L.Map;
  private canvas = L.canvas({ padding: 0.3 }); // the tax map (overlay pane)
  private care!: L.Canvas; // zones, tracks, positions: drawn above the tax map
  private base: Record<string, L.LayerGroup> = {};
  private zones = L.layerGroup();
  private positions = L.layerGroup();
  private alertPins = L.layerGroup();
  private villages = L.layerGroup();
  private villagesDrawn = "";
  private track = L.layerGroup();
  private loaded: L.LatLngBounds | null = null;
  private zonesLoaded = new Set<number>();
  statuses = new Map<number, PatientStatus>();
  private moveTimer: number | undefined;
  private fitted = false;
  private notice: HTMLElement;
  private patientMarkers = new Map<number, L.CircleMarker>();
  private peek: number | null = null; // the patient whose name is shown while hovered, even if crowded

  constructor(el: HTMLElement, private store: Store, private api: Api, private district = false) {
    this.map = L.map(el, { preferCanvas: true, attributionControl: false, minZoom: district ? 9 : 11, maxZoom: 20, zoomSnap: 0.5 })
      .setView(CHUMPHAE, district ? 13 : 17);
    // Landmark names sit under everything about patients: they never hide a name or an alert pin.
    this.map.createPane("landmarkLabels").style.zIndex = "420";
    this.map.createPane("care").style.zIndex = "450";
    this.map.createPane("villages").style.zIndex = "590"; // under alert pins (600): a name never hides an alert
    this.care = L.canvas({ padding: 0.3, pane: "care" });
    for (const name of LAYERS) this.base[name] = L.layerGroup().addTo(this.map);
    this.zones.addTo(this.map);
    this.track.addTo(this.map);
    this.positions.addTo(this.map);
    this.alertPins.addTo(this.map);
    this.villages.addTo(this.map);
    this.addLegend();
    this.addPatientList();
    this.notice = L.DomUtil.create("div", "map-notice", el);
    this.notice.hidden = true;
    this.map.on("moveend", () => {
      window.clearTimeout(this.moveTimer);
      this.moveTimer = window.setTimeout(() => void this.loadLayers(), 250);
    });
    this.map.on("zoomend", () => {
      this.zoomClasses();
      this.spreadVillages();
      this.declutterLabels();
    });
    this.zoomClasses();
    store.subscribe(() => this.render());
  }

  private addLegend(): void {
    const legend = new L.Control({ position: "topright" });
    legend.onAdd = () => {
      // A folded key: one small button on a phone, never over the patient's details.
      const div = L.DomUtil.create("details", "legend") as HTMLDetailsElement;
      div.setAttribute("data-testid", "map-legend");
      div.open = window.innerWidth >= 900;
      L.DomEvent.disableClickPropagation(div);
      this.legendEl = div;
      this.fillLegend();
      return div;
    };
    legend.addTo(this.map);
  }

  private legendEl: HTMLDetailsElement | null = null;
  private legendLang = "";
  private dotList: HTMLUListElement | null = null;
  private dotButtons = new Map<number, HTMLButtonElement>();

  /** The patients drawn as dots (on the canvas, which a keyboard cannot reach), as buttons: one per dot, in a
   * list shown while one of them has the focus (Tab from the zoom buttons). Focus shows the dot's name on the
   * map; Enter opens the patient's details and centres the map on them, as a tap on the dot does. */
  private addPatientList(): void {
    const ctl = new L.Control({ position: "topleft" });
    ctl.onAdd = () => {
      const nav = L.DomUtil.create("nav", "map-patients");
      nav.setAttribute("data-testid", "map-patients");
      L.DomEvent.disableClickPropagation(nav);
      L.DomEvent.disableScrollPropagation(nav);
      this.dotList = L.DomUtil.create("ul", "", nav) as HTMLUListElement;
      return nav;
    };
    ctl.addTo(this.map);
  }

  /** Keep the list to the dots drawn, changing only what changed (a button keeps its focus across renders). */
  private fillPatientList(dots: { id: number; alert: boolean }[]): void {
    const list = this.dotList;
    if (!list) return;
    list.parentElement?.setAttribute("aria-label", t("mapPatients"));
    const keep = new Set(dots.map((d) => d.id));
    for (const [id, b] of this.dotButtons) {
      if (!keep.has(id)) {
        b.parentElement?.remove();
        this.dotButtons.delete(id);
      }
    }
    dots.forEach(({ id, alert }, i) => {
      let b = this.dotButtons.get(id);
      if (!b) {
        const li = L.DomUtil.create("li", "");
        b = L.DomUtil.create("button", "map-patient", li) as HTMLButtonElement;
        b.type = "button";
        b.dataset.patientId = String(id);
        b.dataset.testid = "map-patient";
        b.addEventListener("click", () => {
          this.select(id);
          this.centreOn(id);
        });
        b.addEventListener("focus", () => this.peekAt(id));
        b.addEventListener("blur", () => this.peekAt(null));
        this.dotButtons.set(id, b);
        list.insertBefore(li, list.children[i] ?? null);
      }
      const name = this.store.patientName(id);
      const text = alert ? `${name} ⚠` : name;
      const label = `${name}${alert ? ` (${t("mapPatientAlert")})` : ""}: ${t("mapPatientShow")}`;
      if (b.textContent !== text) b.textContent = text;
      if (b.getAttribute("aria-label") !== label) b.setAttribute("aria-label", label);
      b.dataset.alert = alert ? "open" : "none";
    });
  }

  private fillLegend(): void {
    if (!this.legendEl || this.legendLang === lang()) return;
    this.legendLang = lang();
    const row = (cls: string, label: string) => `<li><span class="sw ${cls}" aria-hidden="true"></span>${esc(label)}</li>`;
    this.legendEl.innerHTML = `<summary>ℹ️ ${esc(t("legendTitle"))}</summary><ul>` +
      (this.district ? row("sw-village", t("legendVillage")) : "") +
      row("sw-patient", t("legendPatient")) + row("sw-circle", t("legendCircle")) + row("sw-pin", t("legendPin")) +
      row("sw-zone", t("legendZone")) + row("sw-track", t("legendTrack")) +
      row("sw-parcel", t("legendParcel")) + row("sw-building", t("legendBuilding")) +
      row("sw-route", t("legendRoute")) + row("sw-landmark", t("legendLandmark")) + "</ul>";
  }

  private zoomClasses(): void {
    const el = this.map.getContainer();
    el.classList.toggle("show-landmark-labels", this.map.getZoom() >= LANDMARK_LABEL_ZOOM);
    el.classList.toggle("far", this.map.getZoom() < 15);
  }

  /** Statuses from the page's periodic read of my patients (no request per patient). */
  takeStatuses(list: PatientStatus[]): void {
    for (const s of list) this.statuses.set(s.patient_id, s);
    this.render();
  }

  /** Keep a patient in the middle of the visible map (after the bottom sheet took its space). */
  centreOn(id: number): void {
    this.map.invalidateSize({ animate: false });
    const pos = this.lastPosition(id);
    const p = this.store.patients.get(id);
    const at = pos ? [pos.lat, pos.lon] : p?.home_lat != null && p.home_lon != null ? [p.home_lat, p.home_lon] : null;
    if (at) this.map.setView(at as L.LatLngTuple, Math.max(this.map.getZoom(), 17), { animate: false });
    void this.loadLayers();
  }

  /** Re-read the size after the map's container became visible (phone tab switch). */
  resize(): void {
    this.map.invalidateSize();
    window.setTimeout(() => this.spreadVillages(), 0);
    this.render();
    void this.loadLayers();
  }

  async loadLayers(force = false): Promise<void> {
    const box = this.map.getContainer();
    if (box.clientWidth === 0 || box.clientHeight === 0) return; // hidden (phone, other tab): nothing to ask for
    if (this.map.getZoom() < MIN_LAYER_ZOOM) {
      this.showNotice(this.district ? t("tapVillage") : t("zoomIn"));
      this.map.getContainer().dataset.layers = "ready";
      return;
    }
    const view = this.map.getBounds();
    if (!force && this.loaded && this.loaded.contains(view)) return;
    const want = view.pad(0.4);
    const el = this.map.getContainer();
    el.dataset.layers = "loading";
    const bbox: [number, number, number, number] = [want.getWest(), want.getSouth(), want.getEast(), want.getNorth()];
    let truncated = false;
    const got = await Promise.all(LAYERS.map((layer) => this.api.mapLayer(layer, bbox).catch(() => null)));
    // Drawn in a fixed order (parcels under buildings under routes), whatever order they arrived in.
    LAYERS.forEach((layer, i) => {
      const fc = got[i];
      if (!fc) return;
      truncated = truncated || Boolean(fc.truncated);
      this.drawLayer(layer, fc);
    });
    this.loaded = truncated ? null : want;
    el.dataset.layers = "ready";
    if (truncated) this.showNotice(t("zoomIn"));
    else this.showNotice(null);
  }

  private showNotice(text: string | null): void {
    this.notice.hidden = !text;
    this.notice.textContent = text ?? "";
  }

  private drawLayer(layer: string, fc: GeoJSON): void {
    const group = this.base[layer];
    group.clearLayers();
    for (const f of fc.features ?? []) {
      if (!f.geometry) continue;
      if (layer === "landmarks") {
        const [lon, lat] = (f.geometry.type === "Point" ? f.geometry.coordinates : null) as [number, number] ?? [NaN, NaN];
        if (Number.isNaN(lat)) continue;
        const props = f.properties;
        L.circleMarker([lat, lon], { radius: 7, color: "#5b2c83", weight: 2, fillColor: "#fff", fillOpacity: 1, renderer: this.canvas })
          .bindTooltip(name(props), { permanent: true, direction: "right", className: "landmark-label", offset: [8, 0], pane: "landmarkLabels" })
          .on("relabel", (e) => (e.target as L.CircleMarker).setTooltipContent(name(props)))
          .addTo(group);
      } else {
        const lyr = geomToLayer(f, STYLE[layer], this.canvas);
        if (layer !== "routes") (lyr as L.GeoJSON).eachLayer((l) => (l as L.Path).options && ((l as L.Path).options.interactive = false));
        lyr.addTo(group);
      }
    }
  }

  async loadPatient(id: number): Promise<void> {
    const [status, zone] = await Promise.all([
      this.api.patientStatus(id).catch(() => null),
      this.zonesLoaded.has(id) ? Promise.resolve(null) : this.api.patientZone(id).catch(() => null),
    ]);
    if (status) this.statuses.set(id, status);
    if (zone) {
      this.zonesLoaded.add(id);
      this.drawZone(id, zone);
    }
    this.render();
  }

  private drawZone(id: number, zone: GeoJSON): void {
    const features: GeoFeature[] = zone.type === "FeatureCollection" ? zone.features ?? [] : [zone as unknown as GeoFeature];
    for (const f of features) {
      if (!f.geometry) continue;
      const kind = String(f.properties?.kind ?? "");
      const isLine = f.geometry.type.includes("LineString");
      const style = isLine ? STYLE.zoneRoute : kind === "zone_night" ? STYLE.zoneNight : STYLE.zone;
      const lyr = L.geoJSON(f as unknown as Feature, { style: () => ({ ...style, renderer: this.care }), interactive: false } as L.GeoJSONOptions);
      lyr.addTo(this.zones);
    }
    void id;
  }

  showTrack(points: TrackPoint[]): void {
    this.track.clearLayers();
    if (points.length < 2) return;
    L.polyline(points.map((p) => [p.lat, p.lon] as L.LatLngTuple), { ...STYLE.track, interactive: false, renderer: this.care }).addTo(this.track);
  }

  /** Where a patient was last seen: the status if we have it, else their newest alert. */
  lastPosition(id: number): { lat: number; lon: number; r: number } | null {
    const live = this.store.positions.get(id);
    if (live) return { lat: live.lat, lon: live.lon, r: live.uncertainty_m };
    const s = this.statuses.get(id);
    const p = s?.last_position;
    if (p) return { lat: p.lat, lon: p.lon, r: p.uncertainty_m };
    let best: Alert | null = null;
    for (const a of this.store.alerts.values()) {
      if (a.patient_id === id && a.last_seen?.lat != null && (!best || (a.last_triggered_at ?? a.opened_at) > (best.last_triggered_at ?? best.opened_at))) best = a;
    }
    if (best?.last_seen?.lat != null && best.last_seen.lon != null) {
      return { lat: best.last_seen.lat, lon: best.last_seen.lon, r: best.last_seen.uncertainty_m ?? 30 };
    }
    return null;
  }

  /** Landmark labels in the page's language (switching Thai/English needs no reload). */
  private relabel(): void {
    if (this.labelLang === lang()) return;
    this.labelLang = lang();
    this.base.landmarks.eachLayer((l) => void l.fire("relabel"));
  }

  private labelLang = lang();

  render(): void {
    this.fillLegend();
    this.relabel();
    this.positions.clearLayers();
    this.alertPins.clearLayers();
    this.patientMarkers.clear();
    const pts: L.LatLngTuple[] = [];
    const dots: { id: number; alert: boolean }[] = [];
    for (const p of this.store.patients.values()) {
      const pos = this.lastPosition(p.id);
      const hasAlert = [...this.store.alerts.values()].some((a) => a.patient_id === p.id && a.status === "open");
      if (pos) {
        pts.push([pos.lat, pos.lon]);
        const wide = pos.r > 150; // a wide guess: an outline, not a blue sheet over half the map
        L.circle([pos.lat, pos.lon], { radius: Math.max(pos.r, 3), color: "#1f5fbf", weight: wide ? 2 : 1, dashArray: wide ? "6 6" : undefined,
          fillColor: "#1f5fbf", fillOpacity: wide ? 0.04 : 0.12, interactive: false, renderer: this.care })
          .addTo(this.positions);
        const marker = L.circleMarker([pos.lat, pos.lon], {
          radius: 11, color: "#fff", weight: 3, fillColor: hasAlert ? "#c62828" : "#1f5fbf", fillOpacity: 1, renderer: this.care,
        })
          // To the right: the alert pin stands above the spot, the name must not cover it.
          .bindTooltip(esc(this.store.patientName(p.id)),
            { permanent: true, direction: "right", offset: [12, 0], className: "patient-label" })
          .on("click", () => this.select(p.id))
          .on("mouseover", () => this.peekAt(p.id))
          .on("mouseout", () => this.peekAt(null));
        marker.addTo(this.positions);
        this.patientMarkers.set(p.id, marker);
        dots.push({ id: p.id, alert: hasAlert });
      } else if (p.home_lat != null && p.home_lon != null) {
        pts.push([p.home_lat, p.home_lon]);
      }
    }
    for (const a of this.store.alerts.values()) {
      if (a.status === "resolved" || a.last_seen?.lat == null || a.last_seen.lon == null) continue;
      const m = L.marker([a.last_seen.lat, a.last_seen.lon], {
        icon: L.divIcon({ className: `alert-pin sev-${a.severity}`, html: `<span>${alertIcon(a.type)}</span>`, iconSize: [34, 34], iconAnchor: [17, 34] }),
        title: `${this.store.patientName(a.patient_id)}: ${lang() === "en" ? a.type_en ?? a.type : a.type_th ?? a.type}`,
        keyboard: true,
      }).on("click", () => a.patient_id != null && this.select(a.patient_id));
      m.addTo(this.alertPins);
      pts.push([a.last_seen.lat, a.last_seen.lon]);
    }
    this.fillPatientList(dots);
    this.drawVillages();
    this.declutterLabels();
    const visible = this.map.getContainer().clientWidth > 0; // a hidden map (phone, alerts tab) cannot fit
    if (!visible) return;
    const f = this.store.focus;
    const v = this.store.villageFocus;
    if (v) {
      this.store.villageFocus = null;
      this.fitted = true;
      this.map.invalidateSize({ animate: false });
      if (v.bbox) {
        const b = L.latLngBounds([v.bbox[1], v.bbox[0]], [v.bbox[3], v.bbox[2]]).pad(0.2);
        this.map.fitBounds(b, { maxZoom: 18, animate: false });
        if (this.map.getZoom() < VILLAGE_ZOOM - 1) this.map.setZoom(VILLAGE_ZOOM - 1, { animate: false });
      } else if (v.lat != null && v.lon != null) this.map.setView([v.lat, v.lon], VILLAGE_ZOOM, { animate: false });
    } else if (f) {
      this.store.focus = null; // once: a later render must not pull the map back
      this.fitted = true;
      this.map.invalidateSize({ animate: false });
      this.map.setView([f.lat, f.lon], Math.max(this.map.getZoom(), 18), { animate: false });
    } else if (!this.fitted && this.district) {
      // The district's first view: every village by name (parcels come when one is opened).
      const vs = (this.store.district?.villages ?? []).filter((x) => x.lat != null && x.lon != null);
      if (!vs.length) return;
      this.fitted = true;
      // Names are centred on their village and about 240 px wide: leave that room at the edges.
      const size = this.map.getSize();
      const side = Math.min(130, size.x * 0.38), top = Math.min(60, size.y * 0.1);
      // An open key (wide screens) takes the top right corner: keep the names left of it.
      const key = this.legendEl?.open ? this.legendEl.offsetWidth + 10 : 0;
      this.map.fitBounds(L.latLngBounds(vs.map((x) => [x.lat!, x.lon!] as L.LatLngTuple)),
        { maxZoom: MIN_LAYER_ZOOM - 0.5, animate: false, paddingTopLeft: [side, top + 40], paddingBottomRight: [side + key, top + 120] });
      this.clearOfLegend();
    } else if (!this.fitted && pts.length) {
      this.fitted = true;
      this.map.fitBounds(L.latLngBounds(pts).pad(0.15), { maxZoom: 18, animate: false });
    }
  }

  /** The care manager's villages: a name with its counts at the mean of its homes; a tap zooms to its parcels. */
  private drawVillages(): void {
    const d = this.store.district;
    const key = d ? `${lang()}|${JSON.stringify(d.villages)}` : "";
    if (key === this.villagesDrawn) return;
    this.villagesDrawn = key;
    this.villages.clearLayers();
    for (const v of d?.villages ?? []) {
      if (v.lat == null || v.lon == null) continue;
      const name = v.village || t("noVillage");
      const bad = v.open_alerts > 0 ? ` <b class="vc bad">🔔${v.open_alerts}</b>` : "";
      const warn = v.out_of_coverage + v.band_off + v.battery_low > 0
        ? ` <b class="vc warn">⚠${v.out_of_coverage + v.band_off + v.battery_low}</b>` : "";
      L.marker([v.lat, v.lon], {
        pane: "villages", keyboard: true, title: name,
        icon: L.divIcon({ className: "village-label", html: `<span>🏘 ${esc(name)}${bad}${warn}</span>`, iconSize: undefined as unknown as L.PointExpression }),
      }).on("click", () => this.openVillage(v)).addTo(this.villages);
    }
    this.spreadVillages();
  }

  /** Village names must not lie on one another: nudge a label down until it is clear of those placed. */
  private spreadVillages(): void {
    const spans: HTMLElement[] = [];
    this.villages.eachLayer((l) => {
      const span = (l as L.Marker).getElement()?.firstElementChild as HTMLElement | null;
      if (span) spans.push(span);
    });
    for (const s of spans) s.style.marginTop = "0px";
    const placed: DOMRect[] = [];
    const hits = (r: DOMRect, dy: number) => placed.some((p) =>
      r.left < p.right + 2 && r.right > p.left - 2 && r.top + dy < p.bottom + 2 && r.bottom + dy > p.top - 2);
    for (const s of spans.sort((a, b) => a.getBoundingClientRect().top - b.getBoundingClientRect().top)) {
      const r = s.getBoundingClientRect();
      if (!r.width) continue; // not laid out (hidden map)
      let dy = 0;
      while (hits(r, dy) && dy < 400) dy += r.height / 2;
      s.style.marginTop = `${dy}px`;
      placed.push(new DOMRect(r.left, r.top + dy, r.width, r.height));
    }
  }

  /** A village name still under the open key (a long name with its counts): move the map left, if the
   * names on the left have room for it. */
  private clearOfLegend(): void {
    const key = this.legendEl;
    if (!key?.open) return;
    const k = key.getBoundingClientRect();
    const box = this.map.getContainer().getBoundingClientRect();
    let dx = 0, room = Infinity;
    this.villages.eachLayer((l) => {
      const r = (l as L.Marker).getElement()?.firstElementChild?.getBoundingClientRect();
      if (!r?.width) return;
      room = Math.min(room, r.left - box.left - 4);
      if (r.bottom > k.top - 4 && r.top < k.bottom + 4) dx = Math.max(dx, r.right - k.left + 8);
    });
    if (dx > 0 && dx <= room) this.map.panBy([dx, 0], { animate: false });
  }

  /** Patient names must not lie on one another: a name that would cover one already shown is hidden
   * (the hovered, then the selected, then patients with an open alert come first); hovering or tapping
   * its dot shows it. */
  declutterLabels(): void {
    const rank = (id: number) => id === this.peek ? 0 : id === this.store.selected ? 1
      : [...this.store.alerts.values()].some((a) => a.patient_id === id && a.status === "open") ? 2 : 3;
    const order = [...this.patientMarkers.entries()].sort((a, b) => rank(a[0]) - rank(b[0]));
    const placed: DOMRect[] = [];
    for (const [id, marker] of order) {
      const el = marker.getTooltip()?.getElement();
      if (!el) continue;
      el.dataset.patientId = String(id);
      el.classList.remove("crowded");
      const r = el.getBoundingClientRect();
      if (!r.width) continue; // not drawn (hidden map, or zoomed out: names are off)
      if (placed.some((p) => r.left < p.right + 2 && r.right > p.left - 2 && r.top < p.bottom + 2 && r.bottom > p.top - 2)) {
        el.classList.add("crowded");
        continue;
      }
      placed.push(r);
    }
  }

  private peekAt(id: number | null): void {
    this.peek = id;
    this.declutterLabels();
  }

  openVillage(v: Village): void {
    this.store.villageFocus = { bbox: v.bbox, lat: v.lat, lon: v.lon, at: Date.now() };
    this.render();
  }

  private select(id: number): void {
    this.store.selected = id;
    this.store.emit();
  }
}
