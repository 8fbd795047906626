import { useQuery } from "@tanstack/react-query";
import { type FormEvent, type ReactNode, useEffect, useRef, useState } from "react";
import { useTranslation } from "react-i18next";
import { Link, useSearchParams } from "react-router-dom";
import { type Schemas, api } from "../api/client";
import { unwrap } from "../api/problem";
import { ErrorMessage } from "../components/ErrorMessage";
import { Spinner } from "../components/Spinner";

/** How long typing pauses before the query runs by itself. */
const DEBOUNCE_MS = 400;
const MAX_QUERY = 200;

/**
 * Search over contacts, conversations and messages (`GET /api/search`). The query lives in the URL
 * (`?q=`) so back, forward and reload show the same results. It runs on Enter or after a pause in typing,
 * never while an input method is composing (Japanese is typed as kana and converted: the half-typed text
 * is not the query).
 */
export default function SearchPage() {
  const { t } = useTranslation();
  const [params, setParams] = useSearchParams();
  const q = params.get("q") ?? "";
  const [text, setText] = useState(q);
  const composing = useRef(false);
  const timer = useRef<ReturnType<typeof setTimeout> | undefined>(undefined);

  // Back and forward change the URL: the box follows (but keeps a space typed after the last word).
  useEffect(() => setText((current) => (current.trim() === q ? current : q)), [q]);
  useEffect(() => () => clearTimeout(timer.current), []);

  const run = (value: string, replace: boolean) => {
    clearTimeout(timer.current);
    const query = value.trim();
    if (query === q) return;
    setParams(query === "" ? {} : { q: query }, { replace });
  };
  const later = (value: string) => {
    clearTimeout(timer.current);
    // Typing replaces the history entry; Enter adds one.
    timer.current = setTimeout(() => run(value, true), DEBOUNCE_MS);
  };
  const submit = (event: FormEvent) => {
    event.preventDefault();
    if (!composing.current) run(text, false);
  };

  const query = q.trim();
  const results = useQuery({
    queryKey: ["search", query],
    queryFn: () => unwrap(api.GET("/api/search", { params: { query: { q: query } } })),
    enabled: query !== "",
  });

  return (
    <main className="search-page">
      <h1 id="search-title">{t("search.title")}</h1>
      <form role="search" onSubmit={submit} className="search-form">
        <label htmlFor="search-box" className="visually-hidden">
          {t("search.label")}
        </label>
        <input
          id="search-box"
          type="search"
          maxLength={MAX_QUERY}
          autoComplete="off"
          value={text}
          placeholder={t("search.placeholder")}
          onChange={(event) => {
            setText(event.target.value);
            if (!composing.current) later(event.target.value);
          }}
          onCompositionStart={() => {
            composing.current = true;
            clearTimeout(timer.current);
          }}
          onCompositionEnd={(event) => {
            composing.current = false;
            later(event.currentTarget.value);
          }}
          onKeyDown={(event) => {
            // The Enter that confirms a conversion is not a search (Safari sends it after compositionend).
            if (event.key === "Enter" && (event.nativeEvent.isComposing || event.keyCode === 229)) event.preventDefault();
          }}
        />
        <button type="submit" className="primary">
          {t("search.submit")}
        </button>
      </form>
      {query === "" ? (
        <p className="empty">{t("search.hint")}</p>
      ) : results.isPending ? (
        <Spinner label={t("search.searching")} />
      ) : results.error ? (
        <ErrorMessage error={results.error} />
      ) : (
        <Results results={results.data} query={query} />
      )}
    </main>
  );
}

function Results({ results, query }: { results: Schemas["SearchResults"]; query: string }) {
  const { t } = useTranslation();
  const total = results.contacts.length + results.conversations.length + results.messages.length;
  return (
    <div className="search-results">
      <p aria-live="polite" className="item-meta">
        {total === 0 ? t("search.none", { query }) : t("search.found", { count: total, query })}
      </p>
      <Group id="contacts" title={t("search.contacts")} count={results.contacts.length}>
        {results.contacts.map((contact) => (
          <ContactResult key={contact.id} contact={contact} />
        ))}
      </Group>
      <Group id="conversations" title={t("search.conversations")} count={results.conversations.length}>
        {results.conversations.map((conversation) => (
          <li key={conversation.id}>
            <Link to={`/conversations/${conversation.id}`} className="result-link">
              <span className="result-title">
                {conversation.contact.name ?? conversation.contact.email ?? t("inbox.contact")} · #{conversation.display_id}
              </span>
              <span className="item-meta">
                {t(`status.${conversation.status}`)}
                {conversation.last_message && ` · ${conversation.last_message.preview}`}
              </span>
            </Link>
          </li>
        ))}
      </Group>
      <Group id="messages" title={t("search.messages")} count={results.messages.length}>
        {results.messages.map((message) => (
          <MessageResult key={message.id} message={message} />
        ))}
      </Group>
    </div>
  );
}

function Group(props: { id: string; title: string; count: number; children: ReactNode }) {
  const { t } = useTranslation();
  const heading = `results-${props.id}`;
  return (
    <section aria-labelledby={heading} className="result-group">
      <h2 id={heading}>
        {props.title} <span className="count">({props.count})</span>
      </h2>
      {props.count === 0 ? <p className="empty">{t("search.noneOfKind")}</p> : <ul className="result-list">{props.children}</ul>}
    </section>
  );
}

function MessageResult({ message }: { message: Schemas["MessageView"] }) {
  const { t, i18n } = useTranslation();
  const when = new Intl.DateTimeFormat(i18n.language, { dateStyle: "medium", timeStyle: "short" }).format(new Date(message.created_at));
  return (
    <li>
      <Link to={`/conversations/${message.conversation_id}`} className="result-link">
        <span className="result-snippet">{message.content}</span>
        <span className="item-meta">
          {t(`search.kind.${message.kind}`)} · {when}
        </span>
      </Link>
    </li>
  );
}

/**
 * A contact found: there is no contact page (yet), so it opens the contact's conversations here, each a
 * link (`GET /api/contacts/{id}/conversations`).
 */
function ContactResult({ contact }: { contact: Schemas["ContactView"] }) {
  const { t } = useTranslation();
  const [open, setOpen] = useState(false);
  const name = contact.name ?? contact.email ?? contact.phone ?? t("inbox.contact");
  const details = [contact.email, contact.phone].filter((value) => value != null && value !== name).join(" · ");
  const panel = `contact-${contact.id}`;
  return (
    <li className="contact-result">
      <button type="button" className="link-button" aria-expanded={open} aria-controls={panel} onClick={() => setOpen(!open)}>
        <span className="result-title">{name}</span>
        {details && <span className="item-meta"> {details}</span>}
      </button>
      {open && (
        <div id={panel}>
          <ContactConversations id={contact.id} />
        </div>
      )}
    </li>
  );
}

function ContactConversations({ id }: { id: string }) {
  const { t } = useTranslation();
  const list = useQuery({
    queryKey: ["contact-conversations", id],
    queryFn: () => unwrap(api.GET("/api/contacts/{id}/conversations", { params: { path: { id } } })),
  });
  if (list.isPending) return <Spinner />;
  if (list.error) return <ErrorMessage error={list.error} />;
  if (list.data.length === 0) return <p className="empty">{t("search.noConversations")}</p>;
  return (
    <ul className="result-list nested">
      {list.data.map((conversation) => (
        <li key={conversation.id}>
          <Link to={`/conversations/${conversation.id}`}>
            #{conversation.display_id} · {t(`status.${conversation.status}`)}
            {conversation.last_message && ` · ${conversation.last_message.preview}`}
          </Link>
        </li>
      ))}
    </ul>
  );
}
