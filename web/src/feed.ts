// The live alert feed: one WebSocket, resumed from the last cursor after any drop.
// Protocol: docs/feed-protocol.md, server chumphae/feed/views.py + socket.py. Browsers cannot set
// headers on a WebSocket upgrade, so the token (and the cursor to resume from) go in the first
// message; a resumed socket gets the missed frames, a new one a snapshot.
import type { Alert, FeedPatient, Position } from "./model";
import { PATHS } from "./api";

export type FeedState = "connecting" | "live" | "lost";

export interface AlertMeta {
  /** The server says phones should ring for this change (false for late news and quiet updates). */
  ring: boolean;
  /** This user should act now (the alert has reached their rung of the escalation ladder). */
  attention: boolean;
  /** opened | retriggered | acknowledged | escalated | resolved | late_history */
  event: string;
}

export interface FeedHandlers {
  /** Full state: every unresolved alert the user may see, each patient's newest position. */
  snapshot(alerts: Alert[], positions: Position[], patients: FeedPatient[]): void;
  /** One alert changed (new, re-triggered, acknowledged, escalated, resolved). */
  alert(alert: Alert, meta: AlertMeta): void;
  /** A patient's newest position. */
  position?(position: Position): void;
  state(state: FeedState): void;
  /** The token was refused: go back to the login screen. */
  unauthorized(): void;
}

type Msg = Record<string, unknown> & { type?: string };

const SILENCE_MS = 45_000; // no frame (not even a ping) for this long: the connection is dead

export class Feed {
  private ws: WebSocket | null = null;
  private cursor: number | null = null;
  private retry = 0;
  private timer: number | undefined;
  private watchdog: number | undefined;
  private stopped = false;
  private state: FeedState = "connecting";

  constructor(
    private token: string,
    private on: FeedHandlers,
  ) {
    window.addEventListener("offline", this.onOffline);
    window.addEventListener("online", this.onOnline);
  }

  start(): void {
    this.stopped = false;
    this.connect();
  }

  stop(): void {
    this.stopped = true;
    window.removeEventListener("offline", this.onOffline);
    window.removeEventListener("online", this.onOnline);
    window.clearTimeout(this.timer);
    window.clearTimeout(this.watchdog);
    this.ws?.close(1000);
    this.ws = null;
  }

  /** Close the socket as if the network had dropped (used by the offline event). */
  drop(): void {
    if (this.ws) {
      const ws = this.ws;
      this.ws = null;
      ws.onclose = null;
      ws.close();
    }
    this.lost();
  }

  private onOffline = () => this.drop();
  private onOnline = () => {
    if (this.state !== "live" && !this.stopped) {
      window.clearTimeout(this.timer);
      this.retry = 0;
      this.connect();
    }
  };

  private setState(s: FeedState): void {
    if (this.state !== s) {
      this.state = s;
      this.on.state(s);
    }
  }

  private url(): string {
    const proto = location.protocol === "https:" ? "wss:" : "ws:";
    return `${proto}//${location.host}${PATHS.feed}`;
  }

  private connect(): void {
    if (this.stopped) return;
    window.clearTimeout(this.timer);
    let ws: WebSocket;
    try {
      ws = new WebSocket(this.url());
    } catch {
      this.lost();
      return;
    }
    this.ws = ws;
    ws.onopen = () => {
      const hello: Record<string, unknown> = { type: "auth", token: this.token };
      if (this.cursor !== null) hello.cursor = this.cursor;
      ws.send(JSON.stringify(hello));
      this.kick();
    };
    ws.onmessage = (ev) => {
      this.kick();
      let msg: Msg;
      try {
        msg = JSON.parse(String(ev.data));
      } catch {
        return;
      }
      this.handle(msg, ws);
    };
    ws.onclose = (ev) => {
      if (this.ws !== ws) return;
      this.ws = null;
      if (ev.code === 4001) {
        this.stopped = true;
        this.on.unauthorized();
        return;
      }
      this.lost();
    };
  }

  /** Reset the silence watchdog. */
  private kick(): void {
    window.clearTimeout(this.watchdog);
    this.watchdog = window.setTimeout(() => this.drop(), SILENCE_MS);
  }

  private lost(): void {
    window.clearTimeout(this.watchdog);
    if (this.stopped) return;
    if (this.state === "live") this.setState("lost");
    else if (this.state === "connecting" && this.retry > 0) this.setState("lost");
    const delay = Math.min(8000, 1000 * 2 ** this.retry);
    this.retry += 1;
    window.clearTimeout(this.timer);
    this.timer = window.setTimeout(() => this.connect(), delay);
  }

  private takeCursor(msg: Msg): void {
    const c = msg.cursor;
    if (typeof c === "number" && (this.cursor === null || c > this.cursor)) this.cursor = c;
  }

  private handle(msg: Msg, ws: WebSocket): void {
    const type = String(msg.type ?? "");
    if (type === "welcome") {
      // Resumed from our cursor, the missed frames follow; otherwise a snapshot does.
      this.markLive();
      return;
    }
    if (type === "resync" || type === "pong" || type === "result") return; // a snapshot follows a resync
    if (type === "error") {
      if (msg.code === "unauthorized") {
        this.stopped = true;
        ws.close();
        this.on.unauthorized();
      }
      return;
    }
    if (type === "snapshot") {
      if (typeof msg.cursor === "number") this.cursor = msg.cursor; // a new start: follow the server's cursor
      this.on.snapshot(
        (msg.alerts as Alert[] | undefined) ?? [],
        (msg.positions as Position[] | undefined) ?? [],
        (msg.patients as FeedPatient[] | undefined) ?? [],
      );
    } else if (type === "alert" && msg.alert && typeof (msg.alert as Alert).id === "number") {
      this.on.alert(msg.alert as Alert, {
        ring: Boolean(msg.ring),
        attention: Boolean(msg.attention),
        event: String(msg.event ?? ""),
      });
    } else if (type === "position" && msg.position) {
      this.on.position?.(msg.position as Position);
    }
    // "ping" (every 20 s) only keeps the watchdog quiet and carries the cursor.
    this.takeCursor(msg);
  }

  private markLive(): void {
    this.retry = 0;
    this.setState("live");
  }
}
