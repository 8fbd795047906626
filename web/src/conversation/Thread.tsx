import { useInfiniteQuery, useQuery } from "@tanstack/react-query";
import { useLayoutEffect, useRef } from "react";
import { useTranslation } from "react-i18next";
import type { Schemas } from "../api/client";
import { useSession } from "../auth/useSession";
import { ErrorMessage } from "../components/ErrorMessage";
import { Spinner } from "../components/Spinner";
import { describeActivity } from "./activity";
import { formatTime, isoTime } from "./format";
import { type Message, chronological, membersQuery, messagesQuery } from "./queries";

/** How close to the bottom (px) still counts as reading the newest messages. */
const NEAR_BOTTOM = 120;
/** While a reply is still being delivered, the thread is read again this often (ms) to show the outcome. */
const PENDING_POLL = 5_000;

/**
 * The thread, oldest at the top: it opens at the newest message, follows new ones while the reader is
 * at the bottom, and keeps its place when earlier messages are loaded above.
 */
export function Thread({ conversationId, contactName }: { conversationId: string; contactName: string }) {
  const { t } = useTranslation();
  const messages = useInfiniteQuery({
    ...messagesQuery(conversationId),
    refetchInterval: (query) =>
      query.state.data?.pages.some((page) => page.data.some((m) => m.delivery_status === "pending")) ? PENDING_POLL : false,
  });
  const members = useQuery(membersQuery());
  const list = chronological(messages.data);
  const scroller = useRef<HTMLDivElement>(null);
  const seen = useRef<{ first: string | undefined; last: string | undefined; height: number; atBottom: boolean }>({
    first: undefined,
    last: undefined,
    height: 0,
    atBottom: true,
  });
  const first = list[0]?.id;
  const last = list[list.length - 1]?.id;

  useLayoutEffect(() => {
    const element = scroller.current;
    if (!element) return;
    const before = seen.current;
    if (last !== before.last && (before.atBottom || before.last === undefined)) {
      element.scrollTop = element.scrollHeight;
    } else if (first !== before.first && last === before.last) {
      // Earlier messages went in above: stay on the message that was being read.
      element.scrollTop += element.scrollHeight - before.height;
    }
    seen.current = { first, last, height: element.scrollHeight, atBottom: isAtBottom(element) };
  }, [first, last]);

  const names = new Map((members.data ?? []).map((member) => [member.id, member.name]));
  return (
    <div
      ref={scroller}
      className="thread"
      role="log"
      aria-label={t("conversation.thread")}
      tabIndex={-1}
      onScroll={(event) => {
        seen.current.atBottom = isAtBottom(event.currentTarget);
        seen.current.height = event.currentTarget.scrollHeight;
      }}
    >
      <ErrorMessage error={messages.error} />
      {messages.hasNextPage && (
        <div className="thread-earlier">
          <button type="button" onClick={() => void messages.fetchNextPage()} disabled={messages.isFetchingNextPage}>
            {t("conversation.earlier")}
          </button>
          {messages.isFetchingNextPage && <Spinner />}
        </div>
      )}
      {messages.isPending ? (
        <Spinner />
      ) : list.length === 0 && !messages.error ? (
        <p className="empty">{t("conversation.noMessages")}</p>
      ) : (
        <ol className="messages">
          {list.map((message) => (
            <MessageItem key={message.id} message={message} contactName={contactName} names={names} />
          ))}
        </ol>
      )}
    </div>
  );
}

function isAtBottom(element: HTMLElement): boolean {
  return element.scrollHeight - element.scrollTop - element.clientHeight < NEAR_BOTTOM;
}

function MessageItem(props: { message: Message; contactName: string; names: Map<string, string> }) {
  const { t, i18n } = useTranslation();
  const session = useSession();
  const { message } = props;
  const time = (
    <time dateTime={isoTime(message.created_at)} className="message-time">
      {formatTime(message.created_at, i18n.language)}
    </time>
  );
  const member = (id: string | null | undefined): string => {
    if (!id) return t("conversation.system");
    if (id === session?.user.id) return t("conversation.you");
    return props.names.get(id) ?? t("conversation.formerMember");
  };

  if (message.kind === "activity") {
    return (
      <li className="message activity">
        <span>{describeActivity(message, member)}</span> {time}
      </li>
    );
  }
  const who = message.kind === "incoming" ? props.contactName : member(message.sender_id);
  return (
    <li className={`message ${message.kind}`}>
      {/* Unnamed on purpose: a name such as "Reply from …" would also answer to the reply box's label. */}
      <article>
        <div className="message-head">
          {message.kind === "note" && <span className="note-label">{t("conversation.privateNote")}</span>}
          <span className="message-sender">{who}</span>
          {time}
        </div>
        <p className="message-body">{message.content}</p>
        {message.kind === "outgoing" && <Delivery message={message} />}
      </article>
    </li>
  );
}

/** Where an agent's reply is: on its way, delivered, or failed with the reason the channel gave. */
function Delivery({ message }: { message: Schemas["MessageView"] }) {
  const { t } = useTranslation();
  const status = message.delivery_status;
  if (!status) return null;
  if (status === "failed") {
    return (
      <p className="delivery failed">
        {message.delivery_error
          ? t("conversation.delivery.failedBecause", { reason: message.delivery_error })
          : t("conversation.delivery.failed")}
      </p>
    );
  }
  return <p className={`delivery ${status}`}>{t(`conversation.delivery.${status}`)}</p>;
}
