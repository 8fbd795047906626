import { useQueryClient } from "@tanstack/react-query";
import { useEffect, useState } from "react";
import { accessToken, getSession, renew } from "../auth/session";
import { CacheUpdater } from "./apply";
import { type ConnectionState, RealtimeFeed } from "./socket";

/**
 * Keeps the signed-in console connected to the realtime feed while `userId` is signed in, applying each
 * event to the query cache; answers the connection's state (the shell shows a banner while offline).
 */
export function useRealtime(userId: string | undefined): ConnectionState {
  const client = useQueryClient();
  const [state, setState] = useState<ConnectionState>("connecting");
  useEffect(() => {
    if (userId === undefined) return;
    const cache = new CacheUpdater(client, () => getSession()?.user.id);
    const feed = new RealtimeFeed(
      { onEvent: (event) => cache.apply(event), onResync: () => cache.reloadAll(), onState: setState },
      { token: accessToken, renewToken: async () => (await renew())?.accessToken ?? null },
    );
    feed.start();
    return () => {
      feed.stop();
      cache.stop();
    };
  }, [client, userId]);
  return state;
}
