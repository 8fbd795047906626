import { useQuery } from "@tanstack/react-query";
import { useTranslation } from "react-i18next";
import { Link } from "react-router-dom";
import { api } from "../api/client";
import { unwrap } from "../api/problem";
import { ErrorMessage } from "../components/ErrorMessage";
import { Spinner } from "../components/Spinner";
import { formatTime, isoTime } from "./format";
import { inboxesQuery, keys } from "./queries";

/** Who the conversation is with: their details, the channels they write from, their other conversations. */
export function ContactPanel({ contactId, conversationId }: { contactId: string; conversationId: string }) {
  const { t, i18n } = useTranslation();
  const contact = useQuery({
    queryKey: keys.contact(contactId),
    queryFn: () => unwrap(api.GET("/api/contacts/{id}", { params: { path: { id: contactId } } })),
  });
  const conversations = useQuery({
    queryKey: keys.contactConversations(contactId),
    queryFn: () => unwrap(api.GET("/api/contacts/{id}/conversations", { params: { path: { id: contactId } } })),
  });
  const inboxes = useQuery(inboxesQuery());
  const inboxName = (id: string) => inboxes.data?.find((inbox) => inbox.id === id)?.name ?? t("conversation.contact.inbox");
  const others = (conversations.data ?? []).filter((conversation) => conversation.id !== conversationId);

  return (
    <section className="contact-panel" aria-labelledby="contact-title">
      <h2 id="contact-title">{t("conversation.contact.title")}</h2>
      <ErrorMessage error={contact.error} />
      {contact.isPending ? (
        <Spinner />
      ) : contact.data ? (
        <dl className="contact-fields">
          <dt>{t("conversation.contact.name")}</dt>
          <dd>{contact.data.name ?? <span className="muted">{t("conversation.contact.none")}</span>}</dd>
          <dt>{t("conversation.contact.email")}</dt>
          <dd>
            {contact.data.email ? (
              <a href={`mailto:${contact.data.email}`}>{contact.data.email}</a>
            ) : (
              <span className="muted">{t("conversation.contact.none")}</span>
            )}
          </dd>
          <dt>{t("conversation.contact.phone")}</dt>
          <dd>
            {contact.data.phone ? (
              <a href={`tel:${contact.data.phone}`}>{contact.data.phone}</a>
            ) : (
              <span className="muted">{t("conversation.contact.none")}</span>
            )}
          </dd>
          <dt>{t("conversation.contact.identities")}</dt>
          <dd>
            {contact.data.identities.length === 0 ? (
              <span className="muted">{t("conversation.contact.none")}</span>
            ) : (
              <ul className="identities">
                {contact.data.identities.map((identity) => (
                  <li key={`${identity.inbox_id}:${identity.source_id}`}>
                    <span className="muted">{inboxName(identity.inbox_id)}:</span> <code>{identity.source_id}</code>
                  </li>
                ))}
              </ul>
            )}
          </dd>
        </dl>
      ) : null}
      <h3>{t("conversation.contact.conversations")}</h3>
      <ErrorMessage error={conversations.error} />
      {conversations.isPending ? (
        <Spinner />
      ) : others.length === 0 ? (
        <p className="hint">{t("conversation.contact.noOthers")}</p>
      ) : (
        <ul className="other-conversations">
          {others.map((other) => (
            <li key={other.id}>
              <Link to={`/conversations/${other.id}`}>
                #{other.display_id} · {t(`status.${other.status}`)}
              </Link>
              <span className="other-meta">
                <time dateTime={isoTime(other.last_message_at)}>{formatTime(other.last_message_at, i18n.language)}</time>
                {other.last_message && <span className="preview"> — {other.last_message.preview}</span>}
              </span>
            </li>
          ))}
        </ul>
      )}
    </section>
  );
}
