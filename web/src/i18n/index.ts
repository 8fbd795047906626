import i18n from "i18next";
import { initReactI18next } from "react-i18next";
import { ApiError } from "../api/problem";
import { en, type Resources } from "./en";
import { ja } from "./ja";

export const LANGUAGES = ["ja", "en"] as const;
export type Language = (typeof LANGUAGES)[number];

const CHOSEN_KEY = "omnidesk.language";

declare module "i18next" {
  interface CustomTypeOptions {
    defaultNS: "translation";
    resources: { translation: Resources };
  }
}

/** Before anyone signs in: the language chosen here last, else the browser's. */
function initialLanguage(): Language {
  const chosen = localStorage.getItem(CHOSEN_KEY);
  if (chosen === "ja" || chosen === "en") return chosen;
  return navigator.language.toLowerCase().startsWith("ja") ? "ja" : "en";
}

void i18n.use(initReactI18next).init({
  resources: { en: { translation: en }, ja: { translation: ja } },
  lng: initialLanguage(),
  fallbackLng: "en",
  interpolation: { escapeValue: false },
});

/** Shows the console in `language` (the signed-in user's setting, or a choice before signing in). */
export function applyLanguage(language: Language): void {
  localStorage.setItem(CHOSEN_KEY, language);
  document.documentElement.lang = language;
  if (i18n.language !== language) void i18n.changeLanguage(language);
}

/** An API failure in words: the code's own sentence when there is one, else the server's detail. */
export function describeError(error: unknown): string {
  if (error instanceof ApiError) {
    const key = `errors.${error.code}`;
    if (i18n.exists(key)) return i18n.t(key as "errors.generic");
    return i18n.t("errors.generic", { detail: error.problem.detail ?? error.problem.title });
  }
  return i18n.t("errors.generic", { detail: error instanceof Error ? error.message : String(error) });
}

export default i18n;
