import { LANGUAGES, type Language } from "../i18n";

/** Each language by its own name, so that someone who reads only that language can find it. */
export const LANGUAGE_NAMES: Record<Language, string> = { ja: "日本語", en: "English" };

/** The console's languages as the options of a `<select>`, each marked with its language. */
export function LanguageOptions() {
  return LANGUAGES.map((code) => (
    <option key={code} value={code} lang={code}>
      {LANGUAGE_NAMES[code]}
    </option>
  ));
}
