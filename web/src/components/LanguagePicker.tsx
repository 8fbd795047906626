import { useMutation } from "@tanstack/react-query";
import { useTranslation } from "react-i18next";
import { api } from "../api/client";
import { unwrap } from "../api/problem";
import { useSession } from "../auth/useSession";
import { LANGUAGES, type Language, applyLanguage } from "../i18n";
import { ErrorMessage } from "./ErrorMessage";

const NAMES: Record<Language, string> = { ja: "日本語", en: "English" };

/** Switches the console's language; for a signed-in user it is their setting (`update-language`). */
export function LanguagePicker() {
  const { t, i18n } = useTranslation();
  const session = useSession();
  const save = useMutation({
    mutationFn: (language: Language) =>
      unwrap(api.PUT("/api/users/update-language", { body: { language } })).then(() => language),
    onSuccess: applyLanguage,
  });
  const choose = (language: Language) => {
    if (session) save.mutate(language);
    else applyLanguage(language);
  };
  return (
    <div className="language-picker">
      <label>
        {t("nav.language")}
        <select value={i18n.language} onChange={(e) => choose(e.target.value as Language)} disabled={save.isPending}>
          {LANGUAGES.map((language) => (
            <option key={language} value={language} lang={language}>
              {NAMES[language]}
            </option>
          ))}
        </select>
      </label>
      <ErrorMessage error={save.error} />
    </div>
  );
}
