import i18n from "../i18n";
import { formatTime } from "./format";
import { type Message, PRIORITIES, STATUSES } from "./queries";

type Fields = Record<string, unknown>;

function fields(value: unknown): Fields {
  return value !== null && typeof value === "object" && !Array.isArray(value) ? (value as Fields) : {};
}

function text(value: unknown): string | null {
  return typeof value === "string" ? value : null;
}

function names(value: unknown): string[] {
  return Array.isArray(value) ? value.filter((item): item is string => typeof item === "string") : [];
}

function statusName(value: unknown): string {
  const status = STATUSES.find((s) => s === value);
  return status ? i18n.t(`status.${status}`) : String(value);
}

function priorityName(value: unknown): string {
  const priority = PRIORITIES.find((p) => p === value);
  return priority ? i18n.t(`conversation.priorities.${priority}`) : String(value);
}

/**
 * An activity entry in words, from what its `attributes` record (`action` and its details, see the
 * inbox service's desk). `member` names a user id (`null`: the system). An action this console does
 * not know yet reads as the server's own word for it.
 */
export function describeActivity(message: Message, member: (id: string | null) => string): string {
  const attributes = fields(message.attributes);
  const who = member(message.sender_id ?? null);
  switch (attributes["action"]) {
    case "status_changed": {
      const until = attributes["snoozed_until"];
      if (attributes["to"] === "snoozed" && typeof until === "number") {
        return i18n.t("conversation.activity.snoozed", { who, until: formatTime(until, i18n.language) });
      }
      return i18n.t("conversation.activity.status", {
        who,
        from: statusName(attributes["from"]),
        to: statusName(attributes["to"]),
      });
    }
    case "assigned": {
      const to = text(attributes["to"]);
      return to === null
        ? i18n.t("conversation.activity.unassigned", { who })
        : i18n.t("conversation.activity.assigned", { who, to: member(to) });
    }
    case "priority_changed":
      return i18n.t("conversation.activity.priority", {
        who,
        from: priorityName(attributes["from"]),
        to: priorityName(attributes["to"]),
      });
    case "labelled": {
      const added = names(attributes["added"]);
      const removed = names(attributes["removed"]);
      const parts = [
        added.length > 0 ? i18n.t("conversation.activity.added", { who, labels: added.join(", ") }) : null,
        removed.length > 0 ? i18n.t("conversation.activity.removed", { who, labels: removed.join(", ") }) : null,
      ].filter((part): part is string => part !== null);
      return parts.length > 0 ? parts.join(" ") : i18n.t("conversation.activity.labels", { who });
    }
    default:
      return message.content;
  }
}
