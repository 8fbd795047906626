import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { type FormEvent, useEffect, useRef, useState } from "react";
import { useTranslation } from "react-i18next";
import { type Schemas, api } from "../../api/client";
import { unwrap } from "../../api/problem";
import { Spinner } from "../../components/Spinner";
import { EditDeleteButtons, EditorSection, ItemForm, QueryList, useDeleteItem, useItemForm } from "./editableList";
import { CopyValue, FormError, Section, useCanManage } from "./shared";

type Inbox = Schemas["InboxView"];
type Channel = Inbox["channel"];

/** Every channel kind the API names, and whether it takes inboxes yet (`line` and `email` are answered 422). */
const CHANNELS: { kind: Channel; available: boolean }[] = [
  { kind: "api", available: true },
  { kind: "web_widget", available: true },
  { kind: "line", available: false },
  { kind: "email", available: false },
];

/** Where a channel's messages are posted: the public endpoint of `identifier`. */
export function endpointOf(identifier: string): string {
  return `${globalThis.location.origin}/public/api/v1/inboxes/${identifier}/messages`;
}

export const inboxesQuery = { queryKey: ["inboxes"], queryFn: () => unwrap(api.GET("/api/inboxes")) };
export const membersQuery = { queryKey: ["members"], queryFn: () => unwrap(api.GET("/api/users")) };

/** Inboxes: the list, a form that creates one or edits the chosen one, who answers each, deleting. */
export function InboxSettings() {
  const { t } = useTranslation();
  const canManage = useCanManage();
  const inboxes = useQuery(inboxesQuery);
  // Who may answer changes as people join: the list is fetched afresh whenever the page opens.
  useQuery({ ...membersQuery, refetchOnMount: "always" });
  const [editing, setEditing] = useState<Inbox | null>(null);
  const [created, setCreated] = useState<Inbox | null>(null);
  return (
    <>
      <EditorSection id="inbox-form-title" title={editing ? t("settings.inboxes.editTitle", { name: editing.name }) : t("settings.inboxes.createTitle")}>
        {created && <CreatedInbox inbox={created} onDone={() => setCreated(null)} />}
        <InboxForm
          key={editing?.id ?? "new"}
          editing={editing}
          onCreating={() => setCreated(null)}
          onCreated={(inbox) => setCreated(inbox)}
          onDone={() => setEditing(null)}
        />
      </EditorSection>
      <Section id="inbox-list-title" title={t("settings.inboxes.listTitle")}>
        <QueryList query={inboxes} empty={t("settings.inboxes.empty")}>
          {(inbox) => <InboxRow inbox={inbox} canManage={canManage} onEdit={() => setEditing(inbox)} />}
        </QueryList>
      </Section>
    </>
  );
}

/** The one time the API shows a new inbox's secret: copy it now. */
function CreatedInbox({ inbox, onDone }: { inbox: Inbox; onDone: () => void }) {
  const { t } = useTranslation();
  const heading = useRef<HTMLHeadingElement>(null);
  useEffect(() => heading.current?.focus(), []);
  return (
    <div className="once-panel" role="region" aria-labelledby="created-inbox-title">
      <h3 id="created-inbox-title" tabIndex={-1} ref={heading}>
        {t("settings.inboxes.created", { name: inbox.name })}
      </h3>
      {inbox.identifier && <CopyValue label={t("settings.inboxes.endpoint")} value={endpointOf(inbox.identifier)} />}
      {inbox.identifier && <CopyValue label={t("settings.inboxes.identifier")} value={inbox.identifier} />}
      {inbox.secret && (
        <>
          <CopyValue label={t("settings.inboxes.secret")} value={inbox.secret} />
          <p className="warning">{t("settings.inboxes.secretOnce")}</p>
        </>
      )}
      <button type="button" onClick={onDone}>
        {t("settings.inboxes.copiedDone")}
      </button>
    </div>
  );
}

function InboxForm(props: {
  editing: Inbox | null;
  /** A new creation starts: the last one's secret goes (so nobody copies it for the new inbox). */
  onCreating: () => void;
  onCreated: (inbox: Inbox) => void;
  onDone: () => void;
}) {
  const { t } = useTranslation();
  const { editing } = props;
  const [name, setName] = useState(editing?.name ?? "");
  const [channel, setChannel] = useState<Channel>("api");
  const [callback, setCallback] = useState(editing?.callback_url ?? "");
  const form = useItemForm({
    editing,
    queryKey: ["inboxes"],
    save: () => {
      const callback_url = callback.trim() === "" ? null : callback.trim();
      if (editing) {
        return unwrap(api.PUT("/api/inboxes/{id}", { params: { path: { id: editing.id } }, body: { name, callback_url } }));
      }
      return unwrap(api.POST("/api/inboxes", { body: { name, channel, callback_url } }));
    },
    onCreating: props.onCreating,
    onCreated: (inbox) => {
      setName("");
      setCallback("");
      props.onCreated(inbox);
    },
    onDone: props.onDone,
  });
  return (
    <ItemForm form={form} labelledBy="inbox-form-title" createLabel={t("settings.inboxes.create")}>
      <label>
        {t("settings.inboxes.name")}
        <input ref={form.first} required maxLength={100} value={name} onChange={(e) => setName(e.target.value)} />
      </label>
      {editing ? (
        <p>
          {t("settings.inboxes.channel")}: {t(`settings.channels.${editing.channel}`)}
        </p>
      ) : (
        <label>
          {t("settings.inboxes.channel")}
          <select value={channel} onChange={(e) => setChannel(e.target.value as Channel)}>
            {CHANNELS.map(({ kind, available }) => (
              <option key={kind} value={kind} disabled={!available}>
                {available
                  ? t(`settings.channels.${kind}`)
                  : t("settings.inboxes.notAvailable", { channel: t(`settings.channels.${kind}`) })}
              </option>
            ))}
          </select>
        </label>
      )}
      <label>
        {t("settings.inboxes.callbackUrl")}
        <input
          type="url"
          inputMode="url"
          placeholder="https://"
          aria-describedby="callback-hint"
          value={callback}
          onChange={(e) => setCallback(e.target.value)}
        />
      </label>
      <small className="hint" id="callback-hint">{t("settings.inboxes.callbackHint")}</small>
    </ItemForm>
  );
}

function InboxRow(props: { inbox: Inbox; canManage: boolean; onEdit: () => void }) {
  const { t } = useTranslation();
  const { inbox } = props;
  const remove = useDeleteItem(["inboxes"], () => unwrap(api.DELETE("/api/inboxes/{id}", { params: { path: { id: inbox.id } } })));
  return (
    <li className="settings-item">
      <div className="item-main">
        <strong>{inbox.name}</strong>
        <span className="item-meta">
          {t(`settings.channels.${inbox.channel}`)}
          {inbox.identifier && (
            <>
              {" · "}
              <code>{inbox.identifier}</code>
            </>
          )}
        </span>
        <span className="item-meta">
          {inbox.callback_url ? t("settings.inboxes.repliesTo", { url: inbox.callback_url }) : t("settings.inboxes.noCallback")}
        </span>
      </div>
      <div className="item-actions">
        {props.canManage && <EditDeleteButtons name={inbox.name} onEdit={props.onEdit} deletion={remove} />}
      </div>
      <FormError error={remove.error} />
      <div className="item-panel">
        <InboxMembers inbox={inbox} canManage={props.canManage} />
      </div>
    </li>
  );
}

/** Who answers an inbox (`/api/inboxes/{id}/members`): the account's members, ticked or not. */
function InboxMembers({ inbox, canManage }: { inbox: Inbox; canManage: boolean }) {
  const { t } = useTranslation();
  const client = useQueryClient();
  const members = useQuery(membersQuery);
  const current = useQuery({
    queryKey: ["inbox-members", inbox.id],
    queryFn: () => unwrap(api.GET("/api/inboxes/{id}/members", { params: { path: { id: inbox.id } } })),
  });
  const [chosen, setChosen] = useState<Set<string> | null>(null);
  const [saved, setSaved] = useState(false);
  const ticked = chosen ?? new Set(current.data?.user_ids ?? []);
  const save = useMutation({
    mutationFn: () =>
      unwrap(api.PUT("/api/inboxes/{id}/members", { params: { path: { id: inbox.id } }, body: { user_ids: [...ticked] } })),
    onSuccess: (stored) => {
      client.setQueryData(["inbox-members", inbox.id], stored);
      setChosen(null);
      setSaved(true);
    },
  });
  if (members.isPending || current.isPending) return <Spinner />;
  if (members.error || current.error) return <FormError error={members.error ?? current.error} />;
  const toggle = (id: string, on: boolean) => {
    const next = new Set(ticked);
    if (on) next.add(id);
    else next.delete(id);
    setChosen(next);
    setSaved(false);
  };
  const submit = (event: FormEvent) => {
    event.preventDefault();
    save.mutate();
  };
  return (
    <form onSubmit={submit}>
      <fieldset disabled={!canManage}>
        <legend>{t("settings.inboxes.membersOf", { name: inbox.name })}</legend>
        {(members.data ?? []).map((member) => (
          <label key={member.id} className="check">
            <input type="checkbox" checked={ticked.has(member.id)} onChange={(e) => toggle(member.id, e.target.checked)} />
            {member.name} <span className="item-meta">{member.email}</span>
          </label>
        ))}
        <FormError error={save.error} />
        {canManage && (
          <div className="actions">
            <button type="submit" disabled={save.isPending || chosen === null}>
              {t("settings.inboxes.saveMembers")}
            </button>
            {save.isPending ? (
              <Spinner label={t("settings.saving")} />
            ) : (
              saved && <span role="status">{t("settings.saved")}</span>
            )}
          </div>
        )}
      </fieldset>
    </form>
  );
}
