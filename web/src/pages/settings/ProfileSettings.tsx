import { useMutation } from "@tanstack/react-query";
import { type FormEvent, useState } from "react";
import { useTranslation } from "react-i18next";
import { type Schemas, api } from "../../api/client";
import { unwrap } from "../../api/problem";
import { adopt, forget, updateUser } from "../../auth/session";
import { useSession } from "../../auth/useSession";
import { LanguageOptions } from "../../components/LanguageOptions";
import { NewPasswordField } from "../../components/NewPasswordField";
import { Spinner } from "../../components/Spinner";
import { type Language, applyLanguage } from "../../i18n";
import { FormError, Section } from "./shared";

/** The user as the session keeps it, from an answer that also carries the account. */
function userOf(answer: Schemas["UserWithAccount"]): Schemas["UserView"] {
  const { id, email, name, language, created_at, updated_at } = answer;
  return { id, email, name, language, created_at, updated_at };
}

/** The signed-in user's own name, e-mail, language and password (`PUT /api/users/{id}`). */
export function ProfileSettings() {
  const { t } = useTranslation();
  const session = useSession();
  if (!session) return null;
  return (
    <>
      <Section id="profile-title" title={t("settings.profile.title")}>
        <ProfileForm key={session.user.id} user={session.user} />
      </Section>
      <Section id="password-title" title={t("settings.profile.passwordTitle")}>
        <PasswordForm id={session.user.id} email={session.user.email} />
      </Section>
    </>
  );
}

function ProfileForm({ user }: { user: Schemas["UserView"] }) {
  const { t } = useTranslation();
  const [name, setName] = useState(user.name);
  const [email, setEmail] = useState(user.email);
  const [language, setLanguage] = useState<Language>(user.language);
  const [saved, setSaved] = useState(false);
  const save = useMutation({
    mutationFn: () => {
      // Only what changed is sent: the API refuses an e-mail change it would not need, for nobody.
      const body: Schemas["UpdateUserRequest"] = {};
      if (name !== user.name) body.name = name;
      if (email !== user.email) body.email = email;
      if (language !== user.language) body.language = language;
      return unwrap(api.PUT("/api/users/{id}", { params: { path: { id: user.id } }, body }));
    },
    onSuccess: (answer) => {
      const stored = userOf(answer);
      applyLanguage(stored.language);
      updateUser(stored);
      setSaved(true);
    },
  });
  const unchanged = name === user.name && email === user.email && language === user.language;
  const submit = (event: FormEvent) => {
    event.preventDefault();
    setSaved(false);
    save.mutate();
  };
  return (
    <form className="settings-form" onSubmit={submit} aria-labelledby="profile-title">
      <label>
        {t("settings.profile.name")}
        <input autoComplete="name" required maxLength={100} value={name} onChange={(e) => setName(e.target.value)} />
      </label>
      <label>
        {t("settings.profile.email")}
        <input type="email" autoComplete="email" required maxLength={254} value={email} onChange={(e) => setEmail(e.target.value)} />
      </label>
      <label>
        {t("settings.profile.language")}
        <select value={language} onChange={(e) => setLanguage(e.target.value as Language)}>
          <LanguageOptions />
        </select>
      </label>
      <FormError error={save.error} words={{ email_taken: t("settings.profile.emailTaken") }} />
      <div className="actions">
        <button type="submit" className="primary" disabled={save.isPending || unchanged}>
          {t("settings.save")}
        </button>
        {save.isPending && <Spinner label={t("settings.saving")} />}
        <span aria-live="polite">{saved && unchanged ? t("settings.profile.saved") : ""}</span>
      </div>
    </form>
  );
}

/**
 * A new password ends every session of the user, this one included; the form signs in again with the new
 * password so that the person who changed it stays signed in here.
 */
function PasswordForm({ id, email }: { id: string; email: string }) {
  const { t } = useTranslation();
  const [current, setCurrent] = useState("");
  const [password, setPassword] = useState("");
  const [done, setDone] = useState(false);
  const change = useMutation({
    mutationFn: async () => {
      await unwrap(api.PUT("/api/users/{id}", { params: { path: { id } }, body: { password, current_password: current } }));
      try {
        return await unwrap(api.POST("/api/users/login", { body: { email, password } }));
      } catch {
        // The password is changed but this session ended with it: signing in again is all that is left.
        forget();
        return null;
      }
    },
    onSuccess: (session) => {
      if (session) adopt(session);
      setCurrent("");
      setPassword("");
      setDone(true);
    },
  });
  const submit = (event: FormEvent) => {
    event.preventDefault();
    setDone(false);
    change.mutate();
  };
  return (
    <form className="settings-form" onSubmit={submit} aria-labelledby="password-title">
      <label>
        {t("settings.profile.currentPassword")}
        <input type="password" autoComplete="current-password" required value={current} onChange={(e) => setCurrent(e.target.value)} />
      </label>
      <NewPasswordField
        label={t("settings.profile.newPassword")}
        hint={t("settings.profile.passwordHint")}
        hintId="new-password-hint"
        value={password}
        onChange={setPassword}
      />
      <FormError error={change.error} />
      <div className="actions">
        <button type="submit" disabled={change.isPending}>
          {t("settings.profile.changePassword")}
        </button>
        {change.isPending && <Spinner label={t("settings.saving")} />}
        <span aria-live="polite">{done ? t("settings.profile.passwordChanged") : ""}</span>
      </div>
    </form>
  );
}
