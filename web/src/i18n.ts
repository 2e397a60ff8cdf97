// Thai (default) and English text for everything a caregiver reads; times in Asia/Bangkok.

export type Lang = "th" | "en";

const TEXT = {
  title: { th: "Smart Chumphae", en: "Smart Chumphae" },
  loginTitle: { th: "เข้าสู่ระบบ", en: "Sign in" },
  loginHelp: {
    th: "ใส่รหัสเข้าใช้ (โทเคน) ที่ได้รับจากเจ้าหน้าที่โรงพยาบาลหรือ อสม. ของท่าน หากไม่มีหรือหาไม่พบ ให้โทรถามเจ้าหน้าที่ผู้ดูแลระบบ",
    en: "Enter the sign-in code (token) the hospital staff or your village health volunteer gave you. If you do not have it, ask them for a new one.",
  },
  loading: { th: "กำลังเปิด…", en: "Opening…" },
  token: { th: "โทเคน", en: "Token" },
  signIn: { th: "เข้าสู่ระบบ", en: "Sign in" },
  signOut: { th: "ออกจากระบบ", en: "Sign out" },
  signOutShort: { th: "ออก", en: "Sign out" },
  badToken: { th: "โทเคนไม่ถูกต้อง ลองอีกครั้ง", en: "That token was not accepted. Try again." },
  serverDown: { th: "ติดต่อเซิร์ฟเวอร์ไม่ได้", en: "Cannot reach the server." },
  langSwitch: { th: "English", en: "ภาษาไทย" },
  alerts: { th: "การแจ้งเตือน", en: "Alerts" },
  alertsShort: { th: "แจ้งเตือน", en: "Alerts" },
  map: { th: "แผนที่", en: "Map" },
  noAlerts: { th: "ไม่มีการแจ้งเตือนที่ค้างอยู่ ทุกคนปลอดภัย", en: "No open alerts. Everyone is safe." },
  noOpenAlerts: { th: "ไม่มีการแจ้งเตือนที่ค้างอยู่", en: "No open alerts." },
  waitingLive: { th: "กำลังรับข้อมูลสด… ยังบอกไม่ได้ว่าทุกคนปลอดภัย", en: "Waiting for live data… cannot say yet whether everyone is safe." },
  butCheck: { th: "แต่ควรตรวจสอบ:", en: "But check:" },
  neverHeard: { th: "ยังไม่เคยได้รับสัญญาณสายรัดข้อมือ", en: "band has never been heard" },
  noBand: { th: "ยังไม่มีสายรัดข้อมือ", en: "no band registered" },
  notLive: { th: "ไม่ใช่ข้อมูลสด: แสดงการแจ้งเตือนล่าสุดที่ทราบเมื่อ", en: "Not live: showing the last known alerts from" },
  queued: { th: "ยังไม่ได้ส่ง (ออฟไลน์) จะส่งเมื่อกลับมาออนไลน์", en: "Not sent yet (offline): will be sent when back online" },
  queuedAck: { th: "รับทราบ (รอส่ง)", en: "Acknowledge (waiting to send)" },
  queuedResolve: { th: "ปิดเรื่อง (รอส่ง)", en: "Resolve (waiting to send)" },
  sentOk: { th: "ส่งแล้ว", en: "Sent" },
  sentFailed: { th: "ส่งไม่สำเร็จ", en: "Could not send" },
  outbox: { th: "รายการที่ทำตอนออฟไลน์", en: "Done while offline" },
  youAcked: { th: "คุณรับทราบแล้ว ผู้ดูแลคนอื่นจะเห็นว่าคุณรับเรื่องนี้", en: "You acknowledged it. Other caregivers now see you took it." },
  outsideFor: { th: "ออกนอกเขตมาแล้ว", en: "Outside for" },
  since: { th: "ตั้งแต่", en: "since" },
  backInside: { th: "ล่าสุดกลับเข้าเขตปลอดภัยแล้ว", en: "Latest position is back inside the safe zone" },
  withinAbout: { th: "อยู่ภายในรัศมีประมาณ", en: "within about" },
  circleHint: { th: "(วงกลมสีฟ้าบนแผนที่)", en: "(the blue circle on the map)" },
  told: { th: "แจ้งไปยัง", en: "Told" },
  seen: { th: "เห็นแล้ว", en: "seen" },
  notSeen: { th: "ยังไม่เห็น", en: "not seen yet" },
  delivered: { th: "ส่งถึงแล้ว", en: "delivered" },
  sending: { th: "กำลังส่ง", en: "sending" },
  notDelivered: { th: "ส่งไม่สำเร็จ", en: "not delivered" },
  cancelled: { th: "ยกเลิกแล้ว", en: "cancelled" },
  legendTitle: { th: "สัญลักษณ์บนแผนที่", en: "Map key" },
  legendPatient: { th: "ผู้ป่วย (สีแดง: มีการแจ้งเตือน)", en: "Patient (red: has an alert)" },
  mapPatients: { th: "ผู้ป่วยบนแผนที่", en: "Patients on the map" },
  mapPatientShow: { th: "ดูรายละเอียดและตำแหน่งบนแผนที่", en: "show details and place on the map" },
  mapPatientAlert: { th: "มีการแจ้งเตือน", en: "has an alert" },
  legendCircle: { th: "วงกลมสีฟ้า: ผู้ป่วยอยู่ที่ไหนสักแห่งในวงนี้", en: "Blue circle: the patient is somewhere inside it" },
  legendPin: { th: "หมุดแจ้งเตือน: ตำแหน่งที่เกิดเหตุ", en: "Alert pin: where the alert happened" },
  legendVillage: { th: "หมู่บ้าน (แตะเพื่อซูม)", en: "Village (tap to zoom in)" },
  legendTrack: { th: "เส้นทางล่าสุด", en: "Recent track" },
  tapVillage: { th: "แตะชื่อหมู่บ้านเพื่อดูแปลงที่ดิน", en: "Tap a village name to see its parcels" },
  district: { th: "หมู่บ้าน", en: "Villages" },
  districtTitle: { th: "ภาพรวมอำเภอ", en: "District at a glance" },
  allVillages: { th: "ทุกหมู่บ้าน", en: "All villages" },
  noVillage: { th: "ไม่ระบุหมู่บ้าน", en: "No village given" },
  allStatuses: { th: "ทุกสถานะ", en: "All statuses" },
  allVolunteers: { th: "อสม. ทุกคน", en: "All volunteers" },
  village: { th: "หมู่บ้าน", en: "Village" },
  volunteer: { th: "อสม.", en: "Volunteer" },
  cntAlerts: { th: "แจ้งเตือนค้าง", en: "open alerts" },
  cntCoverage: { th: "นอกพื้นที่สัญญาณ", en: "out of coverage" },
  cntBandOff: { th: "สายรัดไม่ทำงาน", en: "bands off" },
  cntBattery: { th: "แบตใกล้หมด", en: "low batteries" },
  cntPatients: { th: "ผู้ป่วย", en: "patients" },
  showVillage: { th: "ดูหมู่บ้านบนแผนที่", en: "Show village on map" },
  patientsListed: { th: "รายชื่อผู้ป่วย", en: "Patients" },
  installApp: { th: "ติดตั้งบนหน้าจอ", en: "Install" },
  menu: { th: "เมนู", en: "Menu" },
  acknowledge: { th: "รับทราบ", en: "Acknowledge" },
  resolve: { th: "ปิดเรื่อง", en: "Resolve" },
  acknowledgedBy: { th: "รับทราบแล้วโดย", en: "Acknowledged by" },
  acknowledged: { th: "รับทราบแล้ว", en: "Acknowledged" },
  open: { th: "ยังไม่มีผู้รับทราบ", en: "Not yet acknowledged" },
  resolved: { th: "ปิดเรื่องแล้ว", en: "Resolved" },
  lastSeen: { th: "เห็นล่าสุด", en: "Last seen" },
  where: { th: "ตำแหน่ง", en: "Where" },
  unknownPlace: { th: "ไม่ทราบตำแหน่ง", en: "Position unknown" },
  times: { th: "ครั้ง", en: "times" },
  late: { th: "มาถึงช้า (เครือข่ายขัดข้อง)", en: "Arrived late (network outage)" },
  resolveTitle: { th: "ปิดเรื่อง: ผลเป็นอย่างไร", en: "Resolve: what was the outcome?" },
  note: { th: "บันทึกเพิ่มเติม (ไม่บังคับ)", en: "Note (optional)" },
  cancel: { th: "ยกเลิก", en: "Cancel" },
  confirm: { th: "ยืนยัน", en: "Confirm" },
  feedLost: {
    th: "ขาดการเชื่อมต่อกับระบบแจ้งเตือน กำลังเชื่อมต่อใหม่… การแจ้งเตือนใหม่อาจยังไม่แสดง",
    en: "Alert feed connection lost. Reconnecting… New alerts may not show yet.",
  },
  feedBack: { th: "เชื่อมต่อแล้ว", en: "Connected again" },
  feedBackMissed: { th: "ได้รับการแจ้งเตือนที่พลาดไป", en: "missed alerts filled in" },
  feedBackNone: { th: "ไม่มีการแจ้งเตือนที่พลาดไป", en: "nothing was missed" },
  connecting: { th: "กำลังเชื่อมต่อ…", en: "Connecting…" },
  live: { th: "ออนไลน์", en: "Live" },
  offline: { th: "ออฟไลน์", en: "Offline" },
  enableAlerts: { th: "เปิดเสียงและการแจ้งเตือน", en: "Turn on sound and notifications" },
  patients: { th: "ผู้ป่วย", en: "Patients" },
  status: { th: "สถานะ", en: "Status" },
  condition: { th: "ภาพรวม", en: "Overall" },
  battery: { th: "แบตเตอรี่", en: "Battery" },
  worn: { th: "สายรัดข้อมือ", en: "Band" },
  wornYes: { th: "สวมอยู่", en: "Worn" },
  wornNo: { th: "ไม่ได้สวม", en: "Not worn" },
  unknown: { th: "ไม่ทราบ", en: "Unknown" },
  recentAlerts: { th: "การแจ้งเตือนล่าสุด", en: "Recent alerts" },
  recentTrack: { th: "เส้นทางล่าสุด", en: "Recent track" },
  trackPoints: { th: "จุด", en: "points" },
  none: { th: "ไม่มี", en: "None" },
  close: { th: "ปิด", en: "Close" },
  inZone: { th: "อยู่ในพื้นที่ปลอดภัย", en: "Inside the safe zone" },
  outZone: { th: "อยู่นอกพื้นที่ปลอดภัย", en: "Outside the safe zone" },
  noCoverage: { th: "อยู่นอกพื้นที่รับสัญญาณ", en: "Out of coverage" },
  accuracy: { th: "คลาดเคลื่อนประมาณ", en: "within about" },
  role_caregiver: { th: "ผู้ดูแล", en: "Caregiver" },
  role_volunteer: { th: "อสม.", en: "Village health volunteer" },
  role_care_manager: { th: "ผู้จัดการการดูแล", en: "Care manager" },
  role_hospital: { th: "โรงพยาบาล", en: "Hospital" },
  role_admin: { th: "ผู้ดูแลระบบ", en: "Administrator" },
  zoomIn: { th: "ซูมเข้าเพื่อดูแปลงที่ดินทั้งหมด", en: "Zoom in to see every parcel" },
  legendParcel: { th: "แปลงที่ดิน", en: "Parcels" },
  legendBuilding: { th: "อาคาร", en: "Buildings" },
  legendRoute: { th: "ทางเดิน", en: "Walking routes" },
  legendLandmark: { th: "สถานที่สำคัญ", en: "Landmarks" },
  legendZone: { th: "พื้นที่ปลอดภัย", en: "Safe zone" },
  showOnMap: { th: "ดูบนแผนที่", en: "Show on map" },
  actionFailed: { th: "ทำรายการไม่สำเร็จ", en: "That did not work" },
  newAlert: { th: "การแจ้งเตือนใหม่", en: "New alert" },
} as const;

export type Key = keyof typeof TEXT;

const ALERT_TYPES: Record<string, { th: string; en: string; icon: string }> = {
  wander: { th: "ออกนอกพื้นที่ปลอดภัย", en: "Left the safe zone", icon: "🚶" },
  left_zone: { th: "ออกนอกพื้นที่ปลอดภัย", en: "Left the safe zone", icon: "🚶" },
  night_wander: { th: "ออกนอกพื้นที่ตอนกลางคืน", en: "Left the zone at night", icon: "🌙" },
  fall: { th: "หกล้ม", en: "Fall", icon: "⚠️" },
  sos: { th: "กดขอความช่วยเหลือ (SOS)", en: "SOS button pressed", icon: "🆘" },
  left_coverage: { th: "ออกนอกพื้นที่รับสัญญาณ", en: "Left coverage", icon: "📡" },
  coverage: { th: "ออกนอกพื้นที่รับสัญญาณ", en: "Left coverage", icon: "📡" },
  band_removed: { th: "ถอดสายรัดข้อมือ", en: "Band taken off", icon: "⌚" },
  not_worn: { th: "ไม่ได้สวมสายรัดข้อมือ", en: "Band not worn", icon: "⌚" },
  low_battery: { th: "แบตเตอรี่ใกล้หมด", en: "Low battery", icon: "🔋" },
  battery: { th: "แบตเตอรี่ใกล้หมด", en: "Low battery", icon: "🔋" },
  no_signal: { th: "ไม่ได้รับสัญญาณ", en: "No signal", icon: "📵" },
  offline: { th: "ไม่ได้รับสัญญาณ", en: "No signal", icon: "📵" },
  inactivity: { th: "ไม่เคลื่อนไหวนานผิดปกติ", en: "Unusually still", icon: "⏸" },
  gateway_offline: { th: "เกตเวย์ขาดการติดต่อ", en: "Gateway offline", icon: "📵" },
  gateway_radio: { th: "วิทยุของเกตเวย์ไม่ทำงาน", en: "Gateway radio down", icon: "🔇" },
};

const SEVERITY: Record<string, { th: string; en: string; rank: number }> = {
  critical: { th: "วิกฤต", en: "Critical", rank: 5 },
  high: { th: "สูง", en: "High", rank: 4 },
  major: { th: "สูง", en: "High", rank: 4 },
  medium: { th: "ปานกลาง", en: "Medium", rank: 3 },
  minor: { th: "ปานกลาง", en: "Medium", rank: 3 },
  warning: { th: "เฝ้าระวัง", en: "Warning", rank: 2 },
  low: { th: "ต่ำ", en: "Low", rank: 2 },
  info: { th: "ข้อมูล", en: "Info", rank: 1 },
};

export const OUTCOMES: readonly { value: string; th: string; en: string }[] = [
  { value: "patient_safe", th: "ผู้ป่วยปลอดภัย", en: "Patient is safe" },
  { value: "found", th: "พบตัวผู้ป่วยแล้ว", en: "Patient found" },
  { value: "taken_to_hospital", th: "ส่งโรงพยาบาล", en: "Taken to hospital" },
  { value: "false_alarm", th: "แจ้งเตือนผิดพลาด", en: "False alarm" },
  { value: "device_fixed", th: "แก้ไขอุปกรณ์แล้ว", en: "Device fixed" },
  { value: "other", th: "อื่น ๆ", en: "Other" },
];

let current: Lang = "th";

export function setLang(lang: Lang): void {
  current = lang;
  document.documentElement.lang = lang;
}

export function lang(): Lang {
  return current;
}

export function t(key: Key): string {
  return TEXT[key][current];
}

const STATUS: Record<string, { th: string; en: string }> = {
  alert: { th: "มีการแจ้งเตือน", en: "Alert" },
  out_of_coverage: { th: "อยู่นอกพื้นที่สัญญาณ", en: "Out of coverage" },
  band_off: { th: "สายรัดข้อมือไม่ทำงาน/ถูกถอด", en: "Band off" },
  battery_low: { th: "แบตเตอรี่ใกล้หมด", en: "Battery low" },
  ok: { th: "ปกติ", en: "OK" },
};
export const STATUS_CODES = Object.keys(STATUS);

export function statusLabel(code: string): string {
  return STATUS[code]?.[current] ?? code;
}

export function roleLabel(role: string): string {
  const key = `role_${role}` as Key;
  return key in TEXT ? t(key) : role;
}

/** "within about 100 m": rounded so it does not pretend to be precise. */
export function aboutMetres(m: number): string {
  const r = m < 20 ? 10 * Math.max(1, Math.round(m / 10)) : m < 100 ? 10 * Math.round(m / 10) : 50 * Math.round(m / 50);
  return `${t("withinAbout")} ${r} ${current === "th" ? "ม." : "m"}`;
}

/** "12 นาที" / "12 min", "1 ชม. 5 นาที" / "1 h 5 min". */
export function formatDuration(ms: number): string {
  if (ms < 60_000) return current === "th" ? "ไม่ถึง 1 นาที" : "under a minute";
  const min = Math.round(ms / 60_000);
  const h = Math.floor(min / 60), m = min % 60;
  if (current === "th") return h ? `${h} ชม. ${m} นาที` : `${m} นาที`;
  return h ? `${h} h ${m} min` : `${m} min`;
}

export function alertTypeLabel(type: string): string {
  const known = ALERT_TYPES[type];
  return known ? known[current] : type.replace(/_/g, " ");
}

export function alertIcon(type: string): string {
  return ALERT_TYPES[type]?.icon ?? "🔔";
}

export function severityRank(severity: string): number {
  return SEVERITY[severity]?.rank ?? 3;
}

export function severityLabel(severity: string): string {
  const known = SEVERITY[severity];
  return known ? known[current] : severity;
}

const CHANNELS: Record<string, { th: string; en: string }> = {
  feed: { th: "หน้าแจ้งเตือน", en: "alert page" },
  line: { th: "LINE", en: "LINE" },
  sms: { th: "SMS", en: "SMS" },
  webhook: { th: "ระบบเชื่อมต่อ", en: "webhook" },
};

/** A delivery channel in the page's language (`feed` is this page and the volunteers' app). */
export function channelLabel(channel: string): string {
  return CHANNELS[channel]?.[current] ?? channel;
}

export function outcomeLabel(value: string): string {
  const o = OUTCOMES.find((x) => x.value === value);
  return o ? o[current] : value;
}

const TZ = "Asia/Bangkok";

/** "14:05" today, "3 ต.ค. 14:05" on another day; always Bangkok time. */
export function formatTime(iso: string | null | undefined, now: Date = new Date()): string {
  if (!iso) return t("unknown");
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return t("unknown");
  const locale = current === "th" ? "th-TH" : "en-GB";
  const day = (x: Date) => x.toLocaleDateString("en-CA", { timeZone: TZ });
  const time = d.toLocaleTimeString(locale, { timeZone: TZ, hour: "2-digit", minute: "2-digit" });
  if (day(d) === day(now)) return time;
  const date = d.toLocaleDateString(locale, { timeZone: TZ, day: "numeric", month: "short" });
  return `${date} ${time}`;
}

/** "5 นาทีที่แล้ว" / "5 minutes ago". */
export function formatAgo(iso: string | null | undefined, now: Date = new Date()): string {
  if (!iso) return "";
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return "";
  const s = Math.round((d.getTime() - now.getTime()) / 1000);
  const rtf = new Intl.RelativeTimeFormat(current === "th" ? "th" : "en", { numeric: "auto" });
  const a = Math.abs(s);
  if (a < 45) return current === "th" ? "เมื่อสักครู่" : "just now";
  if (a < 3600) return rtf.format(Math.round(s / 60), "minute");
  if (a < 86400) return rtf.format(Math.round(s / 3600), "hour");
  return rtf.format(Math.round(s / 86400), "day");
}

export function initialLang(): Lang {
  const saved = localStorage.getItem("chumphae.lang");
  return saved === "en" ? "en" : "th";
}

export function saveLang(l: Lang): void {
  localStorage.setItem("chumphae.lang", l);
}
