import { useMutation } from "@tanstack/react-query";
import { useTranslation } from "react-i18next";
import { NavLink, Outlet, useNavigate } from "react-router-dom";
import { api } from "../api/client";
import { forget, refreshToken } from "../auth/session";
import { useSession } from "../auth/useSession";
import { LanguagePicker } from "../components/LanguagePicker";
import { useRealtime } from "../realtime/useRealtime";

/** The signed-in frame: navigation, who is signed in, the language, logging out. */
export function Shell() {
  const { t } = useTranslation();
  const session = useSession();
  const navigate = useNavigate();
  const connection = useRealtime(session?.user.id);
  const logout = useMutation({
    mutationFn: async () => {
      const refresh_token = refreshToken();
      // Signing out here must work even when the server cannot be told (it then expires the session).
      if (refresh_token !== null) await api.POST("/api/users/logout", { body: { refresh_token } }).catch(() => null);
    },
    onSettled: () => {
      forget();
      void navigate("/login", { replace: true });
    },
  });
  return (
    <div className="shell">
      <header className="topbar">
        <span className="brand">{t("app.name")}</span>
        <nav aria-label={t("app.name")}>
          <NavLink to="/" end>
            {t("nav.inbox")}
          </NavLink>
          <NavLink to="/search">{t("nav.search")}</NavLink>
          <NavLink to="/settings">{t("nav.settings")}</NavLink>
        </nav>
        <span className="spacer" />
        <span className="who">
          {session?.user.name} · {session?.account.name}
        </span>
        <LanguagePicker />
        <button type="button" onClick={() => logout.mutate()} disabled={logout.isPending}>
          {t("auth.logout")}
        </button>
      </header>
      {connection === "offline" && (
        <p className="offline-banner" role="status">
          {t("app.offline")}
        </p>
      )}
      <Outlet />
    </div>
  );
}
