import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { useEffect, useRef } from "react";
import { useTranslation } from "react-i18next";
import { useParams } from "react-router-dom";
import { api } from "../api/client";
import { unwrap } from "../api/problem";
import { ErrorMessage } from "../components/ErrorMessage";
import { Spinner } from "../components/Spinner";
import { Composer, type ComposerHandle } from "../conversation/Composer";
import { ContactPanel } from "../conversation/ContactPanel";
import { AssigneeControl, LabelsControl, PriorityControl, StatusControl } from "../conversation/Controls";
import { Thread } from "../conversation/Thread";
import { contactName } from "../conversation/format";
import { changeStatus, conversationQuery, keys, useConversationChange } from "../conversation/queries";
import { useShortcuts } from "../conversation/shortcuts";

/** One conversation, in the inbox's right-hand pane: its thread, the reply box, and what can be changed. */
export default function ConversationPage() {
  const id = useParams()["id"];
  if (!id) return null;
  // A fresh view per conversation: the reply box, the scroll position and pending changes belong to one.
  return <ConversationView key={id} id={id} />;
}

function ConversationView({ id }: { id: string }) {
  const { t } = useTranslation();
  const client = useQueryClient();
  const conversation = useQuery(conversationQuery(id));
  const composer = useRef<ComposerHandle>(null);
  const title = useRef<HTMLHeadingElement>(null);

  const read = useMutation({
    mutationFn: () => unwrap(api.POST("/api/conversations/{id}/read", { params: { path: { id } } })),
    onSuccess: (view) => {
      client.setQueryData(conversationQuery(id).queryKey, view);
      void client.invalidateQueries({ queryKey: keys.conversations });
    },
  });
  // Read when opened, and again when messages arrive while it is open (the realtime feed refreshes the count).
  const unread = conversation.data?.unread_count ?? 0;
  const markedOnce = useRef(false);
  const { mutate: markRead, isPending: marking } = read;
  useEffect(() => {
    if (!markedOnce.current || (unread > 0 && !marking)) {
      markedOnce.current = true;
      markRead();
    }
    // `marking` is left out on purpose: a call finishing is no reason to make another.
  }, [unread, markRead]);

  const resolve = useConversationChange(
    id,
    () => changeStatus(id, "resolved"),
    (view) => ({ ...view, status: "resolved" as const }),
  );
  useShortcuts({
    r: () => composer.current?.focus("reply"),
    n: () => composer.current?.focus("note"),
    e: () => {
      if (conversation.data && conversation.data.status !== "resolved") resolve.mutate(undefined);
    },
  });

  if (conversation.isPending) return <Spinner />;
  if (!conversation.data) return <ErrorMessage error={conversation.error} />;
  const view = conversation.data;
  const name = contactName(view.contact) ?? t("inbox.contact");

  return (
    <article className="conversation-view" aria-labelledby="conversation-title">
      <header className="conversation-header">
        <h2 id="conversation-title" ref={title} tabIndex={-1}>
          {name} <span className="display-id">#{view.display_id}</span>
        </h2>
        <StatusControl conversation={view} />
        {resolve.isPending && <Spinner label={t("conversation.saving")} />}
        <ErrorMessage error={resolve.error ?? read.error} />
      </header>
      <div className="conversation-body">
        <div className="conversation-main">
          <Thread conversationId={id} contactName={name} />
          <Composer ref={composer} conversationId={id} contactName={name} onLeave={() => title.current?.focus()} />
        </div>
        <aside className="conversation-side" aria-label={t("conversation.details")}>
          <AssigneeControl conversation={view} />
          <PriorityControl conversation={view} />
          <LabelsControl conversation={view} />
          <ContactPanel contactId={view.contact.id} conversationId={id} />
        </aside>
      </div>
    </article>
  );
}
