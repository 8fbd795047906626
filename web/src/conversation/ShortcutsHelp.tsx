import { useEffect, useRef } from "react";
import { useTranslation } from "react-i18next";

/** Every inbox shortcut: the key and what it does (the keys are the same in every language). */
const SHORTCUTS = [
  ["j", "next"],
  ["k", "previous"],
  ["r", "reply"],
  ["n", "note"],
  ["e", "resolve"],
  ["Ctrl + Enter", "send"],
  ["Esc", "leave"],
  ["?", "help"],
] as const;

/** The "Keyboard shortcuts" help: a modal dialog that takes the focus and gives it back when closed. */
export function ShortcutsHelp({ onClose }: { onClose: () => void }) {
  const { t } = useTranslation();
  const close = useRef<HTMLButtonElement>(null);
  useEffect(() => {
    const before = document.activeElement;
    close.current?.focus();
    return () => {
      if (before instanceof HTMLElement) before.focus();
    };
  }, []);
  return (
    <div className="dialog-backdrop" onClick={onClose}>
      <div
        role="dialog"
        aria-modal="true"
        aria-labelledby="shortcuts-title"
        className="dialog card"
        onClick={(event) => event.stopPropagation()}
        onKeyDown={(event) => {
          if (event.key === "Escape") {
            event.preventDefault();
            onClose();
          }
          // The dialog holds one control, so Tab keeps the focus on it.
          if (event.key === "Tab") {
            event.preventDefault();
            close.current?.focus();
          }
        }}
      >
        <h2 id="shortcuts-title">{t("shortcuts.title")}</h2>
        <table className="shortcuts">
          <thead>
            <tr>
              <th scope="col">{t("shortcuts.key")}</th>
              <th scope="col">{t("shortcuts.action")}</th>
            </tr>
          </thead>
          <tbody>
            {SHORTCUTS.map(([key, action]) => (
              <tr key={key}>
                <td>
                  <kbd>{key}</kbd>
                </td>
                <td>{t(`shortcuts.${action}`)}</td>
              </tr>
            ))}
          </tbody>
        </table>
        <p className="hint">{t("shortcuts.hint")}</p>
        <button ref={close} type="button" onClick={onClose}>
          {t("shortcuts.close")}
        </button>
      </div>
    </div>
  );
}
