import { useEffect, useLayoutEffect, useRef } from "react";

/** True when a key press belongs to a field the user is typing in, where no shortcut may fire. */
export function isTyping(target: EventTarget | null): boolean {
  if (!(target instanceof HTMLElement)) return false;
  if (target.isContentEditable) return true;
  const tag = target.tagName;
  if (tag === "TEXTAREA" || tag === "SELECT") return true;
  if (tag !== "INPUT") return false;
  // Buttons-as-inputs and boxes take no text, so shortcuts still work while one has the focus.
  const type = (target as HTMLInputElement).type;
  return !["button", "checkbox", "radio", "submit", "reset"].includes(type);
}

/**
 * Single-key shortcuts on the whole document (`j`, `?` …). They do not fire while the user types in a
 * field, with Ctrl, ⌘ or Alt held, inside an open dialog, or when something else already handled the key.
 */
export function useShortcuts(bindings: Record<string, (event: KeyboardEvent) => void>): void {
  // The latest bindings are read at each key press, so callers may pass a fresh object every render.
  const latest = useRef(bindings);
  useLayoutEffect(() => {
    latest.current = bindings;
  });
  useEffect(() => {
    const onKey = (event: KeyboardEvent) => {
      if (event.defaultPrevented || event.ctrlKey || event.metaKey || event.altKey || event.isComposing) return;
      if (isTyping(event.target)) return;
      if (event.target instanceof Element && event.target.closest("[role=dialog]")) return;
      const run = latest.current[event.key];
      if (!run) return;
      event.preventDefault();
      run(event);
    };
    document.addEventListener("keydown", onKey);
    return () => document.removeEventListener("keydown", onKey);
  }, []);
}
