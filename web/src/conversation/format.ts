import type { Schemas } from "../api/client";

/** A moment (Unix ms) in the reader's language, as date and time. */
export function formatTime(ms: number, language: string): string {
  return new Intl.DateTimeFormat(language, { dateStyle: "medium", timeStyle: "short" }).format(new Date(ms));
}

/** The ISO form a `<time dateTime>` carries. */
export function isoTime(ms: number): string {
  return new Date(ms).toISOString();
}

/** The value a `datetime-local` input shows for `ms`, in the browser's time zone. */
export function toLocalInput(ms: number): string {
  const date = new Date(ms);
  const pad = (n: number) => String(n).padStart(2, "0");
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}T${pad(date.getHours())}:${pad(date.getMinutes())}`;
}

/** The moment a `datetime-local` value means (local time), or `null` for an empty or broken one. */
export function fromLocalInput(value: string): number | null {
  if (!value) return null;
  const ms = new Date(value).getTime();
  return Number.isNaN(ms) ? null : ms;
}

/** What to call a contact: their name, else e-mail, else phone. */
export function contactName(contact: Schemas["ContactSummary"]): string | null {
  return contact.name ?? contact.email ?? contact.phone ?? null;
}
