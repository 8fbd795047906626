import { QueryClient, QueryClientProvider } from "@tanstack/react-query";
import { render, screen, waitFor, within } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { MemoryRouter, Route, Routes, useLocation } from "react-router-dom";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import type { Schemas } from "../api/client";
import { adopt, forget } from "../auth/session";
import i18n from "../i18n";
import ConversationPage from "./ConversationPage";
import InboxPage from "./InboxPage";

type Conversation = Schemas["ConversationView"];
type Message = Schemas["MessageView"];

const ME = "user-aiko";
const KEN = "user-ken";
const T0 = Date.UTC(2025, 5, 2, 9, 30);

function conversation(id: string, displayId: number, change: Partial<Conversation> = {}): Conversation {
  return {
    id,
    display_id: displayId,
    inbox_id: "inbox-1",
    status: "open",
    priority: "none",
    unread_count: 2,
    labels: [],
    contact: { id: "contact-1", name: "Hanako Sato", email: "hanako@example.jp", phone: null },
    last_message: { preview: "Hello", kind: "incoming" },
    last_message_at: T0,
    created_at: T0,
    updated_at: T0,
    ...change,
  };
}

function message(id: string, kind: Message["kind"], content: string, change: Partial<Message> = {}): Message {
  return { id, conversation_id: "conv-1", kind, content, sender_id: kind === "incoming" ? null : ME, created_at: T0, ...change };
}

/**
 * A fake of the API, just enough for the conversation view: it answers the calls the page makes from
 * a state the test arranges, records every request, and changes the state as the real server would.
 */
function fakeApi() {
  const state = {
    conversations: [conversation("conv-1", 41), conversation("conv-2", 42, { unread_count: 0 }), conversation("conv-3", 43)],
    messages: [
      message("m1", "incoming", "My parcel has not arrived."),
      message("m2", "outgoing", "Sorry to hear that. Let me check.", { delivery_status: "sent" }),
      message("m3", "outgoing", "It left our warehouse today.", {
        delivery_status: "failed",
        delivery_error: "LINE refused the reply: the reply token has expired",
      }),
      message("m4", "note", "Customer called twice already."),
      message("m5", "activity", "status_changed", { attributes: { action: "status_changed", from: "open", to: "pending" } }),
    ],
    canned: [
      { id: "c1", short_code: "greet", content: "Hello! Thanks for writing to us.", created_at: T0, updated_at: T0 },
      { id: "c2", short_code: "greeting-ja", content: "お問い合わせありがとうございます。", created_at: T0, updated_at: T0 },
    ],
    sendAnswer: null as Response | null,
    /** When set, label changes wait for it before they are answered. */
    labelsGate: null as Promise<void> | null,
  };
  const requests: { method: string; path: string; search: URLSearchParams; body: unknown }[] = [];
  const json = (body: unknown, status = 200) =>
    new Response(JSON.stringify(body), { status, headers: { "content-type": "application/json" } });
  const find = (id: string) => state.conversations.find((c) => c.id === id);

  const fetch = vi.fn(async (request: Request) => {
    const url = new URL(request.url);
    const text = request.method === "GET" ? "" : await request.text();
    const body: unknown = text ? JSON.parse(text) : null;
    requests.push({ method: request.method, path: url.pathname, search: url.searchParams, body });
    const route = `${request.method} ${url.pathname}`;
    let match: RegExpMatchArray | null;
    if (route === "GET /api/conversations") {
      return json({ data: state.conversations, next_cursor: null, meta: { counts: { mine: 0, unassigned: 3, all: 3 } } });
    }
    if (route === "GET /api/inboxes") return json([{ id: "inbox-1", name: "LINE", channel: "line", created_at: T0, updated_at: T0 }]);
    if (route === "GET /api/labels") {
      return json([
        { id: "l1", name: "billing", colour: "#0b57d0", created_at: T0 },
        { id: "l2", name: "vip", colour: "#b3261e", created_at: T0 },
      ]);
    }
    if (route === "GET /api/users") {
      return json([
        { id: ME, name: "Aiko", email: "aiko@example.jp", role: "owner", language: "en", created_at: "2025-01-01T00:00:00Z" },
        { id: KEN, name: "Ken", email: "ken@example.jp", role: "agent", language: "ja", created_at: "2025-01-01T00:00:00Z" },
      ]);
    }
    if (route === "GET /api/canned-responses") {
      const q = url.searchParams.get("q") ?? "";
      return json(state.canned.filter((c) => c.short_code.startsWith(q)));
    }
    if (route === "GET /api/contacts/contact-1") {
      return json({
        id: "contact-1",
        name: "Hanako Sato",
        email: "hanako@example.jp",
        phone: "+81 90 1234 5678",
        identities: [{ inbox_id: "inbox-1", source_id: "U4af4980629" }],
        created_at: T0,
        updated_at: T0,
      });
    }
    if (route === "GET /api/contacts/contact-1/conversations") return json(state.conversations);
    if ((match = /^GET \/api\/conversations\/([\w-]+)$/.exec(route))) {
      const found = find(match[1] ?? "");
      return found ? json(found) : json({ type: "about:blank", title: "Not Found", status: 404, code: "conversation_not_found" }, 404);
    }
    if ((match = /^GET \/api\/conversations\/([\w-]+)\/messages$/.exec(route))) {
      return json({ data: match[1] === "conv-1" ? state.messages : [], next_cursor: null });
    }
    if ((match = /^POST \/api\/conversations\/([\w-]+)\/read$/.exec(route))) {
      const found = find(match[1] ?? "");
      if (found) found.unread_count = 0;
      return json(found);
    }
    if ((match = /^POST \/api\/conversations\/([\w-]+)\/messages$/.exec(route))) {
      if (state.sendAnswer) return state.sendAnswer;
      const sent = body as { content: string; private?: boolean };
      const created = message(`m${state.messages.length + 1}`, sent.private ? "note" : "outgoing", sent.content, {
        conversation_id: match[1] ?? "",
        ...(sent.private ? {} : { delivery_status: "pending" as const }),
      });
      state.messages.push(created);
      return json(created, 201);
    }
    if ((match = /^POST \/api\/conversations\/([\w-]+)\/status$/.exec(route))) {
      const found = find(match[1] ?? "");
      const change = body as { status: Conversation["status"]; snoozed_until?: number };
      if (found) Object.assign(found, { status: change.status, snoozed_until: change.snoozed_until ?? null });
      return json(found);
    }
    if ((match = /^PUT \/api\/conversations\/([\w-]+)\/labels$/.exec(route))) {
      if (state.labelsGate) await state.labelsGate;
      const found = find(match[1] ?? "");
      if (found) found.labels = (body as { labels: string[] }).labels;
      return json(found);
    }
    if ((match = /^POST \/api\/conversations\/([\w-]+)\/assignee$/.exec(route))) {
      const found = find(match[1] ?? "");
      if (found) found.assignee_id = (body as { assignee_id: string | null }).assignee_id;
      return json(found);
    }
    return json({ type: "about:blank", title: "Not Found", status: 404, code: "not_found", detail: route }, 404);
  });
  vi.stubGlobal("fetch", fetch);
  const calls = (method: string, path: string) => requests.filter((r) => r.method === method && r.path === path);
  return { state, requests, calls };
}

function Where() {
  return <output data-testid="location">{useLocation().pathname}</output>;
}

function renderInbox(path = "/conversations/conv-1") {
  const client = new QueryClient({ defaultOptions: { queries: { retry: false }, mutations: { retry: false } } });
  return render(
    <QueryClientProvider client={client}>
      <MemoryRouter initialEntries={[path]}>
        <Routes>
          <Route path="/" element={<InboxPage />}>
            <Route path="conversations/:id" element={<ConversationPage />} />
          </Route>
        </Routes>
        <Where />
      </MemoryRouter>
    </QueryClientProvider>,
  );
}

/** The conversation view once its thread is in. */
async function openConversation(path?: string) {
  renderInbox(path);
  const thread = await screen.findByRole("log", { name: "Messages" });
  await within(thread).findByText("My parcel has not arrived.");
  return thread;
}

beforeEach(async () => {
  await i18n.changeLanguage("en");
  adopt({
    access_token: "at",
    token_type: "Bearer",
    expires_in: 900,
    refresh_token: "rt",
    refresh_expires_in: 86400,
    user: { id: ME, email: "aiko@example.jp", name: "Aiko", language: "en", created_at: "", updated_at: "" },
    account: { id: "account-1", name: "Aiko's shop", role: "owner" },
  });
});

afterEach(() => {
  forget();
  vi.unstubAllGlobals();
});

describe("ConversationPage", () => {
  it("shows incoming messages, replies, private notes and activity each as what they are", async () => {
    fakeApi();
    const thread = await openConversation();

    const article = (text: string) => within(thread).getByText(text).closest("article");
    const incoming = article("My parcel has not arrived.");
    if (!incoming) throw new Error("the incoming message is not shown");
    expect(incoming.closest("li")).toHaveClass("incoming");
    expect(incoming).toHaveTextContent("Hanako Sato");
    const reply = article("Sorry to hear that. Let me check.");
    expect(reply?.closest("li")).toHaveClass("outgoing");
    expect(reply).toHaveTextContent("You");
    expect(reply).toHaveTextContent("Sent");
    const note = article("Customer called twice already.");
    if (!note) throw new Error("the note is not shown");
    expect(note.closest("li")).toHaveClass("note");
    expect(within(note).getByText("Private note")).toHaveClass("note-label");
    expect(within(incoming).queryByText("Private note")).toBeNull();
    expect(within(thread).getByText("You changed the status from Open to Pending.").closest("li")).toHaveClass("activity");
    expect(within(thread).getAllByRole("listitem").map((item) => item.className)).toEqual([
      "message incoming",
      "message outgoing",
      "message outgoing",
      "message note",
      "message activity",
    ]);
  });

  it("says why a reply was not delivered, in the words the API gave", async () => {
    fakeApi();
    const thread = await openConversation();
    const failed = within(thread).getByText("It left our warehouse today.").closest("article");
    if (!failed) throw new Error("the failed reply is not shown");
    expect(failed).toHaveTextContent("Not delivered: LINE refused the reply: the reply token has expired");
    expect(failed).not.toHaveTextContent("Sent");
  });

  it("shows message times in the reader's language", async () => {
    fakeApi();
    await i18n.changeLanguage("ja");
    renderInbox();
    const thread = await screen.findByRole("log", { name: "メッセージ" });
    const incoming = (await within(thread).findByText("My parcel has not arrived.")).closest("article");
    const time = incoming?.querySelector("time");
    expect(time?.getAttribute("datetime")).toBe(new Date(T0).toISOString());
    expect(time?.textContent).toBe(new Intl.DateTimeFormat("ja", { dateStyle: "medium", timeStyle: "short" }).format(T0));
    expect(time?.textContent).toContain("2025/06/02");
  });

  it("marks the conversation read when it is opened, and refreshes the list's badge", async () => {
    const api = fakeApi();
    renderInbox();
    await waitFor(() => expect(api.calls("POST", "/api/conversations/conv-1/read")).toHaveLength(1));
    await waitFor(() => expect(api.calls("GET", "/api/conversations").length).toBeGreaterThan(1));
  });

  it("inserts the canned response chosen with the arrow keys in place of the /shortcode", async () => {
    const api = fakeApi();
    await openConversation();
    const box = screen.getByRole("textbox", { name: "Reply" });
    await userEvent.type(box, "Dear Hanako, /gre");
    const listbox = await screen.findByRole("listbox", { name: "Canned responses" });
    const options = within(listbox).getAllByRole("option");
    expect(options.map((option) => option.textContent)).toEqual([
      "/greet Hello! Thanks for writing to us.",
      "/greeting-ja お問い合わせありがとうございます。",
    ]);
    expect(api.calls("GET", "/api/canned-responses").at(-1)?.search.get("q")).toBe("gre");
    expect(options[0]).toHaveAttribute("aria-selected", "true");
    await userEvent.keyboard("{ArrowDown}");
    expect(within(listbox).getAllByRole("option")[1]).toHaveAttribute("aria-selected", "true");
    expect(box).toHaveAttribute("aria-activedescendant", within(listbox).getAllByRole("option")[1]?.id);
    await userEvent.keyboard("{Enter}");
    expect(box).toHaveValue("Dear Hanako, お問い合わせありがとうございます。");
    expect(screen.queryByRole("listbox")).toBeNull();
  });

  it("inserts a canned response that is clicked, and offers none for a slash inside a word", async () => {
    fakeApi();
    await openConversation();
    const box = screen.getByRole("textbox", { name: "Reply" });
    await userEvent.type(box, "and/or ");
    expect(screen.queryByRole("listbox")).toBeNull();
    await userEvent.type(box, "/greet");
    await userEvent.click(await screen.findByRole("option", { name: "/greet Hello! Thanks for writing to us." }));
    expect(box).toHaveValue("and/or Hello! Thanks for writing to us.");
    expect(box).toHaveFocus();
  });

  it("sends a private note as a note, shows it in the thread and empties the box", async () => {
    const api = fakeApi();
    const thread = await openConversation();
    await userEvent.click(screen.getByRole("button", { name: "Note" }));
    const box = screen.getByRole("textbox", { name: "Private note" });
    expect(box.closest("form")).toHaveClass("note-mode");
    await userEvent.type(box, "Refund approved by finance.");
    await userEvent.click(screen.getByRole("button", { name: "Send" }));

    await waitFor(() => expect(api.calls("POST", "/api/conversations/conv-1/messages")).toHaveLength(1));
    expect(api.calls("POST", "/api/conversations/conv-1/messages")[0]?.body).toEqual({
      content: "Refund approved by finance.",
      private: true,
    });
    const note = await within(thread).findByText("Refund approved by finance.");
    expect(note.closest("li")).toHaveClass("note");
    expect(box).toHaveValue("");
  });

  it("sends a reply with Ctrl+Enter and shows it as pending", async () => {
    const api = fakeApi();
    const thread = await openConversation();
    await userEvent.type(screen.getByRole("textbox", { name: "Reply" }), "It arrives tomorrow.{Control>}{Enter}{/Control}");
    await waitFor(() =>
      expect(api.calls("POST", "/api/conversations/conv-1/messages")[0]?.body).toEqual({
        content: "It arrives tomorrow.",
        private: false,
      }),
    );
    const reply = (await within(thread).findByText("It arrives tomorrow.")).closest("article");
    expect(reply).toHaveTextContent("Sending…");
  });

  it("keeps the typed text and says why when sending fails", async () => {
    const api = fakeApi();
    api.state.sendAnswer = new Response(
      JSON.stringify({ type: "about:blank", title: "Not Found", status: 404, code: "conversation_not_found" }),
      { status: 404, headers: { "content-type": "application/problem+json" } },
    );
    await openConversation();
    const box = screen.getByRole("textbox", { name: "Reply" });
    await userEvent.type(box, "Are you still there?");
    await userEvent.click(screen.getByRole("button", { name: "Send" }));
    expect(await screen.findByRole("alert")).toHaveTextContent("This conversation does not exist, or you cannot see it.");
    expect(box).toHaveValue("Are you still there?");
  });

  it("snoozes only until a time in the future", async () => {
    const api = fakeApi();
    await openConversation();
    // The list's status filter has the same name; the conversation's own select is in the view.
    const header = screen.getByRole("article", { name: "Hanako Sato #41" });
    await userEvent.selectOptions(within(header).getByRole("combobox", { name: "Status" }), "snoozed");
    const until = screen.getByLabelText("Snooze until");
    await userEvent.clear(until);
    await userEvent.type(until, "2020-01-01T10:00");
    await userEvent.click(screen.getByRole("button", { name: "Snooze" }));
    expect(await screen.findByRole("alert")).toHaveTextContent("Pick a time in the future.");
    expect(api.calls("POST", "/api/conversations/conv-1/status")).toHaveLength(0);

    const later = new Date(Date.now() + 3 * 86_400_000);
    later.setSeconds(0, 0);
    const pad = (n: number) => String(n).padStart(2, "0");
    await userEvent.clear(until);
    await userEvent.type(
      until,
      `${later.getFullYear()}-${pad(later.getMonth() + 1)}-${pad(later.getDate())}T${pad(later.getHours())}:${pad(later.getMinutes())}`,
    );
    await userEvent.click(screen.getByRole("button", { name: "Snooze" }));
    await waitFor(() =>
      expect(api.calls("POST", "/api/conversations/conv-1/status")[0]?.body).toEqual({
        status: "snoozed",
        snoozed_until: later.getTime(),
      }),
    );
    await waitFor(() => expect(screen.queryByLabelText("Snooze until")).toBeNull());
    expect(within(header).getByRole("combobox", { name: "Status" })).toHaveValue("snoozed");
  });

  it("assigns, labels and shows the contact with their other conversations", async () => {
    const api = fakeApi();
    await openConversation();
    const assignee = screen.getByRole("combobox", { name: "Assignee" });
    await waitFor(() => expect(within(assignee).getByRole("option", { name: "Ken" })).toBeInTheDocument());
    await userEvent.selectOptions(assignee, "Ken");
    await waitFor(() => expect(api.calls("POST", "/api/conversations/conv-1/assignee")[0]?.body).toEqual({ assignee_id: KEN }));
    await waitFor(() => expect(assignee).toHaveValue(KEN));

    const labels = screen.getByRole("group", { name: "Labels" });
    await userEvent.click(await within(labels).findByRole("checkbox", { name: "vip" }));
    await waitFor(() => expect(api.calls("PUT", "/api/conversations/conv-1/labels")[0]?.body).toEqual({ labels: ["vip"] }));
    await waitFor(() => expect(within(labels).getByRole("checkbox", { name: "vip" })).toBeChecked());

    const contact = screen.getByRole("region", { name: "Contact" });
    expect(await within(contact).findByText("+81 90 1234 5678")).toBeInTheDocument();
    expect(within(contact).getByText("U4af4980629")).toBeInTheDocument();
    expect(await within(contact).findByRole("link", { name: "#42 · Open" })).toHaveAttribute("href", "/conversations/conv-2");
    expect(within(contact).queryByRole("link", { name: "#41 · Open" })).toBeNull();
  });
});

describe("ConversationPage locators", () => {
  // The browser tests find controls as Playwright's getByLabel does: any label containing the words, in
  // any case. Each must answer to exactly one element, or those tests stop at a strict-mode violation.
  it("has one element for each label the browser tests use", async () => {
    fakeApi();
    await openConversation();
    const view = screen.getByRole("article", { name: "Hanako Sato #41" });
    for (const label of [/reply/i, /assignee/i, /priority/i, /labels/i]) {
      expect(screen.getAllByLabelText(label)).toHaveLength(1);
    }
    expect(within(view).getAllByLabelText(/status/i)).toHaveLength(1);
    expect(screen.getAllByRole("button", { name: /send/i })).toHaveLength(1);
    expect(screen.getAllByRole("button", { name: /resolve/i })).toHaveLength(1);
    await userEvent.keyboard("n");
    expect(screen.getAllByLabelText(/private note/i)).toHaveLength(1);
    await userEvent.keyboard("{Escape}");
    await userEvent.selectOptions(within(view).getByLabelText("Status"), "snoozed");
    expect(screen.getAllByLabelText(/snooze until/i)).toHaveLength(1);
  });
});

describe("ConversationPage changes", () => {
  it("ticks a label at once, before the server answers, and keeps it when it agrees", async () => {
    const api = fakeApi();
    let answer = () => {};
    api.state.labelsGate = new Promise((resolve) => (answer = resolve));
    await openConversation();
    const labels = screen.getByRole("group", { name: "Labels" });
    const billing = await within(labels).findByRole("checkbox", { name: "billing" });
    await userEvent.click(billing);
    expect(billing).toBeChecked();
    expect(within(labels).getByRole("status")).toHaveTextContent("Saving…");
    answer();
    await waitFor(() => expect(within(labels).queryByRole("status")).toBeNull());
    expect(billing).toBeChecked();
    expect(api.calls("PUT", "/api/conversations/conv-1/labels")[0]?.body).toEqual({ labels: ["billing"] });
  });
});

describe("inbox keyboard shortcuts", () => {
  it("j and k move to the next and previous conversation of the list", async () => {
    fakeApi();
    await openConversation();
    await userEvent.keyboard("j");
    await waitFor(() => expect(screen.getByTestId("location")).toHaveTextContent("/conversations/conv-2"));
    await screen.findByRole("heading", { name: "Hanako Sato #42" });
    await userEvent.keyboard("j");
    await waitFor(() => expect(screen.getByTestId("location")).toHaveTextContent("/conversations/conv-3"));
    await userEvent.keyboard("k");
    await waitFor(() => expect(screen.getByTestId("location")).toHaveTextContent("/conversations/conv-2"));
  });

  it("r and n focus the reply box in reply or note mode; Escape leaves it; typing j there is text", async () => {
    fakeApi();
    await openConversation();
    await userEvent.keyboard("n");
    const note = screen.getByRole("textbox", { name: "Private note" });
    expect(note).toHaveFocus();
    await userEvent.keyboard("just a note");
    expect(note).toHaveValue("just a note");
    expect(screen.getByTestId("location")).toHaveTextContent("/conversations/conv-1");
    await userEvent.keyboard("{Escape}");
    expect(note).not.toHaveFocus();
    await userEvent.keyboard("r");
    expect(screen.getByRole("textbox", { name: "Reply" })).toHaveFocus();
  });

  it("e resolves the open conversation", async () => {
    const api = fakeApi();
    await openConversation();
    await userEvent.keyboard("e");
    await waitFor(() => expect(api.calls("POST", "/api/conversations/conv-1/status")[0]?.body).toEqual({ status: "resolved" }));
    expect(await screen.findByRole("button", { name: "Reopen" })).toBeInTheDocument();
  });

  it("? opens the keyboard shortcuts help, and Escape closes it", async () => {
    fakeApi();
    await openConversation();
    await userEvent.keyboard("?");
    const help = screen.getByRole("dialog", { name: "Keyboard shortcuts" });
    expect(within(help).getByText("Next conversation")).toBeInTheDocument();
    expect(within(help).getByRole("button", { name: "Close" })).toHaveFocus();
    await userEvent.keyboard("{Escape}");
    expect(screen.queryByRole("dialog")).toBeNull();
  });
});
