import { fireEvent, screen, within } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { Route, Routes, useLocation } from "react-router-dom";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { forget } from "../auth/session";
import i18n from "../i18n";
import { fakeApi, json, renderAt, signIn } from "../test/fakeApi";
import SearchPage from "./SearchPage";

const found = {
  contacts: [{ id: "c-1", name: "山田 花子", email: "hanako@example.jp", phone: null, created_at: 1, updated_at: 1 }],
  conversations: [
    {
      id: "cv-1",
      display_id: 42,
      inbox_id: "in-1",
      status: "open",
      priority: "none",
      unread_count: 0,
      labels: [],
      contact: { id: "c-1", name: "山田 花子" },
      last_message: { preview: "返品したいです", kind: "incoming" },
      last_message_at: 1,
      created_at: 1,
      updated_at: 1,
    },
  ],
  messages: [{ id: "m-1", conversation_id: "cv-2", kind: "incoming", content: "返品の送料はいくらですか", created_at: Date.UTC(2025, 1, 1) }],
};

function Where() {
  const location = useLocation();
  return <p data-testid="where">{location.pathname + location.search}</p>;
}

function renderSearch(path: string) {
  return renderAt(
    <>
      <Routes>
        <Route path="/search" element={<SearchPage />} />
        <Route path="/conversations/:id" element={<p>conversation page</p>} />
      </Routes>
      <Where />
    </>,
    path,
  );
}

beforeEach(async () => {
  await i18n.changeLanguage("en");
  signIn("agent");
});
afterEach(() => {
  forget();
  vi.unstubAllGlobals();
});

describe("SearchPage", () => {
  it("runs the query in the URL and groups what it finds as contacts, conversations and messages, each a link", async () => {
    const { calls } = fakeApi({ "GET /api/search": () => json(found) });
    renderSearch(`/search?q=${encodeURIComponent("返品")}`);
    expect(screen.getByLabelText("Search")).toHaveValue("返品");

    const conversations = await screen.findByRole("region", { name: "Conversations (1)" });
    expect(within(conversations).getByRole("link", { name: /#42/ })).toHaveAttribute("href", "/conversations/cv-1");
    const messages = screen.getByRole("region", { name: "Messages (1)" });
    expect(within(messages).getByRole("link", { name: /返品の送料はいくらですか/ })).toHaveAttribute("href", "/conversations/cv-2");
    const contacts = screen.getByRole("region", { name: "Contacts (1)" });
    expect(within(contacts).getByRole("button", { name: /山田 花子/ })).toBeInTheDocument();
    expect(new URLSearchParams(calls[0]?.search).get("q")).toBe("返品");
  });

  it("opens a contact's conversations as links", async () => {
    const user = userEvent.setup();
    fakeApi({
      "GET /api/search": () => json(found),
      "GET /api/contacts/c-1/conversations": () => json(found.conversations),
    });
    renderSearch("/search?q=hanako");
    const contacts = await screen.findByRole("region", { name: "Contacts (1)" });
    await user.click(within(contacts).getByRole("button", { name: /山田 花子/ }));
    expect(await within(contacts).findByRole("link", { name: /#42/ })).toHaveAttribute("href", "/conversations/cv-1");
  });

  it("puts the query in the URL on Enter", async () => {
    const user = userEvent.setup();
    const { calls } = fakeApi({ "GET /api/search": () => json({ contacts: [], conversations: [], messages: [] }) });
    renderSearch("/search");
    await user.type(screen.getByLabelText("Search"), "refund{Enter}");
    expect(await screen.findByText("Nothing matches “refund”.")).toBeInTheDocument();
    expect(screen.getByTestId("where")).toHaveTextContent("/search?q=refund");
    expect(calls.filter((call) => call.path === "/api/search")).toHaveLength(1);
  });

  it("does not search while an input method is composing, and does once the text is converted", async () => {
    const { calls } = fakeApi({ "GET /api/search": () => json(found) });
    renderSearch("/search");
    const box = screen.getByLabelText("Search");
    fireEvent.compositionStart(box);
    fireEvent.change(box, { target: { value: "へんぴん" } });
    fireEvent.keyDown(box, { key: "Enter", keyCode: 229 });
    fireEvent.submit(box);
    await new Promise((resolve) => setTimeout(resolve, 600));
    expect(calls).toHaveLength(0);
    expect(screen.getByTestId("where")).toHaveTextContent(/^\/search$/);

    fireEvent.change(box, { target: { value: "返品" } });
    fireEvent.compositionEnd(box);
    expect(await screen.findByRole("region", { name: "Messages (1)" })).toBeInTheDocument();
    expect(screen.getByTestId("where")).toHaveTextContent(`/search?q=${encodeURIComponent("返品")}`);
    expect(calls).toHaveLength(1);
  });
});
