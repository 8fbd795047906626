import { screen } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { forget, getSession } from "../../auth/session";
import i18n from "../../i18n";
import { fakeApi, json, problem, renderAt, signIn } from "../../test/fakeApi";
import { ProfileSettings } from "./ProfileSettings";

const stored = {
  id: "u-1",
  email: "aiko@example.jp",
  name: "Aiko",
  language: "ja",
  created_at: "2025-01-01T00:00:00Z",
  updated_at: "2025-02-01T00:00:00Z",
  account: { id: "a-1", name: "Aiko's shop", role: "owner" },
};

beforeEach(async () => {
  await i18n.changeLanguage("en");
});
afterEach(async () => {
  forget();
  vi.unstubAllGlobals();
  await i18n.changeLanguage("en");
});

describe("ProfileSettings", () => {
  it("changes the language at once, and the session's user with it", async () => {
    const user = userEvent.setup();
    signIn("owner", "en");
    const { calls } = fakeApi({ "PUT /api/users/u-1": () => json(stored) });
    renderAt(<ProfileSettings />);
    await user.selectOptions(screen.getByLabelText("Language"), "日本語");
    await user.click(screen.getByRole("button", { name: "Save" }));
    expect(await screen.findByRole("heading", { name: "プロフィール" })).toBeInTheDocument();
    expect(i18n.language).toBe("ja");
    expect(document.documentElement.lang).toBe("ja");
    expect(getSession()?.user.language).toBe("ja");
    expect(calls[0]?.body).toEqual({ language: "ja" });
    expect(screen.getByText("プロフィールを保存しました。")).toBeInTheDocument();
  });

  it("sends only what changed, and says in words when another user has the e-mail", async () => {
    const user = userEvent.setup();
    signIn("agent", "en");
    const { calls } = fakeApi({ "PUT /api/users/u-1": () => ({ status: 409, body: problem(409, "email_taken") }) });
    renderAt(<ProfileSettings />);
    const email = screen.getByLabelText("E-mail");
    await user.clear(email);
    await user.type(email, "kenji@example.jp");
    await user.click(screen.getByRole("button", { name: "Save" }));
    expect(await screen.findByRole("alert")).toHaveTextContent("Another user already has this e-mail address.");
    expect(calls[0]?.body).toEqual({ email: "kenji@example.jp" });
    expect(getSession()?.user.email).toBe("aiko@example.jp");
  });

  it("changes the password with the current one and signs in again with the new one", async () => {
    const user = userEvent.setup();
    signIn("owner", "en");
    const { calls } = fakeApi({
      "PUT /api/users/u-1": () => json(stored),
      "POST /api/users/login": () =>
        json({
          access_token: "at-2",
          token_type: "Bearer",
          expires_in: 900,
          refresh_token: "rt-2",
          refresh_expires_in: 86400,
          user: stored,
          account: stored.account,
        }),
    });
    renderAt(<ProfileSettings />);
    await user.type(screen.getByLabelText("Current password"), "old password");
    await user.type(screen.getByLabelText("New password"), "new password 123");
    await user.click(screen.getByRole("button", { name: "Change password" }));
    expect(await screen.findByText(/Your password is changed/)).toBeInTheDocument();
    expect(calls[0]?.body).toEqual({ password: "new password 123", current_password: "old password" });
    expect(calls[1]?.body).toEqual({ email: "aiko@example.jp", password: "new password 123" });
    expect(getSession()?.accessToken).toBe("at-2");
  });
});
