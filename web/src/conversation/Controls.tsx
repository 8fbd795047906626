import { useQuery } from "@tanstack/react-query";
import { useId, useState } from "react";
import { useTranslation } from "react-i18next";
import { api } from "../api/client";
import { unwrap } from "../api/problem";
import { useSession } from "../auth/useSession";
import { ErrorMessage } from "../components/ErrorMessage";
import { Spinner } from "../components/Spinner";
import { formatTime, fromLocalInput, toLocalInput } from "./format";
import {
  type Conversation,
  type ConversationStatus,
  PRIORITIES,
  type Priority,
  STATUSES,
  changeStatus,
  labelsQuery,
  membersQuery,
  useConversationChange,
} from "./queries";

const HOUR = 3_600_000;

/** The status select, with the "snooze until" time it asks for when snoozing, and the Resolve button. */
export function StatusControl({ conversation }: { conversation: Conversation }) {
  const { t, i18n } = useTranslation();
  const ids = useId();
  const change = useConversationChange(
    conversation.id,
    (input: { status: ConversationStatus; until?: number }) => changeStatus(conversation.id, input.status, input.until),
    (view, input) => ({ ...view, status: input.status, snoozed_until: input.until ?? null }),
  );
  // Choosing "snoozed" first asks until when; nothing is sent until the time is given.
  const [snoozing, setSnoozing] = useState(false);
  const [until, setUntil] = useState(() => toLocalInput(Date.now() + 24 * HOUR));
  const [invalid, setInvalid] = useState(false);
  const shown: ConversationStatus = snoozing ? "snoozed" : conversation.status;

  const snooze = () => {
    const ms = fromLocalInput(until);
    if (ms === null || ms <= Date.now()) {
      setInvalid(true);
      return;
    }
    setInvalid(false);
    change.mutate({ status: "snoozed", until: ms }, { onSuccess: () => setSnoozing(false) });
  };

  return (
    <div className="control status-control">
      <label>
        {t("conversation.status")}
        <select
          value={shown}
          aria-busy={change.isPending}
          onChange={(event) => {
            const status = STATUSES.find((s) => s === event.target.value);
            if (!status) return;
            if (status === "snoozed") {
              setSnoozing(true);
              return;
            }
            setSnoozing(false);
            change.mutate({ status });
          }}
        >
          {STATUSES.map((status) => (
            <option key={status} value={status}>
              {t(`status.${status}`)}
            </option>
          ))}
        </select>
      </label>
      {conversation.status === "resolved" ? (
        <button type="button" onClick={() => change.mutate({ status: "open" })} disabled={change.isPending}>
          {t("conversation.reopen")}
        </button>
      ) : (
        <button type="button" className="primary" onClick={() => change.mutate({ status: "resolved" })} disabled={change.isPending}>
          {t("conversation.resolve")}
        </button>
      )}
      {change.isPending && <Spinner label={t("conversation.saving")} />}
      {!snoozing && conversation.status === "snoozed" && conversation.snoozed_until != null && (
        <p className="hint">{t("conversation.snoozedUntil", { time: formatTime(conversation.snoozed_until, i18n.language) })}</p>
      )}
      {snoozing && (
        <div className="snooze">
          <label>
            {t("conversation.snoozeUntil")}
            <input
              type="datetime-local"
              value={until}
              min={toLocalInput(Date.now())}
              aria-invalid={invalid}
              aria-describedby={invalid ? `${ids}-invalid` : undefined}
              onChange={(event) => {
                setUntil(event.target.value);
                setInvalid(false);
              }}
            />
          </label>
          {invalid && (
            <p id={`${ids}-invalid`} role="alert" className="field-error">
              {t("conversation.snoozeInFuture")}
            </p>
          )}
          <div className="snooze-actions">
            <button type="button" className="primary" onClick={snooze} disabled={change.isPending}>
              {t("conversation.snooze")}
            </button>
            <button type="button" onClick={() => setSnoozing(false)}>
              {t("conversation.cancel")}
            </button>
          </div>
        </div>
      )}
      <ErrorMessage error={change.error} />
    </div>
  );
}

/** Who answers the conversation: the signed-in agent, another member, or nobody. */
export function AssigneeControl({ conversation }: { conversation: Conversation }) {
  const { t } = useTranslation();
  const session = useSession();
  const members = useQuery(membersQuery());
  const change = useConversationChange(
    conversation.id,
    (assignee: string | null) =>
      unwrap(
        api.POST("/api/conversations/{id}/assignee", {
          params: { path: { id: conversation.id } },
          body: { assignee_id: assignee },
        }),
      ),
    (view, assignee) => ({ ...view, assignee_id: assignee }),
  );
  const me = session?.user.id;
  const assignee = conversation.assignee_id ?? "";
  const others = (members.data ?? []).filter((member) => member.id !== me);
  // An assignee who has since left the account still shows, so the select never lies about who has it.
  const unknown = assignee !== "" && assignee !== me && !others.some((member) => member.id === assignee);
  return (
    <div className="control">
      <label>
        {t("conversation.assignee")}
        <select
          value={assignee}
          aria-busy={change.isPending}
          onChange={(event) => change.mutate(event.target.value === "" ? null : event.target.value)}
        >
          <option value="">{t("conversation.unassigned")}</option>
          {/* The signed-in agent comes first, under their own name; "Assign to me" says the rest. */}
          {me && <option value={me}>{session.user.name}</option>}
          {others.map((member) => (
            <option key={member.id} value={member.id}>
              {member.name}
            </option>
          ))}
          {unknown && <option value={assignee}>{t("conversation.formerMember")}</option>}
        </select>
      </label>
      {me && assignee !== me && (
        <button type="button" onClick={() => change.mutate(me)} disabled={change.isPending}>
          {t("conversation.assignToMe")}
        </button>
      )}
      {(change.isPending || members.isPending) && <Spinner />}
      <ErrorMessage error={change.error ?? members.error} />
    </div>
  );
}

export function PriorityControl({ conversation }: { conversation: Conversation }) {
  const { t } = useTranslation();
  const change = useConversationChange(
    conversation.id,
    (priority: Priority) =>
      unwrap(api.POST("/api/conversations/{id}/priority", { params: { path: { id: conversation.id } }, body: { priority } })),
    (view, priority) => ({ ...view, priority }),
  );
  return (
    <div className="control">
      <label>
        {t("conversation.priority")}
        <select
          value={conversation.priority}
          aria-busy={change.isPending}
          onChange={(event) => {
            const priority = PRIORITIES.find((p) => p === event.target.value);
            if (priority) change.mutate(priority);
          }}
        >
          {PRIORITIES.map((priority) => (
            <option key={priority} value={priority}>
              {t(`conversation.priorities.${priority}`)}
            </option>
          ))}
        </select>
      </label>
      {change.isPending && <Spinner label={t("conversation.saving")} />}
      <ErrorMessage error={change.error} />
    </div>
  );
}

/** The conversation's labels: one box per label of the account, ticked when the conversation has it. */
export function LabelsControl({ conversation }: { conversation: Conversation }) {
  const { t } = useTranslation();
  const labels = useQuery(labelsQuery());
  const change = useConversationChange(
    conversation.id,
    (next: string[]) =>
      unwrap(api.PUT("/api/conversations/{id}/labels", { params: { path: { id: conversation.id } }, body: { labels: next } })),
    (view, labels) => ({ ...view, labels }),
  );
  // What the boxes show from the click on, until the server has answered: the query cache tells its
  // readers a moment later, after React has put a controlled box back as it was.
  const [ticked, setTicked] = useState<string[] | null>(null);
  const shown = ticked ?? conversation.labels;
  const has = new Set(shown);
  const toggle = (name: string, on: boolean) => {
    const next = on ? [...shown, name] : shown.filter((label) => label !== name);
    setTicked(next);
    change.mutate(next, { onSettled: () => setTicked(null) });
  };
  return (
    <fieldset className="control labels-control" aria-busy={change.isPending} aria-label={t("conversation.labels")}>
      <legend>{t("conversation.labels")}</legend>
      {labels.isPending ? (
        <Spinner />
      ) : (labels.data ?? []).length === 0 ? (
        <p className="hint">{t("conversation.noLabels")}</p>
      ) : (
        <ul className="label-choices">
          {(labels.data ?? []).map((label) => (
            <li key={label.id}>
              <label className="label-choice">
                <input type="checkbox" checked={has.has(label.name)} onChange={(event) => toggle(label.name, event.target.checked)} />
                <span className="label-swatch" style={{ background: label.colour }} aria-hidden="true" />
                {label.name}
              </label>
            </li>
          ))}
        </ul>
      )}
      {change.isPending && <Spinner label={t("conversation.saving")} />}
      <ErrorMessage error={change.error ?? labels.error} />
    </fieldset>
  );
}
