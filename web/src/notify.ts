// A short beep from the Web Audio API (no sound files) and a browser notification.
import { t } from "./i18n";

let audio: AudioContext | null = null;

/** Create (or resume) the audio context: browsers allow sound only after a user gesture. */
export function unlockSound(): void {
  try {
    audio = audio ?? new AudioContext();
    if (audio.state === "suspended") void audio.resume();
  } catch {
    audio = null;
  }
}

export let beepsPlayed = 0;

/** Three short tones at 880 Hz: loud enough to be noticed, short enough not to annoy. */
export function beep(): void {
  unlockSound();
  if (!audio) return;
  const start = audio.currentTime + 0.02;
  for (let i = 0; i < 3; i++) {
    const osc = audio.createOscillator();
    const gain = audio.createGain();
    osc.type = "square";
    osc.frequency.value = 880;
    const t0 = start + i * 0.3;
    gain.gain.setValueAtTime(0.0001, t0);
    gain.gain.exponentialRampToValueAtTime(0.3, t0 + 0.02);
    gain.gain.exponentialRampToValueAtTime(0.0001, t0 + 0.2);
    osc.connect(gain).connect(audio.destination);
    osc.start(t0);
    osc.stop(t0 + 0.22);
  }
  beepsPlayed += 1;
}

export function notificationsAllowed(): boolean {
  return typeof Notification !== "undefined" && Notification.permission === "granted";
}

export function notificationsUndecided(): boolean {
  return typeof Notification !== "undefined" && Notification.permission === "default";
}

export async function askNotifications(): Promise<void> {
  unlockSound();
  if (notificationsUndecided()) {
    try {
      await Notification.requestPermission();
    } catch {
      /* old browsers: no promise */
    }
  }
}

export let notificationsShown = 0;

/** A system notification; tag per alert so a re-trigger replaces rather than stacks. */
export function notify(title: string, body: string, tag: string): void {
  if (!notificationsAllowed()) return;
  try {
    const n = new Notification(`${t("newAlert")}: ${title}`, { body, tag, requireInteraction: true });
    n.onclick = () => {
      window.focus();
      n.close();
    };
    notificationsShown += 1;
  } catch {
    /* some mobile browsers allow notifications only from a service worker */
  }
}
