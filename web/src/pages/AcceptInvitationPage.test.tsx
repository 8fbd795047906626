import { screen } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { Route, Routes } from "react-router-dom";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { forget, getSession } from "../auth/session";
import i18n from "../i18n";
import { fakeApi, json, problem, renderAt } from "../test/fakeApi";
import AcceptInvitationPage from "./AcceptInvitationPage";

const session = {
  access_token: "at-new",
  token_type: "Bearer",
  expires_in: 900,
  refresh_token: "rt-new",
  refresh_expires_in: 86400,
  user: { id: "u-9", email: "yui@example.jp", name: "Yui", language: "en", created_at: "", updated_at: "" },
  account: { id: "a-1", name: "Aiko's shop", role: "admin" },
};

function renderAccept(path: string) {
  return renderAt(
    <Routes>
      <Route path="/invitations/accept" element={<AcceptInvitationPage />} />
      <Route path="/" element={<p>the inbox</p>} />
    </Routes>,
    path,
  );
}

beforeEach(async () => {
  await i18n.changeLanguage("en");
});
afterEach(() => {
  forget();
  vi.unstubAllGlobals();
});

describe("AcceptInvitationPage", () => {
  it("accepts the invitation in the link's fragment, keeps the session it answers and opens the inbox", async () => {
    const user = userEvent.setup();
    const { calls } = fakeApi({ "POST /api/users/invitations/accept": () => json(session, 201) });
    renderAccept("/invitations/accept#tok_9f8e7d");
    await user.type(screen.getByLabelText("Your name"), "Yui");
    await user.type(screen.getByLabelText("Password"), "correct horse battery");
    await user.selectOptions(screen.getByLabelText("Language"), "English");
    await user.click(screen.getByRole("button", { name: "Join" }));
    expect(await screen.findByText("the inbox")).toBeInTheDocument();
    expect(calls[0]?.body).toEqual({ token: "tok_9f8e7d", name: "Yui", password: "correct horse battery", language: "en" });
    expect(getSession()?.accessToken).toBe("at-new");
    expect(getSession()?.account.role).toBe("admin");
  });

  it("says in words that an invitation has expired, and signs nobody in", async () => {
    const user = userEvent.setup();
    fakeApi({ "POST /api/users/invitations/accept": () => ({ status: 410, body: problem(410, "invitation_expired") }) });
    renderAccept("/invitations/accept#tok_old");
    await user.type(screen.getByLabelText("Your name"), "Yui");
    await user.type(screen.getByLabelText("Password"), "correct horse battery");
    await user.click(screen.getByRole("button", { name: "Join" }));
    expect(await screen.findByRole("alert")).toHaveTextContent("This invitation has expired. Ask for a new one.");
    expect(getSession()).toBeNull();
  });

  it("says so when the invited address has an account already", async () => {
    const user = userEvent.setup();
    fakeApi({ "POST /api/users/invitations/accept": () => ({ status: 409, body: problem(409, "email_taken") }) });
    renderAccept("/invitations/accept#tok_x");
    await user.type(screen.getByLabelText("Your name"), "Yui");
    await user.type(screen.getByLabelText("Password"), "correct horse battery");
    await user.click(screen.getByRole("button", { name: "Join" }));
    expect(await screen.findByRole("alert")).toHaveTextContent("An account with the invited e-mail address already exists.");
  });

  it("says a link without a token holds no invitation, and cannot be submitted", () => {
    renderAccept("/invitations/accept");
    expect(screen.getByRole("alert")).toHaveTextContent("This link has no invitation in it.");
    expect(screen.getByRole("button", { name: "Join" })).toBeDisabled();
  });

  it("is in Japanese when the language is Japanese", async () => {
    await i18n.changeLanguage("ja");
    renderAccept("/invitations/accept#tok");
    expect(screen.getByLabelText("お名前")).toBeInTheDocument();
    expect(screen.getByRole("button", { name: "参加する" })).toBeInTheDocument();
  });
});
