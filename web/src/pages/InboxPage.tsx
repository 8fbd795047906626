import { useInfiniteQuery, useQuery } from "@tanstack/react-query";
import { useVirtualizer } from "@tanstack/react-virtual";
import { useRef, useState } from "react";
import { useTranslation } from "react-i18next";
import { type Schemas, api } from "../api/client";
import { unwrap } from "../api/problem";
import { ErrorMessage } from "../components/ErrorMessage";
import { Spinner } from "../components/Spinner";

type Tab = "mine" | "unassigned" | "all";
type StatusFilter = "open" | "pending" | "resolved" | "snoozed" | "all";

const TABS: Tab[] = ["mine", "unassigned", "all"];
const STATUSES: StatusFilter[] = ["open", "pending", "resolved", "snoozed", "all"];
const ASSIGNEE: Record<Tab, string> = { mine: "me", unassigned: "unassigned", all: "all" };
const PAGE = 50;
const ROW_HEIGHT = 72;

export interface ListFilters {
  tab: Tab;
  status: StatusFilter;
  inbox: string;
  label: string;
}

/** The conversation list query for `filters`, a page at a time. */
export function conversationsQuery(filters: ListFilters) {
  return {
    queryKey: ["conversations", filters] as const,
    queryFn: ({ pageParam }: { pageParam: string | undefined }) =>
      unwrap(
        api.GET("/api/conversations", {
          params: {
            query: {
              assignee: ASSIGNEE[filters.tab],
              status: filters.status,
              limit: PAGE,
              ...(filters.inbox ? { inbox_id: filters.inbox } : {}),
              ...(filters.label ? { label: filters.label } : {}),
              ...(pageParam ? { cursor: pageParam } : {}),
            },
          },
        }),
      ),
    initialPageParam: undefined as string | undefined,
    getNextPageParam: (last: Schemas["ConversationList"]) => last.next_cursor ?? undefined,
  };
}

export default function InboxPage() {
  const { t } = useTranslation();
  const [filters, setFilters] = useState<ListFilters>({ tab: "all", status: "open", inbox: "", label: "" });
  const inboxes = useQuery({ queryKey: ["inboxes"], queryFn: () => unwrap(api.GET("/api/inboxes")) });
  const labels = useQuery({ queryKey: ["labels"], queryFn: () => unwrap(api.GET("/api/labels")) });
  const list = useInfiniteQuery(conversationsQuery(filters));
  const counts = list.data?.pages[0]?.meta.counts;
  const rows = list.data?.pages.flatMap((page) => page.data) ?? [];
  const set = (change: Partial<ListFilters>) => setFilters((current) => ({ ...current, ...change }));

  return (
    <main className="inbox-page">
      <section className="list-pane" aria-labelledby="list-title">
        <h1 id="list-title" className="visually-hidden">
          {t("inbox.title")}
        </h1>
        <div role="tablist" aria-label={t("inbox.title")} className="tabs">
          {TABS.map((tab) => (
            <button
              key={tab}
              type="button"
              role="tab"
              aria-selected={filters.tab === tab}
              className={filters.tab === tab ? "tab selected" : "tab"}
              onClick={() => set({ tab })}
            >
              {t(`inbox.${tab}`)} <span className="count">{counts?.[tab] ?? "–"}</span>
            </button>
          ))}
        </div>
        <div className="filters">
          <label>
            {t("inbox.status")}
            <select value={filters.status} onChange={(e) => set({ status: e.target.value as StatusFilter })}>
              {STATUSES.map((status) => (
                <option key={status} value={status}>
                  {t(`status.${status}`)}
                </option>
              ))}
            </select>
          </label>
          <label>
            {t("inbox.inbox")}
            <select value={filters.inbox} onChange={(e) => set({ inbox: e.target.value })}>
              <option value="">{t("inbox.anyInbox")}</option>
              {(inboxes.data ?? []).map((inbox) => (
                <option key={inbox.id} value={inbox.id}>
                  {inbox.name}
                </option>
              ))}
            </select>
          </label>
          <label>
            {t("inbox.label")}
            <select value={filters.label} onChange={(e) => set({ label: e.target.value })}>
              <option value="">{t("inbox.anyLabel")}</option>
              {(labels.data ?? []).map((label) => (
                <option key={label.id} value={label.name}>
                  {label.name}
                </option>
              ))}
            </select>
          </label>
        </div>
        <ErrorMessage error={list.error ?? inboxes.error ?? labels.error} />
        {list.isPending ? (
          <Spinner />
        ) : rows.length === 0 ? (
          <p className="empty">{t("inbox.empty")}</p>
        ) : (
          <ConversationRows
            rows={rows}
            hasMore={list.hasNextPage}
            loadingMore={list.isFetchingNextPage}
            loadMore={() => void list.fetchNextPage()}
          />
        )}
      </section>
    </main>
  );
}

/** The rows, virtualised: only those in view are in the document, however long the list. */
function ConversationRows(props: {
  rows: Schemas["ConversationView"][];
  hasMore: boolean;
  loadingMore: boolean;
  loadMore: () => void;
}) {
  const { t } = useTranslation();
  const scroller = useRef<HTMLDivElement>(null);
  const virtual = useVirtualizer({
    count: props.rows.length,
    getScrollElement: () => scroller.current,
    estimateSize: () => ROW_HEIGHT,
    overscan: 8,
  });
  const items = virtual.getVirtualItems();
  const last = items[items.length - 1];
  if (last && last.index >= props.rows.length - 10 && props.hasMore && !props.loadingMore) props.loadMore();
  return (
    <div ref={scroller} className="rows" role="list" aria-label={t("inbox.title")}>
      <div style={{ height: virtual.getTotalSize(), position: "relative" }}>
        {items.map((item) => {
          const row = props.rows[item.index];
          if (!row) return null;
          return (
            <div
              key={row.id}
              role="listitem"
              className="row"
              data-conversation={row.id}
              style={{ position: "absolute", top: 0, left: 0, right: 0, height: ROW_HEIGHT, transform: `translateY(${item.start}px)` }}
            >
              <ConversationRow conversation={row} />
            </div>
          );
        })}
      </div>
      {props.loadingMore && <Spinner />}
    </div>
  );
}

function ConversationRow({ conversation }: { conversation: Schemas["ConversationView"] }) {
  const { t } = useTranslation();
  const name = conversation.contact.name ?? conversation.contact.email ?? t("inbox.contact");
  return (
    <a className="row-link" href={`/conversations/${conversation.id}`}>
      <span className="row-top">
        <span className="contact-name">{name}</span>
        <span className="row-meta">
          #{conversation.display_id} · {t(`status.${conversation.status}`)}
        </span>
        {conversation.unread_count > 0 && (
          <span className="badge" aria-label={t("inbox.unread", { count: conversation.unread_count })}>
            {conversation.unread_count}
          </span>
        )}
      </span>
      <span className="preview">{conversation.last_message?.preview ?? t("inbox.noMessages")}</span>
    </a>
  );
}
