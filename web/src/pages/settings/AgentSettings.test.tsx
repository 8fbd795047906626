import { screen, within } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { forget } from "../../auth/session";
import i18n from "../../i18n";
import { fakeApi, json, problem, renderAt, signIn } from "../../test/fakeApi";
import { AgentSettings } from "./AgentSettings";

const members = [
  { id: "u-1", name: "Aiko", email: "aiko@example.jp", role: "owner", language: "ja", created_at: "2025-01-01T00:00:00Z" },
  { id: "u-2", name: "Kenji", email: "kenji@example.jp", role: "agent", language: "ja", created_at: "2025-01-02T00:00:00Z" },
];
const invitation = {
  id: "inv-1",
  email: "yui@example.jp",
  name: "Yui",
  role: "admin",
  created_at: "2025-02-01T00:00:00Z",
  expires_at: "2025-02-08T00:00:00Z",
};

beforeEach(async () => {
  await i18n.changeLanguage("en");
});
afterEach(() => {
  forget();
  vi.unstubAllGlobals();
});

describe("AgentSettings", () => {
  it("changes a member's role, and offers ownership only to owners", async () => {
    const user = userEvent.setup();
    signIn("owner");
    let listed = members;
    const { calls } = fakeApi({
      "GET /api/users": () => json(listed),
      "GET /api/users/invitations": () => json([]),
      "PUT /api/users/u-2/role": () => {
        listed = [members[0]!, { ...members[1]!, role: "admin" }];
        return json(listed[1]);
      },
    });
    renderAt(<AgentSettings />);
    const role = await screen.findByLabelText("Role of Kenji");
    expect(within(role).getAllByRole("option").map((o) => o.textContent)).toEqual(["Owner", "Admin", "Agent"]);
    // Nobody changes their own role.
    expect(screen.queryByLabelText("Role of Aiko")).not.toBeInTheDocument();

    await user.selectOptions(role, "admin");

    expect(await screen.findByText("Kenji's role is changed; it applies to their next request.")).toBeInTheDocument();
    expect(calls.find((call) => call.method === "PUT")?.body).toEqual({ role: "admin" });
    expect(await screen.findByText(/^Admin ·/)).toBeInTheDocument();
  });

  it("shows why a role change was refused", async () => {
    const user = userEvent.setup();
    signIn("admin");
    fakeApi({
      "GET /api/users": () => json(members),
      "GET /api/users/invitations": () => json([]),
      "PUT /api/users/u-2/role": () => ({ status: 403, body: problem(403, "forbidden", "Only an owner may grant or change ownership.") }),
    });
    renderAt(<AgentSettings />);
    const role = await screen.findByLabelText("Role of Kenji");
    expect(within(role).getAllByRole("option").map((o) => o.textContent)).toEqual(["Admin", "Agent"]);
    await user.selectOptions(role, "admin");
    expect(await screen.findByRole("alert")).toHaveTextContent(/./);
  });

  it("invites a member and shows the invitation link with its token once", async () => {
    const user = userEvent.setup();
    signIn("owner");
    let pending: unknown[] = [];
    const { calls } = fakeApi({
      "GET /api/users": () => json(members),
      "GET /api/users/invitations": () => json(pending),
      "POST /api/users/invitations": () => {
        pending = [invitation];
        return json({ invitation, token: "tok_9f8e7d" }, 201);
      },
    });
    renderAt(<AgentSettings />);
    expect(await screen.findByText("No pending invitations.")).toBeInTheDocument();

    await user.type(screen.getByLabelText("E-mail"), "yui@example.jp");
    await user.type(screen.getByLabelText("Name"), "Yui");
    await user.selectOptions(screen.getByLabelText("Role"), "admin");
    await user.click(screen.getByRole("button", { name: "Invite" }));

    expect(await screen.findByLabelText("Invitation link")).toHaveTextContent(`${location.origin}/invitations/accept#tok_9f8e7d`);
    expect(screen.getByText(/shown only once/)).toBeInTheDocument();
    expect(calls.find((call) => call.method === "POST")?.body).toEqual({ email: "yui@example.jp", role: "admin", name: "Yui" });
    // The new invitation is listed as pending.
    expect(await screen.findByText("yui@example.jp")).toBeInTheDocument();

    await user.click(screen.getByRole("button", { name: "I have copied it" }));
    expect(screen.queryByText(/tok_9f8e7d/)).not.toBeInTheDocument();
  });

  it("says in words that an invited address already has an account", async () => {
    const user = userEvent.setup();
    signIn("admin");
    fakeApi({
      "GET /api/users": () => json(members),
      "GET /api/users/invitations": () => json([]),
      "POST /api/users/invitations": () => ({ status: 409, body: problem(409, "email_taken") }),
    });
    renderAt(<AgentSettings />);
    await user.type(screen.getByLabelText("E-mail"), "kenji@example.jp");
    await user.click(screen.getByRole("button", { name: "Invite" }));
    expect(await screen.findByRole("alert")).toHaveTextContent("Someone already has an account with this e-mail address.");
    expect(screen.queryByLabelText("Invitation link")).not.toBeInTheDocument();
  });

  it("revokes a pending invitation after the confirmation", async () => {
    const user = userEvent.setup();
    signIn("owner");
    let pending: unknown[] = [invitation];
    const { calls } = fakeApi({
      "GET /api/users": () => json(members),
      "GET /api/users/invitations": () => json(pending),
      "DELETE /api/users/invitations/inv-1": () => {
        pending = [];
        return { status: 204 };
      },
    });
    renderAt(<AgentSettings />);
    await user.click(await screen.findByRole("button", { name: "Revoke: yui@example.jp" }));
    const confirm = screen.getByRole("group", { name: /Revoke the invitation of yui@example.jp/ });
    await user.click(within(confirm).getByRole("button", { name: "Yes: Revoke" }));
    expect(await screen.findByText("No pending invitations.")).toBeInTheDocument();
    expect(calls.filter((call) => call.method === "DELETE")).toHaveLength(1);
  });

  it("lets nobody remove themselves, and removes another member after the confirmation", async () => {
    const user = userEvent.setup();
    signIn("owner");
    const { calls } = fakeApi({
      "GET /api/users": () => json(members),
      "GET /api/users/invitations": () => json([]),
      "DELETE /api/users/u-2": () => ({ status: 204 }),
    });
    renderAt(<AgentSettings />);
    expect(await screen.findByText("Kenji")).toBeInTheDocument();
    expect(screen.queryByRole("button", { name: "Remove: Aiko" })).not.toBeInTheDocument();
    await user.click(screen.getByRole("button", { name: "Remove: Kenji" }));
    await user.click(screen.getByRole("button", { name: "Yes: Remove" }));
    await vi.waitFor(() => expect(calls.some((call) => call.method === "DELETE" && call.path === "/api/users/u-2")).toBe(true));
  });

  it("shows agents the members but neither invitations nor the invite form", async () => {
    signIn("agent");
    const { calls } = fakeApi({ "GET /api/users": () => json(members) });
    renderAt(<AgentSettings />);
    expect(await screen.findByText("Kenji")).toBeInTheDocument();
    expect(screen.queryByRole("button", { name: "Invite" })).not.toBeInTheDocument();
    expect(screen.queryByRole("button", { name: /Remove/ })).not.toBeInTheDocument();
    expect(screen.getByText(/Only owners and admins can change this/)).toBeInTheDocument();
    expect(calls.some((call) => call.path === "/api/users/invitations")).toBe(false);
  });
});
