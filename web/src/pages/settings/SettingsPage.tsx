import { useTranslation } from "react-i18next";
import { NavLink, Navigate, Route, Routes } from "react-router-dom";
import { AgentSettings } from "./AgentSettings";
import { BillingSettings } from "./BillingSettings";
import { CannedSettings } from "./CannedSettings";
import { InboxSettings } from "./InboxSettings";
import { LabelSettings } from "./LabelSettings";
import { ProfileSettings } from "./ProfileSettings";

/** The settings pages, one route each under `/settings/`, with their sub-navigation. */
const PAGES = [
  { path: "profile", name: "profile", element: <ProfileSettings /> },
  { path: "inboxes", name: "inboxes", element: <InboxSettings /> },
  { path: "agents", name: "agents", element: <AgentSettings /> },
  { path: "labels", name: "labels", element: <LabelSettings /> },
  { path: "canned-responses", name: "canned", element: <CannedSettings /> },
  { path: "billing", name: "billing", element: <BillingSettings /> },
] as const;

export default function SettingsPage() {
  const { t } = useTranslation();
  return (
    <main className="settings-page">
      <div className="settings-nav">
        <h1 id="settings-title">{t("settings.title")}</h1>
        <nav aria-labelledby="settings-title">
          <ul>
            {PAGES.map((page) => (
              <li key={page.path}>
                <NavLink to={`/settings/${page.path}`}>{t(`settings.nav.${page.name}`)}</NavLink>
              </li>
            ))}
          </ul>
        </nav>
      </div>
      <div className="settings-content">
        <Routes>
          <Route index element={<Navigate to="profile" replace />} />
          {PAGES.map((page) => (
            <Route key={page.path} path={page.path} element={page.element} />
          ))}
          <Route path="*" element={<Navigate to="/settings/profile" replace />} />
        </Routes>
      </div>
    </main>
  );
}
