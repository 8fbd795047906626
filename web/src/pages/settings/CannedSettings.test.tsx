import { screen } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { forget } from "../../auth/session";
import i18n from "../../i18n";
import { fakeApi, json, problem, renderAt, signIn } from "../../test/fakeApi";
import { CannedSettings } from "./CannedSettings";

const thanks = { id: "cr-1", short_code: "thanks", content: "お問い合わせありがとうございます。", created_at: 1, updated_at: 1 };
const refund = { id: "cr-2", short_code: "refund", content: "返品は 30 日以内に承ります。", created_at: 1, updated_at: 1 };

beforeEach(async () => {
  await i18n.changeLanguage("en");
});
afterEach(() => {
  forget();
  vi.unstubAllGlobals();
});

describe("CannedSettings", () => {
  it("creates a canned response and filters the list", async () => {
    const user = userEvent.setup();
    signIn("owner");
    let canned: unknown[] = [thanks];
    const { calls } = fakeApi({
      "GET /api/canned-responses": () => json(canned),
      "POST /api/canned-responses": () => {
        canned = [refund, thanks];
        return json(refund, 201);
      },
    });
    renderAt(<CannedSettings />);
    await user.type(screen.getByLabelText("Short code"), "refund");
    await user.type(screen.getByLabelText("Content"), "返品は 30 日以内に承ります。");
    await user.click(screen.getByRole("button", { name: "Create canned response" }));
    expect(await screen.findByText("/refund")).toBeInTheDocument();
    expect(calls.find((call) => call.method === "POST")?.body).toEqual({ short_code: "refund", content: "返品は 30 日以内に承ります。" });

    await user.type(screen.getByLabelText("Filter"), "返品");
    expect(screen.queryByText("/thanks")).not.toBeInTheDocument();
    expect(screen.getByText("/refund")).toBeInTheDocument();
    expect(screen.getByText("1 of 2 shown")).toBeInTheDocument();
  });

  it("says the plan has no canned responses, and offers no form the API would refuse", async () => {
    signIn("owner");
    fakeApi({ "GET /api/canned-responses": () => ({ status: 403, body: problem(403, "plan_feature_unavailable") }) });
    renderAt(<CannedSettings />);
    expect(await screen.findByRole("alert")).toHaveTextContent("Your plan does not include this.");
    expect(screen.queryByRole("button", { name: "Create canned response" })).not.toBeInTheDocument();
  });
});
