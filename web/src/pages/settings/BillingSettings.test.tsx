import { screen, within } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { forget } from "../../auth/session";
import i18n from "../../i18n";
import { fakeApi, json, problem, renderAt, signIn } from "../../test/fakeApi";
import { BillingSettings } from "./BillingSettings";

const starter = {
  code: "starter",
  name: "Starter",
  price_jpy_per_month: 2980,
  agents: 3,
  inboxes: null,
  conversations_per_month: 500,
  features: ["api_channel", "web_widget"],
};
const pro = { ...starter, code: "pro", name: "Pro", price_jpy_per_month: 9800, agents: 10, conversations_per_month: null, features: ["api_channel", "web_widget", "canned_responses"] };
const free = { ...starter, code: "free", name: "Free", price_jpy_per_month: 0, agents: 1, inboxes: 1, conversations_per_month: 100 };

function routes(extra = {}) {
  return {
    "GET /api/plan": () => json({ plan: starter, since: Date.UTC(2025, 0, 10), usage: { conversations: 123 }, period: "2025-02" }),
    "GET /api/billing": () => json({ status: "active", plan: "starter", next_renewal_at: Date.UTC(2025, 2, 10), last_payments: [] }),
    "GET /api/billing/payments": () =>
      json([
        { id: "p-1", provider_invoice_id: "in_1", status: "paid", amount: 2980, currency: "jpy", plan_code: "starter", period_end: Date.UTC(2025, 2, 10), created_at: Date.UTC(2025, 1, 10) },
      ]),
    "GET /api/plans": () => json([free, starter, pro]),
    "GET /api/users": () => json([{ id: "u-1" }, { id: "u-2" }]),
    "GET /api/users/invitations": () => json([{ id: "inv-1" }]),
    "GET /api/inboxes": () => json([{ id: "in-1" }, { id: "in-2" }]),
    ...extra,
  };
}

beforeEach(async () => {
  await i18n.changeLanguage("en");
});
afterEach(() => {
  forget();
  vi.unstubAllGlobals();
});

describe("BillingSettings", () => {
  it("draws usage against the plan's limits from the figures the API answers", async () => {
    signIn("owner");
    fakeApi(routes());
    renderAt(<BillingSettings />);

    const conversations = await screen.findByRole("meter", { name: "Conversations this month (2025-02)" });
    expect(conversations).toHaveAttribute("value", "123");
    expect(conversations).toHaveAttribute("max", "500");
    expect(screen.getByText("123 of 500 used")).toBeInTheDocument();

    // Seats are members plus pending invitations: 2 + 1 of 3, so the limit is reached.
    const seats = await screen.findByRole("meter", { name: "Seats" });
    expect(seats).toHaveAttribute("value", "3");
    expect(seats).toHaveAttribute("max", "3");
    expect(screen.getByText(/3 of 3 used — the limit is reached/)).toBeInTheDocument();

    // No limit, no bar: the figure in words.
    expect(await screen.findByText("2 used; no limit on this plan")).toBeInTheDocument();
    expect(screen.queryByRole("meter", { name: "Inboxes" })).not.toBeInTheDocument();
  });

  it("shows the plan, the billing status and the payments as answered", async () => {
    signIn("owner");
    fakeApi(routes());
    renderAt(<BillingSettings />);
    expect(await screen.findByText("Active")).toBeInTheDocument();
    const payments = await screen.findByRole("table");
    const row = within(payments).getAllByRole("row")[1];
    if (!row) throw new Error("no payment row");
    expect(row).toHaveTextContent("starter");
    expect(row).toHaveTextContent("¥2,980");
    expect(row).toHaveTextContent("Paid");
  });

  it("offers only dearer plans to upgrade to, and starts a checkout for the one chosen", async () => {
    const user = userEvent.setup();
    signIn("admin");
    const { calls } = fakeApi(
      routes({ "POST /api/billing/checkout": () => ({ status: 502, body: problem(502, "payment_provider_error") }) }),
    );
    renderAt(<BillingSettings />);
    const upgrade = await screen.findByRole("button", { name: "Upgrade to Pro" });
    expect(screen.queryByRole("button", { name: "Upgrade to Free" })).not.toBeInTheDocument();
    expect(screen.getByText("Your current plan")).toBeInTheDocument();
    await user.click(upgrade);
    expect(await screen.findByText(/The payment provider did not answer as expected/)).toBeInTheDocument();
    expect(calls.find((call) => call.method === "POST")?.body).toEqual({ plan: "pro" });
  });

  it("redeems a plan token and shows the plan it answers", async () => {
    const user = userEvent.setup();
    signIn("owner");
    const { calls } = fakeApi(
      routes({
        "POST /api/plan/register/pt_abc": () => json({ plan: pro, since: Date.UTC(2025, 1, 1), usage: { conversations: 123 }, period: "2025-02" }),
      }),
    );
    renderAt(<BillingSettings />);
    await user.type(await screen.findByLabelText("Plan token"), "pt_abc");
    await user.click(screen.getByRole("button", { name: "Redeem" }));
    expect(await screen.findByText("Your account is now on the Pro plan.")).toBeInTheDocument();
    expect(calls.some((call) => call.method === "POST" && call.path === "/api/plan/register/pt_abc")).toBe(true);
    expect(await screen.findByText("123 used; no limit on this plan")).toBeInTheDocument();
  });

  it("shows agents the plan without the buttons they would be refused", async () => {
    signIn("agent");
    const { calls } = fakeApi(routes());
    renderAt(<BillingSettings />);
    expect(await screen.findByRole("meter", { name: "Conversations this month (2025-02)" })).toBeInTheDocument();
    expect(await screen.findByText("Pro")).toBeInTheDocument();
    expect(screen.queryByRole("button", { name: /Upgrade/ })).not.toBeInTheDocument();
    expect(screen.queryByLabelText("Plan token")).not.toBeInTheDocument();
    expect(calls.some((call) => call.path === "/api/users/invitations")).toBe(false);
  });
});
