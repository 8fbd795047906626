import { QueryClient } from "@tanstack/react-query";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import type { Schemas } from "../api/client";
import type { ListFilters } from "../pages/InboxPage";
import { CacheUpdater, matches, place } from "./apply";
import { type ConnectionState, type FeedEvent, RealtimeFeed } from "./socket";

/** A WebSocket the test drives: it records what the client sends and lets the test play the server. */
class FakeSocket {
  static readonly OPEN = 1;
  static opened: FakeSocket[] = [];
  readyState = 0;
  sent: unknown[] = [];
  onopen: (() => void) | null = null;
  onmessage: ((message: { data: string }) => void) | null = null;
  onclose: ((close: { code: number }) => void) | null = null;
  constructor(readonly url: string) {
    FakeSocket.opened.push(this);
  }
  send(data: string) {
    this.sent.push(JSON.parse(data));
  }
  close() {
    this.readyState = 3;
  }
  open() {
    this.readyState = 1;
    this.onopen?.();
  }
  frame(body: object) {
    this.onmessage?.({ data: JSON.stringify(body) });
  }
  drop(code = 1006) {
    this.readyState = 3;
    this.onclose?.({ code });
  }
}

function feed(tokens: { token?: () => Promise<string | null>; renew?: () => Promise<string | null> } = {}) {
  const events: FeedEvent[] = [];
  const states: ConnectionState[] = [];
  let resyncs = 0;
  const client = new RealtimeFeed(
    { onEvent: (e) => events.push(e), onResync: () => (resyncs += 1), onState: (s) => states.push(s) },
    {
      token: tokens.token ?? (() => Promise.resolve("access-1")),
      renewToken: tokens.renew ?? (() => Promise.resolve("access-2")),
      url: "ws://desk.test/api/realtime",
      WebSocket: FakeSocket as unknown as typeof WebSocket,
    },
  );
  return { client, events, states, resyncs: () => resyncs };
}

const last = () => {
  const socket = FakeSocket.opened[FakeSocket.opened.length - 1];
  if (!socket) throw new Error("no socket opened");
  return socket;
};

describe("the realtime feed", () => {
  beforeEach(() => {
    FakeSocket.opened = [];
    vi.useFakeTimers();
  });
  afterEach(() => vi.useRealTimers());

  it("authenticates in the first frame and hands over events in order, once", async () => {
    const { client, events, states } = feed();
    client.start();
    await vi.advanceTimersByTimeAsync(0);
    last().open();
    expect(last().sent).toEqual([{ type: "auth", token: "access-1" }]);
    last().frame({ type: "ready", cursor: 7, expires_at: Date.now() / 1000 + 900, resync: false });
    last().frame({ type: "event", seq: 8, kind: "message.created", data: { message: { id: "m" } } });
    last().frame({ type: "event", seq: 8, kind: "message.created", data: {} });
    expect(events.map((e) => e.seq)).toEqual([8]);
    expect(states.at(-1)).toBe("online");
    client.stop();
  });

  it("reconnects with the last seq after the server goes away, offline meanwhile", async () => {
    const { client, events, states } = feed();
    client.start();
    await vi.advanceTimersByTimeAsync(0);
    last().open();
    last().frame({ type: "ready", cursor: 3, expires_at: Date.now() / 1000 + 900, resync: false });
    last().frame({ type: "event", seq: 4, kind: "conversation.updated", data: {} });
    last().drop();
    expect(states.at(-1)).toBe("offline");
    await vi.advanceTimersByTimeAsync(1_000);
    expect(last().url).toBe("ws://desk.test/api/realtime?cursor=4");
    last().open();
    last().frame({ type: "ready", cursor: 4, expires_at: Date.now() / 1000 + 900, resync: false });
    last().frame({ type: "event", seq: 5, kind: "message.created", data: {} });
    expect(events.map((e) => e.seq)).toEqual([4, 5]);
    expect(states.at(-1)).toBe("online");
    client.stop();
  });

  it("sends a fresh token before the socket's token expires", async () => {
    const { client } = feed();
    client.start();
    await vi.advanceTimersByTimeAsync(0);
    last().open();
    last().frame({ type: "ready", cursor: 0, expires_at: Date.now() / 1000 + 120, resync: false });
    await vi.advanceTimersByTimeAsync(59_000);
    expect(last().sent).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(2_000);
    expect(last().sent).toEqual([
      { type: "auth", token: "access-1" },
      { type: "auth", token: "access-2" },
    ]);
    client.stop();
  });

  it("stops when the session is over, and reloads everything after a cursor the server does not know", async () => {
    const { client, resyncs } = feed({ renew: () => Promise.resolve(null) });
    client.start();
    await vi.advanceTimersByTimeAsync(0);
    last().open();
    last().frame({ type: "ready", cursor: 9, expires_at: Date.now() / 1000 + 900, resync: false });
    expect(resyncs()).toBe(1); // the first ready: what loaded before it may have missed a change
    last().drop(4400);
    expect(resyncs()).toBe(2);
    await vi.advanceTimersByTimeAsync(1_000);
    expect(last().url).toBe("ws://desk.test/api/realtime");
    last().drop(4401);
    await vi.advanceTimersByTimeAsync(30_000);
    expect(FakeSocket.opened).toHaveLength(2);
  });
});

function conversation(id: string, at: number, change: Partial<Schemas["ConversationView"]> = {}): Schemas["ConversationView"] {
  return {
    id,
    display_id: 1,
    inbox_id: "inbox-1",
    status: "open",
    priority: "none",
    assignee_id: null,
    unread_count: 0,
    labels: [],
    contact: { id: "contact-1", name: "山田" } as Schemas["ContactSummary"],
    last_message: null,
    last_message_at: at,
    created_at: at,
    updated_at: at,
    ...change,
  } as Schemas["ConversationView"];
}

const filters: ListFilters = { tab: "all", status: "open", inbox: "", label: "" };

function list(...pages: [Schemas["ConversationView"][], string | null][]) {
  return {
    pageParams: pages.map(() => undefined),
    pages: pages.map(([data, next]) => ({ data, next_cursor: next, meta: { counts: { mine: 0, unassigned: 0, all: 0 } } })),
  } as unknown as Parameters<typeof place>[0];
}

describe("the realtime feed when the server cannot renew a token", () => {
  beforeEach(() => {
    FakeSocket.opened = [];
    vi.useFakeTimers();
  });
  afterEach(() => vi.useRealTimers());

  it("keeps trying (offline meanwhile), and a network event does not open a second socket", async () => {
    let down = true;
    const waiting: ((token: string) => void)[] = [];
    const { client, states } = feed({
      token: () => (down ? Promise.reject(new Error("502")) : new Promise<string>((resolve) => waiting.push(resolve))),
    });
    client.start();
    await vi.advanceTimersByTimeAsync(0);
    expect(FakeSocket.opened).toHaveLength(0);
    expect(states.at(-1)).toBe("offline");
    down = false;
    await vi.advanceTimersByTimeAsync(1_000); // the retry asks for a token, which takes a while
    globalThis.dispatchEvent(new Event("online"));
    for (const resolve of waiting) resolve("access-3");
    await vi.advanceTimersByTimeAsync(0);
    expect(FakeSocket.opened).toHaveLength(1);
    last().open();
    expect(last().sent).toEqual([{ type: "auth", token: "access-3" }]);
    client.stop();
  });
});

describe("applying events to the cache", () => {
  it("puts a conversation with a new message at the top and takes it from where it was", () => {
    const data = list([[conversation("c", 30), conversation("b", 20)], "cursor"], [[conversation("a", 10)], null]);
    const moved = place(data, conversation("a", 40), true);
    expect(moved.pages.map((p) => p.data.map((c) => c.id))).toEqual([["a", "c", "b"], []]);
  });

  it("takes a conversation out of a list it no longer matches, and leaves a place past the loaded rows alone", () => {
    const data = list([[conversation("c", 30), conversation("b", 20)], "cursor"]);
    expect(place(data, conversation("c", 30), false).pages[0]?.data.map((c) => c.id)).toEqual(["b"]);
    expect(place(data, conversation("z", 5), true).pages[0]?.data.map((c) => c.id)).toEqual(["c", "b"]);
  });

  it("matches the filters as the server does", () => {
    const mine = conversation("c", 1, { assignee_id: "me" as Schemas["UserId"], labels: ["返品"] });
    expect(matches(mine, { ...filters, tab: "mine" }, "me")).toBe(true);
    expect(matches(mine, { ...filters, tab: "unassigned" }, "me")).toBe(false);
    expect(matches(mine, { ...filters, label: "返品" }, "me")).toBe(true);
    expect(matches(mine, { ...filters, label: "請求" }, "me")).toBe(false);
    expect(matches(mine, { ...filters, status: "resolved" }, "me")).toBe(false);
  });

  it("shows a new conversation in the loaded list at once", () => {
    const client = new QueryClient();
    client.setQueryData(["conversations", filters], list([[conversation("b", 20)], null]));
    const updater = new CacheUpdater(client, () => "me");
    updater.apply({ seq: 1, kind: "conversation.created", data: { conversation: conversation("n", 50) } });
    const data = client.getQueryData<ReturnType<typeof list>>(["conversations", filters]);
    expect(data?.pages[0]?.data.map((c) => c.id)).toEqual(["n", "b"]);
    updater.stop();
  });
});
