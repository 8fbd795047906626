/**
 * The agents' realtime feed (`GET /api/realtime`), kept connected: the token goes in the first frame
 * (browsers cannot set headers on a WebSocket) and again before it expires; every event's `seq` is kept so
 * that a reconnection — after a network blip or a restart of the server — asks for what came after it and
 * misses nothing. The server's protocol is described on the operation in the API document.
 */

/** A change the server pushed: `kind` is e.g. `message.created`, `data` its views. */
export interface FeedEvent {
  seq: number;
  kind: string;
  data: Record<string, unknown>;
}

export type ConnectionState = "connecting" | "online" | "offline";

export interface FeedHandlers {
  /** Each event, in order, once. */
  onEvent: (event: FeedEvent) => void;
  /** The client's picture may be out of date (events were missed): reload what is shown. */
  onResync: () => void;
  onState: (state: ConnectionState) => void;
}

export interface FeedOptions {
  /** The current access token (renewed when close to expiry). */
  token: () => Promise<string | null>;
  /** A new access token now, even if the current one is still valid; `null` when the session is over. */
  renewToken: () => Promise<string | null>;
  url?: string;
  /** Injected by tests. */
  WebSocket?: typeof WebSocket;
}

/** The server's close codes (see the operation's description). */
const CURSOR_UNKNOWN = 4400;
const TOKEN_EXPIRED = 4401;
const WRONG_USER = 4403;

/** Sent a fresh token this long before the socket's `expires_at`. */
const RENEW_AHEAD_MS = 60_000;
const MIN_RENEW_MS = 30_000;
const MAX_BACKOFF_MS = 10_000;

interface ServerFrame {
  type?: string;
  seq?: number;
  kind?: string;
  data?: Record<string, unknown>;
  cursor?: number;
  expires_at?: number;
  resync?: boolean;
}

export class RealtimeFeed {
  private socket: WebSocket | null = null;
  private cursor: number | null = null;
  private attempts = 0;
  private stopped = false;
  /** Between deciding to connect and having a socket (or a retry scheduled): no second attempt. */
  private busy = false;
  private retryTimer: ReturnType<typeof setTimeout> | undefined;
  private renewTimer: ReturnType<typeof setTimeout> | undefined;
  private readonly url: string;
  private readonly Socket: typeof WebSocket;

  constructor(
    private readonly handlers: FeedHandlers,
    private readonly options: FeedOptions,
  ) {
    const scheme = globalThis.location.protocol === "https:" ? "wss" : "ws";
    this.url = options.url ?? `${scheme}://${globalThis.location.host}/api/realtime`;
    this.Socket = options.WebSocket ?? globalThis.WebSocket;
  }

  /** The last `seq` received (what a reconnection passes as `?cursor=`). */
  get lastSeq(): number | null {
    return this.cursor;
  }

  start(): void {
    this.stopped = false;
    globalThis.addEventListener("online", this.reconnectNow);
    void this.connect();
  }

  stop(): void {
    this.stopped = true;
    globalThis.removeEventListener("online", this.reconnectNow);
    clearTimeout(this.retryTimer);
    clearTimeout(this.renewTimer);
    const socket = this.socket;
    this.socket = null;
    socket?.close(1000, "signed out");
  }

  private readonly reconnectNow = (): void => {
    if (this.stopped || this.socket !== null || this.busy) return;
    clearTimeout(this.retryTimer);
    this.attempts = 0;
    void this.connect();
  };

  private async connect(): Promise<void> {
    if (this.stopped || this.socket !== null || this.busy) return;
    this.handlers.onState(this.attempts === 0 ? "connecting" : "offline");
    this.busy = true;
    let token: string | null;
    try {
      token = await this.options.token();
    } catch {
      // The server cannot renew the token now (it is down, or restarting): try again later.
      this.busy = false;
      this.retryLater();
      return;
    }
    this.busy = false;
    if (this.stopped) return;
    if (token === null) {
      // The session is over; whoever signs in next starts a new feed.
      this.stop();
      return;
    }
    const url = this.cursor === null ? this.url : `${this.url}?cursor=${this.cursor}`;
    const socket = new this.Socket(url);
    this.socket = socket;
    socket.onopen = () => socket.send(JSON.stringify({ type: "auth", token }));
    socket.onmessage = (message) => this.receive(message);
    socket.onclose = (close) => {
      if (this.socket !== socket) return;
      this.socket = null;
      clearTimeout(this.renewTimer);
      void this.closed(close.code);
    };
  }

  private receive(message: MessageEvent): void {
    if (typeof message.data !== "string") return;
    let frame: ServerFrame;
    try {
      frame = JSON.parse(message.data) as ServerFrame;
    } catch {
      return;
    }
    if (frame.type === "event" && typeof frame.seq === "number" && typeof frame.kind === "string") {
      // Frames arrive in order; a repeat (none is expected) is not applied twice.
      if (this.cursor !== null && frame.seq <= this.cursor) return;
      this.cursor = frame.seq;
      this.handlers.onEvent({ seq: frame.seq, kind: frame.kind, data: frame.data ?? {} });
    } else if (frame.type === "ready") {
      this.attempts = 0;
      const first = this.cursor === null;
      if (typeof frame.cursor === "number" && first) this.cursor = frame.cursor;
      this.handlers.onState("online");
      // What was loaded before the first socket was ready may have missed a change, and after a resync the
      // feed no longer holds our cursor: reload what is shown. (After a plain reconnection the events
      // replayed from the cursor bring it up to date.)
      if (first || frame.resync === true) this.handlers.onResync();
      this.scheduleRenewal(frame.expires_at);
    } else if (frame.type === "auth") {
      this.scheduleRenewal(frame.expires_at);
    }
  }

  /** Sends a fresh token shortly before the socket's expires (Unix seconds). */
  private scheduleRenewal(expiresAt: number | undefined): void {
    clearTimeout(this.renewTimer);
    if (typeof expiresAt !== "number") return;
    // Not sooner than half a minute: a clock far ahead of the server's must not renew in a loop.
    const delay = Math.max(expiresAt * 1000 - Date.now() - RENEW_AHEAD_MS, MIN_RENEW_MS);
    this.renewTimer = setTimeout(() => {
      void (async () => {
        // A failure here is not fatal: at expiry the server closes the socket (4401) and a new one is made.
        const token = await this.options.renewToken().catch(() => null);
        const socket = this.socket;
        if (token === null || socket === null || socket.readyState !== this.Socket.OPEN) return;
        socket.send(JSON.stringify({ type: "auth", token }));
      })();
    }, delay);
  }

  private async closed(code: number): Promise<void> {
    if (this.stopped) return;
    if (code === CURSOR_UNKNOWN) {
      // A cursor the server does not know (its data was replaced): start over from its end, reload.
      this.cursor = null;
      this.handlers.onResync();
    } else if (code === TOKEN_EXPIRED || code === WRONG_USER) {
      this.busy = true;
      const renewed = await this.options.renewToken().catch(() => "unknown" as const);
      this.busy = false;
      if (this.stopped) return;
      if (renewed === null) {
        this.stop();
        return;
      }
      // "unknown": the server could not be asked; the next attempt asks again.
    }
    this.retryLater();
  }

  /** 0.5 s, 1 s, 2 s … up to 10 s, with jitter so that a restarted server is not met by every tab at once. */
  private retryLater(): void {
    if (this.stopped) return;
    this.attempts += 1;
    this.handlers.onState("offline");
    const backoff = Math.min(500 * 2 ** (this.attempts - 1), MAX_BACKOFF_MS);
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => void this.connect(), backoff * (0.75 + Math.random() * 0.5));
  }
}
