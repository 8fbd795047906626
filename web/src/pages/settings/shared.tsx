import { type ReactNode, useEffect, useId, useRef, useState } from "react";
import { useTranslation } from "react-i18next";
import { ApiError } from "../../api/problem";
import { useSession } from "../../auth/useSession";
import { ErrorMessage } from "../../components/ErrorMessage";
import { Spinner } from "../../components/Spinner";

/** Whether the signed-in member may change the account's settings: owners and admins may, agents may not. */
export function useCanManage(): boolean {
  const role = useSession()?.account.role;
  return role === "owner" || role === "admin";
}

/** Said where an agent sees what only owners and admins may change. */
export function ReadOnlyNotice() {
  const { t } = useTranslation();
  return <p className="notice">{t("settings.readOnly")}</p>;
}

/**
 * An API failure in words, with sentences of this form's own for some codes (the same code can mean
 * something else elsewhere: `email_taken` at sign-up says "log in instead", here it does not).
 */
export function FormError({ error, words = {} }: { error: unknown; words?: Partial<Record<string, string>> }) {
  const own = error instanceof ApiError ? words[error.code] : undefined;
  if (own !== undefined) {
    return (
      <div role="alert" className="error">
        <p>{own}</p>
      </div>
    );
  }
  return <ErrorMessage error={error} />;
}

/**
 * A value to copy once (a secret, an invitation link): shown in an element labelled `label`, with a
 * copy button whose outcome is announced.
 */
export function CopyValue({ label, value }: { label: string; value: string }) {
  const { t } = useTranslation();
  const id = useId();
  const [copied, setCopied] = useState<"no" | "yes" | "failed">("no");
  const copy = async () => {
    try {
      await navigator.clipboard.writeText(value);
      setCopied("yes");
    } catch {
      // The browser refused (no clipboard outside a secure context): the value stays on screen to select.
      setCopied("failed");
    }
  };
  return (
    <div className="copy-value">
      <span id={`${id}-label`} className="copy-label">
        {label}
      </span>
      <output id={`${id}-value`} aria-labelledby={`${id}-label`} className="copy-text">
        {value}
      </output>
      <button type="button" onClick={() => void copy()} aria-describedby={`${id}-label`}>
        {t("settings.copy")}
      </button>
      <span aria-live="polite" className={copied === "failed" ? "copy-status failed" : "copy-status"}>
        {copied === "yes" ? t("settings.copied") : copied === "failed" ? t("settings.copyFailed") : ""}
      </span>
    </div>
  );
}

/**
 * A delete button that asks first: the first press shows what will be deleted and a second button that
 * does it (focus moves to "Cancel", so a double press deletes nothing).
 */
export function ConfirmDelete(props: {
  /** What is deleted, as the question names it. */
  name: string;
  onConfirm: () => void;
  pending: boolean;
  /** The first button's text; "Delete" unless given. */
  action?: string;
  /** The question; "Delete “name”?" unless given. */
  question?: string | undefined;
}) {
  const { t } = useTranslation();
  const [asking, setAsking] = useState(false);
  const cancel = useRef<HTMLButtonElement>(null);
  const opener = useRef<HTMLButtonElement>(null);
  const wasAsking = useRef(false);
  useEffect(() => {
    if (asking) cancel.current?.focus();
    else if (wasAsking.current) opener.current?.focus();
    wasAsking.current = asking;
  }, [asking]);
  const action = props.action ?? t("settings.delete");
  if (props.pending) return <Spinner label={t("settings.deleting")} />;
  if (!asking) {
    return (
      <button ref={opener} type="button" className="danger" onClick={() => setAsking(true)} aria-label={`${action}: ${props.name}`}>
        {action}
      </button>
    );
  }
  const question = props.question ?? t("settings.confirmDelete", { name: props.name });
  return (
    <span
      role="group"
      aria-label={question}
      className="confirm"
      onKeyDown={(event) => {
        if (event.key === "Escape") setAsking(false);
      }}
    >
      <span>{question}</span>
      <button
        type="button"
        className="danger solid"
        onClick={() => {
          setAsking(false);
          props.onConfirm();
        }}
      >
        {t("settings.confirmYes", { action })}
      </button>
      <button ref={cancel} type="button" onClick={() => setAsking(false)}>
        {t("settings.cancel")}
      </button>
    </span>
  );
}

/** A settings section: its heading and what it holds. */
export function Section({ title, children, id }: { title: string; children: ReactNode; id: string }) {
  return (
    <section className="settings-section" aria-labelledby={id}>
      <h2 id={id}>{title}</h2>
      {children}
    </section>
  );
}

/** A date-time the API answered (Unix ms or RFC 3339), in the console's language. */
export function formatTime(value: number | string, language: string): string {
  return new Intl.DateTimeFormat(language, { dateStyle: "medium", timeStyle: "short" }).format(new Date(value));
}

/** A date the API answered (Unix ms), in the console's language. */
export function formatDate(value: number, language: string): string {
  return new Intl.DateTimeFormat(language, { dateStyle: "long" }).format(new Date(value));
}

/** An amount in a currency's smallest unit (`jpy`: yen; `usd`: cents), in the console's language. */
export function formatMoney(amount: number, currency: string, language: string): string {
  const format = new Intl.NumberFormat(language, { style: "currency", currency: currency.toUpperCase() });
  const digits = format.resolvedOptions().maximumFractionDigits ?? 0;
  return format.format(amount / 10 ** digits);
}
