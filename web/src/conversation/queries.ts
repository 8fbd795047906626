import { type InfiniteData, type QueryClient, useMutation, useQueryClient } from "@tanstack/react-query";
import { type Schemas, api } from "../api/client";
import { unwrap } from "../api/problem";

export type Conversation = Schemas["ConversationView"];
export type Message = Schemas["MessageView"];
export type MessagePage = Schemas["Page_MessageView"];
export type ConversationStatus = Conversation["status"];
export type Priority = Conversation["priority"];

/** The statuses an agent can choose, in the order the desk works through them. */
export const STATUSES = ["open", "pending", "resolved", "snoozed"] as const satisfies readonly ConversationStatus[];
export const PRIORITIES = ["none", "low", "medium", "high", "urgent"] as const satisfies readonly Priority[];

const MESSAGE_PAGE = 30;

/*
 * The query keys are shared with the realtime feed, which invalidates them when events arrive: keep
 * them exactly as they are.
 */
export const keys = {
  conversation: (id: string) => ["conversation", id] as const,
  messages: (id: string) => ["messages", id] as const,
  contact: (id: string) => ["contact", id] as const,
  contactConversations: (id: string) => ["contact-conversations", id] as const,
  conversations: ["conversations"] as const,
  labels: ["labels"] as const,
  canned: (prefix: string) => ["canned", prefix] as const,
  members: ["members"] as const,
  inboxes: ["inboxes"] as const,
};

export function conversationQuery(id: string) {
  return {
    queryKey: keys.conversation(id),
    queryFn: () => unwrap(api.GET("/api/conversations/{id}", { params: { path: { id } } })),
  };
}

/** The thread, a page at a time: the first page is the newest, `next_cursor` pages back in time. */
export function messagesQuery(id: string) {
  return {
    queryKey: keys.messages(id),
    queryFn: ({ pageParam }: { pageParam: string | undefined }) =>
      unwrap(
        api.GET("/api/conversations/{id}/messages", {
          params: { path: { id }, query: { limit: MESSAGE_PAGE, ...(pageParam ? { cursor: pageParam } : {}) } },
        }),
      ),
    initialPageParam: undefined as string | undefined,
    getNextPageParam: (last: MessagePage) => last.next_cursor ?? undefined,
  };
}

export function membersQuery() {
  return { queryKey: keys.members, queryFn: () => unwrap(api.GET("/api/users")), staleTime: 60_000 };
}

export function labelsQuery() {
  return { queryKey: keys.labels, queryFn: () => unwrap(api.GET("/api/labels")) };
}

export function inboxesQuery() {
  return { queryKey: keys.inboxes, queryFn: () => unwrap(api.GET("/api/inboxes")) };
}

/** The messages of the thread, oldest first, whatever order the pages arrived in. */
export function chronological(data: InfiniteData<MessagePage> | undefined): Message[] {
  if (!data) return [];
  const seen = new Set<string>();
  const out: Message[] = [];
  for (const page of [...data.pages].reverse()) {
    for (const message of page.data) {
      if (seen.has(message.id)) continue;
      seen.add(message.id);
      out.push(message);
    }
  }
  return out;
}

/** What every change to a conversation is followed by: the view kept, and everything that shows it refreshed. */
export function conversationChanged(client: QueryClient, view: Conversation): void {
  client.setQueryData(keys.conversation(view.id), view);
  void client.invalidateQueries({ queryKey: keys.conversations });
  // The change wrote an activity line into the thread.
  void client.invalidateQueries({ queryKey: keys.messages(view.id) });
  void client.invalidateQueries({ queryKey: keys.contactConversations(view.contact.id) });
}

/**
 * A change to one conversation (status, assignee, labels, priority): the API call, then the refresh.
 * `optimistic` shows the change at once (a ticked box stays ticked); a refusal puts back what the server
 * has. Changes to one conversation are sent one after the other, so a quick second click cannot overtake
 * the first.
 */
export function useConversationChange<T>(
  id: string,
  call: (input: T) => Promise<Conversation>,
  optimistic?: (view: Conversation, input: T) => Conversation,
) {
  const client = useQueryClient();
  const key = keys.conversation(id);
  const mutationKey = ["conversation-change", id];
  const mutation = useMutation({
    mutationKey,
    mutationFn: call,
    scope: { id: `conversation:${id}` },
    onSuccess: (view) => {
      // While a later change is still on its way, this answer is already out of date: keep what shows it.
      if (client.isMutating({ mutationKey }) > 1) return;
      conversationChanged(client, view);
    },
    onError: () => void client.invalidateQueries({ queryKey: key }),
  });
  const mutate = (input: T, options?: { onSuccess?: () => void; onSettled?: () => void }) => {
    // Shown in the same event as the click, so a controlled box or select never springs back first.
    const before = client.getQueryData<Conversation>(key);
    if (optimistic && before) {
      void client.cancelQueries({ queryKey: key });
      client.setQueryData(key, optimistic(before, input));
    }
    mutation.mutate(input, {
      ...(options?.onSuccess ? { onSuccess: options.onSuccess } : {}),
      ...(options?.onSettled ? { onSettled: options.onSettled } : {}),
    });
  };
  return { ...mutation, mutate };
}

export function changeStatus(id: string, status: ConversationStatus, snoozedUntil?: number) {
  return unwrap(
    api.POST("/api/conversations/{id}/status", {
      params: { path: { id } },
      body: { status, ...(snoozedUntil === undefined ? {} : { snoozed_until: snoozedUntil }) },
    }),
  );
}

/** Adds a message the API answered to the newest page, so that it shows before the refetch. */
export function appendMessage(client: QueryClient, message: Message): void {
  client.setQueryData<InfiniteData<MessagePage>>(keys.messages(message.conversation_id), (data) => {
    if (!data) return data;
    const [first, ...rest] = data.pages;
    if (!first || first.data.some((m) => m.id === message.id)) return data;
    return { ...data, pages: [{ ...first, data: [...first.data, message] }, ...rest] };
  });
}
