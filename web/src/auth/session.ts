import type { components } from "../../generated/schema";

export type SessionBody = components["schemas"]["Session"];

/** Who is signed in: the access token (kept in memory only) and when it expires. */
export interface Session {
  accessToken: string;
  /** Unix ms. */
  expiresAt: number;
  user: SessionBody["user"];
  account: SessionBody["account"];
}

/**
 * The session store. The refresh token is kept in `localStorage` so that a reload (or a new tab) stays
 * signed in; the access token only in memory. `refresh` is single-flight: every caller that finds the
 * token expired waits for the same renewal.
 */
const REFRESH_KEY = "omnidesk.refresh_token";

type Listener = () => void;

let current: Session | null = null;
let renewing: Promise<Session | null> | null = null;
const listeners = new Set<Listener>();

function notify(): void {
  for (const listener of listeners) listener();
}

export function subscribe(listener: Listener): () => void {
  listeners.add(listener);
  return () => listeners.delete(listener);
}

export function getSession(): Session | null {
  return current;
}

export function hasRefreshToken(): boolean {
  return localStorage.getItem(REFRESH_KEY) !== null;
}

/** Keeps a session the API answered (login, refresh, invitation accepted). */
export function adopt(body: SessionBody): Session {
  localStorage.setItem(REFRESH_KEY, body.refresh_token);
  current = {
    accessToken: body.access_token,
    expiresAt: Date.now() + body.expires_in * 1000,
    user: body.user,
    account: body.account,
  };
  notify();
  return current;
}

/** Keeps the signed-in user as the API answered it after a change (name, e-mail, language). */
export function updateUser(user: SessionBody["user"]): void {
  if (current === null) return;
  current = { ...current, user };
  notify();
}

/** Forgets the session here (the caller tells the server first, when it can). */
export function forget(): void {
  localStorage.removeItem(REFRESH_KEY);
  current = null;
  notify();
}

export function refreshToken(): string | null {
  return localStorage.getItem(REFRESH_KEY);
}

/**
 * Renews the session with the refresh token (`POST /api/users/refresh`), once for every concurrent
 * caller. Answers `null` (and forgets the session) when the server refuses the token.
 */
export function renew(): Promise<Session | null> {
  if (renewing) return renewing;
  if (refreshToken() === null) return Promise.resolve(null);
  const attempt = async (): Promise<Session | null> => {
    // Read here, not before: while this tab waited for the lock another may have renewed it.
    const token = refreshToken();
    if (token === null) return null;
    const response = await fetch("/api/users/refresh", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ refresh_token: token }),
    });
    if (response.status === 401 || response.status === 422) {
      forget();
      return null;
    }
    if (!response.ok) throw new Error(`refresh answered ${response.status}`);
    return adopt((await response.json()) as SessionBody);
  };
  // One renewal at a time across this browser's tabs: they share the refresh token, and the server takes a
  // second use of a used one for a stolen token and ends the session (every tab would be signed out).
  const locks = globalThis.navigator?.locks;
  // (`request` answers what the callback's promise resolves to; the DOM typings nest the promise.)
  const renewal = locks ? (locks.request("omnidesk.refresh", attempt) as unknown as Promise<Session | null>) : attempt();
  renewing = renewal.finally(() => {
    renewing = null;
  });
  return renewing;
}

/** A valid access token: the current one, or a renewed one when it expires within half a minute. */
export async function accessToken(): Promise<string | null> {
  if (current && current.expiresAt - Date.now() > 30_000) return current.accessToken;
  const renewed = await renew();
  return renewed?.accessToken ?? null;
}
