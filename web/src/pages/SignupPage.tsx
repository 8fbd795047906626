import { useMutation } from "@tanstack/react-query";
import { type FormEvent, useState } from "react";
import { useTranslation } from "react-i18next";
import { Link, useNavigate } from "react-router-dom";
import { api } from "../api/client";
import { unwrap } from "../api/problem";
import { adopt } from "../auth/session";
import { ErrorMessage } from "../components/ErrorMessage";
import { LanguagePicker } from "../components/LanguagePicker";
import { NewPasswordField } from "../components/NewPasswordField";
import type { Language } from "../i18n";

/** Sign-up creates the user and the workspace they own, then logs them in. */
export function SignupPage() {
  const { t, i18n } = useTranslation();
  const navigate = useNavigate();
  const [name, setName] = useState("");
  const [accountName, setAccountName] = useState("");
  const [email, setEmail] = useState("");
  const [password, setPassword] = useState("");
  const signup = useMutation({
    mutationFn: async () => {
      const language = i18n.language as Language;
      const account_name = accountName.trim() === "" ? null : accountName;
      await unwrap(api.POST("/api/users/register", { body: { email, password, name, language, account_name } }));
      return unwrap(api.POST("/api/users/login", { body: { email, password } }));
    },
    onSuccess: (session) => {
      adopt(session);
      void navigate("/", { replace: true });
    },
  });
  const submit = (event: FormEvent) => {
    event.preventDefault();
    signup.mutate();
  };
  return (
    <main className="auth-page">
      <form className="card auth-card" onSubmit={submit} aria-labelledby="signup-title">
        <h1 id="signup-title">{t("auth.signupTitle")}</h1>
        <label>
          {t("auth.name")}
          <input autoComplete="name" required maxLength={100} value={name} onChange={(e) => setName(e.target.value)} />
        </label>
        <label>
          {t("auth.accountName")}
          <input autoComplete="organization" maxLength={100} value={accountName} onChange={(e) => setAccountName(e.target.value)} />
        </label>
        <label>
          {t("auth.email")}
          <input type="email" autoComplete="email" required value={email} onChange={(e) => setEmail(e.target.value)} />
        </label>
        <NewPasswordField
          label={t("auth.password")}
          hint={t("auth.passwordHint")}
          hintId="password-hint"
          value={password}
          onChange={setPassword}
        />
        <ErrorMessage error={signup.error} />
        <button type="submit" className="primary" disabled={signup.isPending}>
          {signup.isPending ? t("auth.signingUp") : t("auth.signup")}
        </button>
        <p>
          {t("auth.haveAccount")} <Link to="/login">{t("auth.login")}</Link>
        </p>
        <LanguagePicker />
      </form>
    </main>
  );
}
