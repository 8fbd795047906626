import type { InfiniteData, QueryClient } from "@tanstack/react-query";
import type { Schemas } from "../api/client";
import type { ListFilters } from "../pages/InboxPage";
import type { FeedEvent } from "./socket";

type Conversation = Schemas["ConversationView"];
type ListData = InfiniteData<Schemas["ConversationList"], string | undefined>;

/** How long after a change the lists are fetched again, for their counts and what is not loaded yet. */
const RECONCILE_MS = 1_500;

/**
 * Brings the cache up to date with one event of the feed. A conversation's new state (every event about
 * one carries its view) is written into each loaded list at its place in the order — or taken out of the
 * lists whose filters it no longer matches — so that the page shows it at once, without a request; the
 * thread and the contact it concerns are fetched again; the lists' counts are fetched again a moment
 * later, once for a burst of events.
 */
export class CacheUpdater {
  private reconcileTimer: ReturnType<typeof setTimeout> | undefined;

  constructor(
    private readonly client: QueryClient,
    /** The signed-in user's id (the "mine" tab). */
    private readonly me: () => string | undefined,
  ) {}

  apply(event: FeedEvent): void {
    const conversation = event.data["conversation"] as Conversation | undefined;
    const message = event.data["message"] as Schemas["MessageView"] | undefined;
    const contact = event.data["contact"] as { id: string } | undefined;
    // While the agent's own change to it is on its way (conversation/queries.ts shows it at once), an
    // event from before it must not put the old state back; the change's answer, and its own event, bring
    // the new one.
    const changing =
      conversation?.id !== undefined && this.client.isMutating({ mutationKey: ["conversation-change", conversation.id] }) > 0;
    if (conversation?.id !== undefined) {
      if (!changing) {
        this.placeInLists(conversation);
        this.client.setQueryData(["conversation", conversation.id], (old: unknown) =>
          old === undefined ? undefined : { ...(old as object), ...conversation },
        );
        void this.client.invalidateQueries({ queryKey: ["conversation", conversation.id] });
      }
    }
    if (message?.conversation_id !== undefined) {
      void this.client.invalidateQueries({ queryKey: ["messages", message.conversation_id] });
    }
    if (contact?.id !== undefined) {
      void this.client.invalidateQueries({ queryKey: ["contact", contact.id] });
      void this.client.invalidateQueries({ queryKey: ["contact-conversations", contact.id] });
    }
    if (event.kind.startsWith("conversation.") || event.kind === "message.created") this.reconcileSoon();
  }

  /** Everything shown may be stale (events were missed): fetch it again. */
  reloadAll(): void {
    void this.client.invalidateQueries();
  }

  stop(): void {
    clearTimeout(this.reconcileTimer);
  }

  private reconcileSoon(): void {
    if (this.reconcileTimer !== undefined) return;
    this.reconcileTimer = setTimeout(() => {
      this.reconcileTimer = undefined;
      void this.client.invalidateQueries({ queryKey: ["conversations"] });
    }, RECONCILE_MS);
  }

  private placeInLists(conversation: Conversation): void {
    for (const [key, data] of this.client.getQueriesData<ListData>({ queryKey: ["conversations"] })) {
      const filters = key[1] as ListFilters | undefined;
      if (data === undefined || filters === undefined) continue;
      this.client.setQueryData<ListData>(key, place(data, conversation, matches(conversation, filters, this.me())));
    }
  }
}

/** Whether the list `filters` describe shows `conversation` (as the server's list query decides it). */
export function matches(conversation: Conversation, filters: ListFilters, me: string | undefined): boolean {
  if (filters.status !== "all" && conversation.status !== filters.status) return false;
  if (filters.inbox !== "" && conversation.inbox_id !== filters.inbox) return false;
  if (filters.label !== "" && !conversation.labels.includes(filters.label)) return false;
  if (filters.tab === "mine") return me !== undefined && conversation.assignee_id === me;
  if (filters.tab === "unassigned") return conversation.assignee_id == null;
  return true;
}

/** The list's order: the latest message first, then the id (as the server's keyset pages are). */
function before(a: Conversation, b: Conversation): boolean {
  return a.last_message_at !== b.last_message_at ? a.last_message_at > b.last_message_at : a.id > b.id;
}

/**
 * `data` with `conversation` taken out and, when `shown`, put back at its place in the order — unless that
 * place is past the loaded rows of a list that has more (the page that holds it is loaded when reached).
 */
export function place(data: ListData, conversation: Conversation, shown: boolean): ListData {
  let placed = !shown;
  const lastPage = data.pages.length - 1;
  const pages = data.pages.map((page, index) => {
    const rows = page.data.filter((row) => row.id !== conversation.id);
    if (!placed) {
      const at = rows.findIndex((row) => before(conversation, row));
      const atEnd = index === lastPage && page.next_cursor == null;
      if (at >= 0 || atEnd) {
        rows.splice(at >= 0 ? at : rows.length, 0, conversation);
        placed = true;
      }
    }
    return rows.length === page.data.length && !rows.some((row, i) => row !== page.data[i]) ? page : { ...page, data: rows };
  });
  return { ...data, pages };
}
