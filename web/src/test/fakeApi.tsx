import { QueryClient, QueryClientProvider } from "@tanstack/react-query";
import { render } from "@testing-library/react";
import type { ReactNode } from "react";
import { MemoryRouter } from "react-router-dom";
import { vi } from "vitest";
import type { Schemas } from "../api/client";
import { adopt } from "../auth/session";

/** What a fake answers: a status and a JSON body (problem documents get their media type). */
export interface Reply {
  status: number;
  body?: unknown;
}

type Handler = (request: Request) => Reply | Promise<Reply>;

/**
 * A stand-in for the server at `globalThis.fetch`: `"METHOD /path"` → handler. A call nobody expected
 * fails the test's request with 599, so a page calling the wrong route cannot pass silently.
 */
export function fakeApi(routes: Record<string, Handler>) {
  const calls: { method: string; path: string; search: string; body: unknown }[] = [];
  const fetch = vi.fn(async (request: Request) => {
    const url = new URL(request.url);
    const text = request.method === "GET" || request.method === "DELETE" ? "" : await request.clone().text();
    calls.push({ method: request.method, path: url.pathname, search: url.search, body: text === "" ? undefined : JSON.parse(text) });
    const handler = routes[`${request.method} ${url.pathname}`];
    const reply = handler ? await handler(request) : { status: 599, body: problem(599, "unexpected_route") };
    const type = reply.status >= 400 ? "application/problem+json" : "application/json";
    if (reply.status === 204) return new Response(null, { status: 204 });
    return new Response(JSON.stringify(reply.body ?? null), { status: reply.status, headers: { "content-type": type } });
  });
  vi.stubGlobal("fetch", fetch);
  return { fetch, calls };
}

export function problem(status: number, code: string, detail?: string) {
  return { type: "about:blank", title: "Refused", status, code, ...(detail ? { detail } : {}) };
}

export function json(body: unknown, status = 200): Reply {
  return { status, body };
}

/** Signs a member in (no request: the session is adopted as a login would). */
export function signIn(role: Schemas["Role"] = "owner", language: Schemas["Language"] = "en") {
  return adopt({
    access_token: "at",
    token_type: "Bearer",
    expires_in: 900,
    refresh_token: "rt",
    refresh_expires_in: 86400,
    user: { id: "u-1", email: "aiko@example.jp", name: "Aiko", language, created_at: "2025-01-01T00:00:00Z", updated_at: "2025-01-01T00:00:00Z" },
    account: { id: "a-1", name: "Aiko's shop", role },
  });
}

/** Renders `element` as the app would: a query client (no retries) and a router at `path`. */
export function renderAt(element: ReactNode, path = "/") {
  const client = new QueryClient({ defaultOptions: { queries: { retry: false }, mutations: { retry: false } } });
  return render(
    <QueryClientProvider client={client}>
      <MemoryRouter initialEntries={[path]}>{element}</MemoryRouter>
    </QueryClientProvider>,
  );
}
