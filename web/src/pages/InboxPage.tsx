import { useInfiniteQuery, useQuery } from "@tanstack/react-query";
import { useVirtualizer } from "@tanstack/react-virtual";
import { useEffect, useRef, useState } from "react";
import { useTranslation } from "react-i18next";
import { Link, Outlet, useNavigate, useParams } from "react-router-dom";
import { type Schemas, api } from "../api/client";
import { unwrap } from "../api/problem";
import { ErrorMessage } from "../components/ErrorMessage";
import { Spinner } from "../components/Spinner";
import { ShortcutsHelp } from "../conversation/ShortcutsHelp";
import { useShortcuts } from "../conversation/shortcuts";

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
  const selected = useParams()["id"];
  const set = (change: Partial<ListFilters>) => setFilters((current) => ({ ...current, ...change }));
  const navigate = useNavigate();
  const [help, setHelp] = useState(false);
  // `j` / `k` walk the list as it is filtered now; the conversation view adds `r`, `n` and `e`.
  const step = (by: 1 | -1) => {
    const at = rows.findIndex((row) => row.id === selected);
    const next = rows[at === -1 ? (by === 1 ? 0 : rows.length - 1) : at + by];
    if (next) void navigate(`/conversations/${next.id}`);
    else if (by === 1 && at === rows.length - 1 && list.hasNextPage && !list.isFetchingNextPage) void list.fetchNextPage();
  };
  useShortcuts({ j: () => step(1), k: () => step(-1), "?": () => setHelp(true) });

  return (
    <main className="inbox-page">
      <section className="list-pane" aria-labelledby="list-title">
        <h1 id="list-title" className="visually-hidden">
          {t("inbox.title")}
        </h1>
        <button type="button" className="shortcuts-button" onClick={() => setHelp(true)} aria-keyshortcuts="?">
          {t("shortcuts.open")} <kbd aria-hidden="true">?</kbd>
        </button>
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
            selected={selected}
            hasMore={list.hasNextPage}
            loadingMore={list.isFetchingNextPage}
            loadMore={() => void list.fetchNextPage()}
          />
        )}
      </section>
      <section className="conversation-pane" aria-label={t("inbox.conversation")}>
        {selected ? <Outlet /> : <p className="empty">{t("inbox.pick")}</p>}
      </section>
      {help && <ShortcutsHelp onClose={() => setHelp(false)} />}
    </main>
  );
}

/** The rows, virtualised: only those in view are in the document, however long the list. */
function ConversationRows(props: {
  rows: Schemas["ConversationView"][];
  selected: string | undefined;
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
  // The selected row (chosen with `j` / `k` too) is kept in view.
  const selectedIndex = props.rows.findIndex((row) => row.id === props.selected);
  useEffect(() => {
    if (selectedIndex >= 0) virtual.scrollToIndex(selectedIndex, { align: "auto" });
  }, [selectedIndex, virtual]);
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
              className={row.id === props.selected ? "row selected" : "row"}
              data-conversation={row.id}
              style={{ position: "absolute", top: 0, left: 0, right: 0, height: ROW_HEIGHT, transform: `translateY(${item.start}px)` }}
            >
              <ConversationRow conversation={row} current={row.id === props.selected} />
            </div>
          );
        })}
      </div>
      {props.loadingMore && <Spinner />}
    </div>
  );
}

function ConversationRow({ conversation, current }: { conversation: Schemas["ConversationView"]; current: boolean }) {
  const { t } = useTranslation();
  const name = conversation.contact.name ?? conversation.contact.email ?? t("inbox.contact");
  return (
    <Link className="row-link" to={`/conversations/${conversation.id}`} {...(current ? { "aria-current": "page" as const } : {})}>
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
    </Link>
  );
}
