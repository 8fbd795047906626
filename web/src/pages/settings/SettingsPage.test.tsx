import { screen } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { Route, Routes } from "react-router-dom";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { forget } from "../../auth/session";
import i18n from "../../i18n";
import { fakeApi, json, renderAt, signIn } from "../../test/fakeApi";
import SettingsPage from "./SettingsPage";

function renderSettings(path: string) {
  return renderAt(
    <Routes>
      <Route path="/settings/*" element={<SettingsPage />} />
    </Routes>,
    path,
  );
}

beforeEach(async () => {
  await i18n.changeLanguage("en");
  signIn("owner");
});
afterEach(() => {
  forget();
  vi.unstubAllGlobals();
});

describe("SettingsPage", () => {
  it("opens the profile by default and moves between the settings with its sub-navigation", async () => {
    const user = userEvent.setup();
    fakeApi({ "GET /api/labels": () => json([]) });
    renderSettings("/settings");
    const nav = screen.getByRole("navigation", { name: "Settings" });
    for (const name of ["Profile", "Inboxes", "Agents", "Labels", "Canned responses", "Plan & billing"]) {
      expect(screen.getByRole("link", { name })).toBeInTheDocument();
    }
    expect(nav).toContainElement(screen.getByRole("link", { name: "Profile" }));
    expect(screen.getByRole("link", { name: "Profile" })).toHaveAttribute("aria-current", "page");
    expect(screen.getByRole("heading", { name: "Profile" })).toBeInTheDocument();

    await user.click(screen.getByRole("link", { name: "Labels" }));
    expect(await screen.findByRole("button", { name: "Create label" })).toBeInTheDocument();
    expect(screen.getByRole("link", { name: "Labels" })).toHaveAttribute("aria-current", "page");
  });

  it("has Japanese names for the sub-navigation", async () => {
    await i18n.changeLanguage("ja");
    renderSettings("/settings/profile");
    expect(screen.getByRole("link", { name: "プランと請求" })).toBeInTheDocument();
    expect(screen.getByRole("link", { name: "定型文" })).toBeInTheDocument();
  });
});
