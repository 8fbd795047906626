import { useMutation } from "@tanstack/react-query";
import { type FormEvent, useState } from "react";
import { useTranslation } from "react-i18next";
import { Link, useLocation, useNavigate } from "react-router-dom";
import { api } from "../api/client";
import { unwrap } from "../api/problem";
import { adopt } from "../auth/session";
import { LanguageOptions } from "../components/LanguageOptions";
import { NewPasswordField } from "../components/NewPasswordField";
import { Spinner } from "../components/Spinner";
import { type Language, applyLanguage } from "../i18n";
import { FormError } from "./settings/shared";

/**
 * Accepting an invitation: the link is `/invitations/accept#<token>` (a fragment, so the token reaches no
 * server log); the invitee picks a name, a password and a language and is signed in to the account.
 */
export default function AcceptInvitationPage() {
  const { t, i18n } = useTranslation();
  const navigate = useNavigate();
  const token = decodeURIComponent(useLocation().hash.replace(/^#/, "")).trim();
  const [name, setName] = useState("");
  const [password, setPassword] = useState("");
  const [language, setLanguage] = useState<Language>(i18n.language === "en" ? "en" : "ja");
  const accept = useMutation({
    mutationFn: () => unwrap(api.POST("/api/users/invitations/accept", { body: { token, name, password, language } })),
    onSuccess: (session) => {
      adopt(session);
      applyLanguage(session.user.language);
      // Replacing the entry drops the token from the history too.
      void navigate("/", { replace: true });
    },
  });
  const choose = (chosen: Language) => {
    setLanguage(chosen);
    applyLanguage(chosen);
  };
  const submit = (event: FormEvent) => {
    event.preventDefault();
    accept.mutate();
  };
  return (
    <main className="auth-page">
      <form className="card auth-card" onSubmit={submit} aria-labelledby="invite-title" aria-describedby="invite-intro">
        <h1 id="invite-title">{t("invite.title")}</h1>
        {token === "" ? (
          <div role="alert" className="error">
            <p>{t("invite.noToken")}</p>
          </div>
        ) : (
          <p id="invite-intro">{t("invite.intro")}</p>
        )}
        <label>
          {t("invite.name")}
          <input autoComplete="name" required maxLength={100} value={name} onChange={(e) => setName(e.target.value)} />
        </label>
        <NewPasswordField
          label={t("invite.password")}
          hint={t("auth.passwordHint")}
          hintId="invite-password-hint"
          value={password}
          onChange={setPassword}
        />
        <label>
          {t("invite.language")}
          <select value={language} onChange={(e) => choose(e.target.value as Language)}>
            <LanguageOptions />
          </select>
        </label>
        <FormError error={accept.error} words={{ email_taken: t("invite.emailTaken") }} />
        <button type="submit" className="primary" disabled={accept.isPending || token === ""}>
          {t("invite.join")}
        </button>
        {accept.isPending && <Spinner label={t("invite.joining")} />}
        <p>
          {t("auth.haveAccount")} <Link to="/login">{t("auth.login")}</Link>
        </p>
      </form>
    </main>
  );
}
