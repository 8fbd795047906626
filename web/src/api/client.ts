import createClient, { type Middleware } from "openapi-fetch";
import { accessToken, getSession, renew } from "../auth/session";
import type { components, paths } from "../../generated/schema";

export type Schemas = components["schemas"];

/** Paths that take no access token: sending one would be harmless, renewing one for them is not. */
const PUBLIC = ["/api/users/login", "/api/users/register", "/api/users/refresh", "/api/users/invitations/accept", "/api/plans"];

const retries = new WeakMap<Request, Request>();

/**
 * Adds the access token to every call, renewing it first when it is about to expire; an answer of 401
 * `token_expired` or `token_revoked` renews it once and repeats the call.
 */
const auth: Middleware = {
  async onRequest({ request, schemaPath }) {
    if (PUBLIC.includes(schemaPath)) return request;
    const token = await accessToken();
    if (token !== null) request.headers.set("authorization", `Bearer ${token}`);
    retries.set(request, request.clone());
    return request;
  },
  async onResponse({ request, response }) {
    const again = retries.get(request);
    if (response.status !== 401 || again === undefined) return response;
    const problem = (await response.clone().json().catch(() => null)) as { code?: string } | null;
    // Expired (a clock that disagrees), or revoked by a change of role: a renewed token carries the change.
    // (A member removed or signed out everywhere cannot renew, and is signed out.)
    if (problem?.code !== "token_expired" && problem?.code !== "token_revoked") return response;
    const before = getSession()?.user.id;
    const renewed = await renew();
    // Not as someone else: another tab may have signed in another user meanwhile.
    if (renewed === null || renewed.user.id !== before) return response;
    again.headers.set("authorization", `Bearer ${renewed.accessToken}`);
    return globalThis.fetch(again);
  },
};

/** The typed API client, generated from the server's OpenAPI document (`npm run gen`). */
export const api = createClient<paths>({
  baseUrl: globalThis.location.origin,
  // Looked up at each call, not captured once.
  fetch: (request) => globalThis.fetch(request),
});
api.use(auth);
