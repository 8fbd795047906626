import { useMutation } from "@tanstack/react-query";
import { useTranslation } from "react-i18next";
import { api } from "../api/client";
import { unwrap } from "../api/problem";
import { getSession, updateUser } from "../auth/session";
import { useSession } from "../auth/useSession";
import { type Language, applyLanguage } from "../i18n";
import { ErrorMessage } from "./ErrorMessage";
import { LanguageOptions } from "./LanguageOptions";

/** Switches the console's language; for a signed-in user it is their setting (`update-language`). */
export function LanguagePicker() {
  const { t, i18n } = useTranslation();
  const session = useSession();
  const save = useMutation({
    mutationFn: (language: Language) =>
      unwrap(api.PUT("/api/users/update-language", { body: { language } })).then(() => language),
    onSuccess: (language) => {
      applyLanguage(language);
      // The session's copy of the user follows, so that nothing switches the console back.
      const user = getSession()?.user;
      if (user) updateUser({ ...user, language });
    },
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
          <LanguageOptions />
        </select>
      </label>
      <ErrorMessage error={save.error} />
    </div>
  );
}
