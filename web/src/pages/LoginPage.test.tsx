import { QueryClient, QueryClientProvider } from "@tanstack/react-query";
import { render, screen } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { MemoryRouter } from "react-router-dom";
import { afterEach, describe, expect, it, vi } from "vitest";
import { getSession } from "../auth/session";
import i18n from "../i18n";
import { LoginPage } from "./LoginPage";

function renderLogin() {
  const client = new QueryClient({ defaultOptions: { mutations: { retry: false } } });
  return render(
    <QueryClientProvider client={client}>
      <MemoryRouter>
        <LoginPage />
      </MemoryRouter>
    </QueryClientProvider>,
  );
}

function answer(status: number, body: unknown, type = "application/json") {
  return new Response(JSON.stringify(body), { status, headers: { "content-type": type } });
}

afterEach(() => vi.unstubAllGlobals());

describe("LoginPage", () => {
  it("says in words why a login was refused, and keeps no session", async () => {
    await i18n.changeLanguage("en");
    const fetch = vi.fn(async (_request: Request) =>
      answer(401, { type: "about:blank", title: "Unauthorized", status: 401, code: "invalid_credentials" }, "application/problem+json"),
    );
    vi.stubGlobal("fetch", fetch);
    renderLogin();
    await userEvent.type(screen.getByLabelText("E-mail"), "aiko@example.jp");
    await userEvent.type(screen.getByLabelText("Password"), "wrong password");
    await userEvent.click(screen.getByRole("button", { name: "Log in" }));
    expect(await screen.findByRole("alert")).toHaveTextContent("The e-mail or password is not right.");
    expect(getSession()).toBeNull();
    const request = fetch.mock.calls[0]?.[0];
    if (!request) throw new Error("no request was sent");
    expect(request.url).toMatch(/\/api\/users\/login$/);
    expect(await request.json()).toEqual({ email: "aiko@example.jp", password: "wrong password" });
  });

  it("keeps the session the server answers", async () => {
    vi.stubGlobal("fetch", async () =>
      answer(200, {
        access_token: "at",
        token_type: "Bearer",
        expires_in: 900,
        refresh_token: "rt",
        refresh_expires_in: 86400,
        user: { id: "u", email: "aiko@example.jp", name: "Aiko", language: "ja", created_at: "", updated_at: "" },
        account: { id: "a", name: "Aiko", role: "owner" },
      }),
    );
    renderLogin();
    await userEvent.type(screen.getByLabelText("E-mail"), "aiko@example.jp");
    await userEvent.type(screen.getByLabelText("Password"), "correct horse battery");
    await userEvent.click(screen.getByRole("button", { name: "Log in" }));
    await vi.waitFor(() => expect(getSession()?.accessToken).toBe("at"));
    expect(localStorage.getItem("omnidesk.refresh_token")).toBe("rt");
  });

  it("is in Japanese when the language is Japanese", async () => {
    await i18n.changeLanguage("ja");
    renderLogin();
    expect(screen.getByRole("heading", { name: "OmniDesk にログイン" })).toBeInTheDocument();
    expect(screen.getByLabelText("メールアドレス")).toBeInTheDocument();
  });
});
