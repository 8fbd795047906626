import { useMutation } from "@tanstack/react-query";
import { type FormEvent, useState } from "react";
import { useTranslation } from "react-i18next";
import { Link, useNavigate } from "react-router-dom";
import { api } from "../api/client";
import { unwrap } from "../api/problem";
import { adopt } from "../auth/session";
import { ErrorMessage } from "../components/ErrorMessage";
import { LanguagePicker } from "../components/LanguagePicker";

export function LoginPage() {
  const { t } = useTranslation();
  const navigate = useNavigate();
  const [email, setEmail] = useState("");
  const [password, setPassword] = useState("");
  const login = useMutation({
    mutationFn: () => unwrap(api.POST("/api/users/login", { body: { email, password } })),
    onSuccess: (session) => {
      adopt(session);
      void navigate("/", { replace: true });
    },
  });
  const submit = (event: FormEvent) => {
    event.preventDefault();
    login.mutate();
  };
  return (
    <main className="auth-page">
      <form className="card auth-card" onSubmit={submit} aria-labelledby="login-title">
        <h1 id="login-title">{t("auth.loginTitle")}</h1>
        <label>
          {t("auth.email")}
          <input type="email" autoComplete="username" required value={email} onChange={(e) => setEmail(e.target.value)} />
        </label>
        <label>
          {t("auth.password")}
          <input
            type="password"
            autoComplete="current-password"
            required
            value={password}
            onChange={(e) => setPassword(e.target.value)}
          />
        </label>
        <ErrorMessage error={login.error} />
        <button type="submit" className="primary" disabled={login.isPending}>
          {login.isPending ? t("auth.loggingIn") : t("auth.login")}
        </button>
        <p>
          {t("auth.noAccount")} <Link to="/signup">{t("auth.signup")}</Link>
        </p>
        <LanguagePicker />
      </form>
    </main>
  );
}
