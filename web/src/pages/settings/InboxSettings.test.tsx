import { screen, within } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { forget } from "../../auth/session";
import i18n from "../../i18n";
import { fakeApi, json, problem, renderAt, signIn } from "../../test/fakeApi";
import { InboxSettings } from "./InboxSettings";

const created = {
  id: "in-1",
  name: "Website",
  channel: "api",
  identifier: "inb_abc123",
  callback_url: "https://shop.example.jp/hooks",
  created_at: 1,
  updated_at: 1,
  secret: "chs_s3cret",
};

beforeEach(async () => {
  await i18n.changeLanguage("en");
});
afterEach(() => {
  forget();
  vi.unstubAllGlobals();
});

describe("InboxSettings", () => {
  it("shows a new inbox's endpoint, identifier and secret once, and the secret can be copied", async () => {
    const user = userEvent.setup();
    signIn("owner");
    let stored: unknown[] = [];
    const { calls } = fakeApi({
      "GET /api/inboxes": () => json(stored),
      "POST /api/inboxes": () => {
        // The list never holds the secret again.
        stored = [{ ...created, secret: null }];
        return json(created, 201);
      },
    });
    renderAt(<InboxSettings />);
    expect(await screen.findByText("No inboxes yet.")).toBeInTheDocument();

    await user.type(screen.getByLabelText("Inbox name"), "Website");
    await user.selectOptions(screen.getByLabelText("Channel"), "api");
    await user.type(screen.getByLabelText("Callback URL"), "https://shop.example.jp/hooks");
    await user.click(screen.getByRole("button", { name: "Create inbox" }));

    expect(await screen.findByLabelText("Secret")).toHaveTextContent("chs_s3cret");
    expect(screen.getByLabelText("Identifier")).toHaveTextContent("inb_abc123");
    expect(screen.getByLabelText("Endpoint")).toHaveTextContent(`${location.origin}/public/api/v1/inboxes/inb_abc123/messages`);
    expect(screen.getByText(/shown only once/)).toBeInTheDocument();
    expect(calls.find((call) => call.method === "POST")?.body).toEqual({
      name: "Website",
      channel: "api",
      callback_url: "https://shop.example.jp/hooks",
    });

    const secret = screen.getByLabelText("Secret").closest(".copy-value");
    if (!(secret instanceof HTMLElement)) throw new Error("no copy field around the secret");
    await user.click(within(secret).getByRole("button", { name: "Copy" }));
    expect(await navigator.clipboard.readText()).toBe("chs_s3cret");
    expect(within(secret).getByText("Copied.")).toBeInTheDocument();

    await user.click(screen.getByRole("button", { name: "I have copied it" }));
    expect(screen.queryByText("chs_s3cret")).not.toBeInTheDocument();
    expect(await screen.findByText("Website")).toBeInTheDocument();
  });

  it("takes the last inbox's secret away as soon as another inbox is being created", async () => {
    const user = userEvent.setup();
    signIn("owner");
    let release: () => void = () => undefined;
    fakeApi({
      "GET /api/inboxes": () => json([]),
      "POST /api/inboxes": async (request) => {
        const { name } = (await request.json()) as { name: string };
        if (name === "Website") return json(created, 201);
        await new Promise<void>((resolve) => (release = resolve));
        return json({ ...created, id: "in-2", name: "Shop", identifier: "inb_shop", secret: "chs_shop" }, 201);
      },
    });
    renderAt(<InboxSettings />);
    await user.type(screen.getByLabelText("Inbox name"), "Website");
    await user.click(screen.getByRole("button", { name: "Create inbox" }));
    expect(await screen.findByLabelText("Secret")).toHaveTextContent("chs_s3cret");

    await user.clear(screen.getByLabelText("Inbox name"));
    await user.type(screen.getByLabelText("Inbox name"), "Shop");
    await user.click(screen.getByRole("button", { name: "Create inbox" }));
    expect(screen.queryByLabelText("Secret")).not.toBeInTheDocument();
    expect(screen.getByRole("status")).toHaveTextContent("Saving…");
    release();
    expect(await screen.findByLabelText("Secret")).toHaveTextContent("chs_shop");
    expect(screen.getByLabelText("Identifier")).toHaveTextContent("inb_shop");
  });

  it("offers LINE and e-mail as not available, and says so when the server refuses a channel", async () => {
    const user = userEvent.setup();
    signIn("admin");
    fakeApi({
      "GET /api/inboxes": () => json([]),
      "POST /api/inboxes": () => ({ status: 422, body: problem(422, "channel_not_available") }),
    });
    renderAt(<InboxSettings />);
    const channel = screen.getByLabelText("Channel");
    expect(within(channel).getByRole("option", { name: "LINE (not available yet)" })).toBeDisabled();
    expect(within(channel).getByRole("option", { name: "E-mail (not available yet)" })).toBeDisabled();
    expect(within(channel).getByRole("option", { name: "API" })).toBeEnabled();

    await user.type(screen.getByLabelText("Inbox name"), "Support");
    await user.click(screen.getByRole("button", { name: "Create inbox" }));
    expect(await screen.findByRole("alert")).toHaveTextContent("This channel is not available yet.");
    expect(screen.queryByLabelText("Secret")).not.toBeInTheDocument();
  });

  it("deletes an inbox only after the confirmation, and says why the server kept one", async () => {
    const user = userEvent.setup();
    signIn("owner");
    const { calls } = fakeApi({
      "GET /api/inboxes": () => json([{ ...created, secret: null }]),
      "GET /api/users": () => json([]),
      "GET /api/inboxes/in-1/members": () => json({ user_ids: [] }),
      "DELETE /api/inboxes/in-1": () => ({ status: 409, body: problem(409, "inbox_not_empty") }),
    });
    renderAt(<InboxSettings />);
    await user.click(await screen.findByRole("button", { name: "Delete: Website" }));
    expect(calls.some((call) => call.method === "DELETE")).toBe(false);
    expect(screen.getByRole("button", { name: "Cancel" })).toHaveFocus();
    await user.click(screen.getByRole("button", { name: "Yes: Delete" }));
    expect(await screen.findByRole("alert")).toHaveTextContent("This inbox has conversations");
    expect(calls.filter((call) => call.method === "DELETE")).toHaveLength(1);
  });

  it("shows agents the inboxes without the controls only owners and admins may use", async () => {
    signIn("agent");
    fakeApi({
      "GET /api/inboxes": () => json([{ ...created, secret: null }]),
      "GET /api/users": () => json([{ id: "u-1", name: "Aiko", email: "aiko@example.jp", role: "agent", language: "ja", created_at: "2025-01-01T00:00:00Z" }]),
      "GET /api/inboxes/in-1/members": () => json({ user_ids: ["u-1"] }),
    });
    renderAt(<InboxSettings />);
    expect(await screen.findByText("Website")).toBeInTheDocument();
    // Who answers is shown, not changeable.
    expect(await screen.findByRole("checkbox", { name: /Aiko/ })).toBeDisabled();
    expect(screen.queryByRole("button", { name: "Save members" })).not.toBeInTheDocument();
    expect(screen.getByText(/Only owners and admins can change this/)).toBeInTheDocument();
    expect(screen.queryByRole("button", { name: "Create inbox" })).not.toBeInTheDocument();
    expect(screen.queryByRole("button", { name: /Delete/ })).not.toBeInTheDocument();
  });

  it("sets who answers an inbox", async () => {
    const user = userEvent.setup();
    signIn("owner");
    const { calls } = fakeApi({
      "GET /api/inboxes": () => json([{ ...created, secret: null }]),
      "GET /api/users": () =>
        json([
          { id: "u-1", name: "Aiko", email: "aiko@example.jp", role: "owner", language: "ja", created_at: "2025-01-01T00:00:00Z" },
          { id: "u-2", name: "Kenji", email: "kenji@example.jp", role: "agent", language: "ja", created_at: "2025-01-02T00:00:00Z" },
        ]),
      "GET /api/inboxes/in-1/members": () => json({ user_ids: ["u-1"] }),
      "PUT /api/inboxes/in-1/members": () => json({ user_ids: ["u-1", "u-2"] }),
    });
    renderAt(<InboxSettings />);
    const website = await screen.findByRole("group", { name: /Website/ });
    expect(await within(website).findByRole("checkbox", { name: /Aiko/ })).toBeChecked();
    await user.click(within(website).getByRole("checkbox", { name: /Kenji/ }));
    await user.click(within(website).getByRole("button", { name: "Save members" }));
    expect(await within(website).findByRole("status")).toHaveTextContent("Saved.");
    expect(calls.find((call) => call.method === "PUT")?.body).toEqual({ user_ids: ["u-1", "u-2"] });
  });
});
