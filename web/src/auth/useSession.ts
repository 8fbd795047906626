import { useSyncExternalStore } from "react";
import { getSession, subscribe, type Session } from "./session";

/** The current session, re-rendering when it changes (signed in, renewed, signed out). */
export function useSession(): Session | null {
  return useSyncExternalStore(subscribe, getSession);
}
