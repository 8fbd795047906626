import { keepPreviousData, useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { type Ref, useId, useImperativeHandle, useLayoutEffect, useRef, useState } from "react";
import { useTranslation } from "react-i18next";
import { api } from "../api/client";
import { unwrap } from "../api/problem";
import { getSession, subscribe } from "../auth/session";
import { ErrorMessage } from "../components/ErrorMessage";
import { Spinner } from "../components/Spinner";
import { appendMessage, keys } from "./queries";

export type ComposerMode = "reply" | "note";

/** What the conversation view (and its shortcuts) can ask of the reply box. */
export interface ComposerHandle {
  focus: (mode: ComposerMode) => void;
}

/** The text typed in each conversation's box and not yet sent, kept while the agent looks elsewhere. */
const drafts = new Map<string, { text: string; mode: ComposerMode }>();
// Drafts are the signed-in agent's: logging out forgets them.
subscribe(() => {
  if (getSession() === null) drafts.clear();
});

/** A `/shortcode` being typed just before the caret: where it starts and what follows the slash. */
function shortcodeAt(text: string, caret: number): { start: number; prefix: string } | null {
  const match = /(?:^|\s)\/([^\s/]*)$/.exec(text.slice(0, caret));
  if (!match) return null;
  const prefix = match[1] ?? "";
  return { start: caret - prefix.length - 1, prefix };
}

/**
 * The reply box: a reply to the contact or a private note, sent with the button or Ctrl/⌘+Enter; `/`
 * at the start of a word offers the canned responses whose short code starts with what follows.
 */
export function Composer(props: {
  conversationId: string;
  contactName: string;
  onLeave: () => void;
  ref?: Ref<ComposerHandle>;
}) {
  const { t } = useTranslation();
  const client = useQueryClient();
  const ids = useId();
  const draft = drafts.get(props.conversationId);
  const [text, setText] = useState(draft?.text ?? "");
  const [mode, setMode] = useState<ComposerMode>(draft?.mode ?? "reply");
  const [caret, setCaret] = useState(0);
  const [active, setActive] = useState(0);
  const [dismissed, setDismissed] = useState<number | null>(null);
  const box = useRef<HTMLTextAreaElement>(null);
  // The text now, for a send that finishes after more was typed.
  const latest = useRef(text);
  useLayoutEffect(() => {
    latest.current = text;
  }, [text]);
  const placeCaret = useRef<number | null>(null);

  useImperativeHandle(props.ref, () => ({
    focus: (next) => {
      setMode(next);
      box.current?.focus();
    },
  }));

  useLayoutEffect(() => {
    if (placeCaret.current === null || !box.current) return;
    box.current.setSelectionRange(placeCaret.current, placeCaret.current);
    placeCaret.current = null;
  });

  const keep = (nextText: string, nextMode: ComposerMode) => {
    if (nextText === "") drafts.delete(props.conversationId);
    else drafts.set(props.conversationId, { text: nextText, mode: nextMode });
  };

  const token = shortcodeAt(text, caret);
  const open = token !== null && dismissed !== token.start;
  const canned = useQuery({
    queryKey: keys.canned(token?.prefix ?? ""),
    queryFn: () => unwrap(api.GET("/api/canned-responses", { params: { query: { q: token?.prefix ?? "" } } })),
    enabled: open,
    placeholderData: keepPreviousData,
    staleTime: 60_000,
  });
  const prefix = (token?.prefix ?? "").toLowerCase();
  const options = open ? (canned.data ?? []).filter((c) => c.short_code.toLowerCase().startsWith(prefix)) : [];
  const current = Math.min(active, Math.max(options.length - 1, 0));

  const send = useMutation({
    mutationFn: (body: { content: string; private: boolean }) =>
      unwrap(api.POST("/api/conversations/{id}/messages", { params: { path: { id: props.conversationId } }, body })),
    onSuccess: (message, sent) => {
      // The box stays editable while sending: what was typed after pressing Send stays in it.
      const now = latest.current;
      const rest = now.startsWith(sent.content) ? now.slice(sent.content.length).trimStart() : now;
      setText(rest);
      keep(rest, mode);
      appendMessage(client, message);
      void client.invalidateQueries({ queryKey: keys.messages(props.conversationId) });
      void client.invalidateQueries({ queryKey: keys.conversations });
    },
  });

  const submit = () => {
    if (text.trim() === "" || send.isPending) return;
    send.mutate({ content: text, private: mode === "note" });
  };

  const insert = (content: string) => {
    if (!token) return;
    const next = text.slice(0, token.start) + content + text.slice(caret);
    const at = token.start + content.length;
    setText(next);
    keep(next, mode);
    setCaret(at);
    placeCaret.current = at;
    box.current?.focus();
  };

  const choose = (next: ComposerMode) => {
    setMode(next);
    keep(text, next);
    box.current?.focus();
  };

  const listbox = `${ids}-canned`;
  const optionId = (index: number) => `${ids}-canned-${index}`;
  const label = mode === "note" ? t("conversation.composer.noteLabel") : t("conversation.composer.replyLabel");

  return (
    <form
      className={mode === "note" ? "composer note-mode" : "composer"}
      onSubmit={(event) => {
        event.preventDefault();
        submit();
      }}
    >
      <div role="group" aria-label={t("conversation.composer.mode")} className="mode-switch">
        <button type="button" aria-pressed={mode === "reply"} onClick={() => choose("reply")}>
          {t("conversation.composer.reply")}
        </button>
        <button type="button" aria-pressed={mode === "note"} onClick={() => choose("note")}>
          {t("conversation.composer.note")}
        </button>
        {mode === "note" && <span className="note-hint">{t("conversation.composer.noteHint")}</span>}
      </div>
      <div className="composer-field">
        {open && (
          <div className="canned-popup">
            {canned.isPending ? (
              <Spinner />
            ) : canned.error ? (
              <ErrorMessage error={canned.error} />
            ) : options.length === 0 ? (
              <p className="canned-empty">{t("conversation.composer.noCanned", { code: token.prefix })}</p>
            ) : (
              <ul id={listbox} role="listbox" aria-label={t("conversation.composer.canned")} className="canned-list">
                {options.map((option, index) => (
                  <li
                    key={option.id}
                    id={optionId(index)}
                    role="option"
                    aria-selected={index === current}
                    className={index === current ? "canned-option active" : "canned-option"}
                    // The box keeps the focus (and the caret) while an option is clicked.
                    onMouseDown={(event) => event.preventDefault()}
                    onClick={() => insert(option.content)}
                  >
                    <span className="canned-option-code">/{option.short_code}</span>
                    {" "}
                    <span className="canned-option-content">{option.content}</span>
                  </li>
                ))}
              </ul>
            )}
          </div>
        )}
        <textarea
          ref={box}
          aria-label={label}
          aria-describedby={`${ids}-hint`}
          aria-autocomplete="list"
          {...(open && options.length > 0 ? { "aria-controls": listbox, "aria-activedescendant": optionId(current) } : {})}
          placeholder={
            mode === "note"
              ? t("conversation.composer.notePlaceholder")
              : t("conversation.composer.replyPlaceholder", { name: props.contactName })
          }
          rows={4}
          value={text}
          onChange={(event) => {
            setText(event.target.value);
            keep(event.target.value, mode);
            setCaret(event.target.selectionStart);
            setActive(0);
          }}
          onSelect={(event) => setCaret(event.currentTarget.selectionStart)}
          onKeyDown={(event) => {
            if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
              event.preventDefault();
              submit();
              return;
            }
            if (open && options.length > 0) {
              if (event.key === "ArrowDown" || event.key === "ArrowUp") {
                event.preventDefault();
                const step = event.key === "ArrowDown" ? 1 : -1;
                setActive((current + step + options.length) % options.length);
                return;
              }
              if (event.key === "Enter" || event.key === "Tab") {
                const option = options[current];
                if (option) {
                  event.preventDefault();
                  insert(option.content);
                }
                return;
              }
            }
            if (event.key === "Escape") {
              event.preventDefault();
              if (open && token) setDismissed(token.start);
              else props.onLeave();
            }
          }}
        />
      </div>
      <ErrorMessage error={send.error} />
      <div className="composer-actions">
        <span id={`${ids}-hint`} className="hint">
          {t("conversation.composer.hint")}
        </span>
        {send.isPending && <Spinner label={t("conversation.composer.sending")} />}
        <button type="submit" className="primary" disabled={send.isPending || text.trim() === ""} aria-busy={send.isPending}>
          {t("conversation.composer.send")}
        </button>
      </div>
    </form>
  );
}
