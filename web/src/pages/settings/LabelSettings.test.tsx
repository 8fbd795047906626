import { screen } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { fireEvent } from "@testing-library/react";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { forget } from "../../auth/session";
import i18n from "../../i18n";
import { fakeApi, json, problem, renderAt, signIn } from "../../test/fakeApi";
import { LabelSettings } from "./LabelSettings";

const refund = { id: "l-1", name: "返品", colour: "#336699", description: "Returns and refunds", created_at: 1 };

beforeEach(async () => {
  await i18n.changeLanguage("en");
});
afterEach(() => {
  forget();
  vi.unstubAllGlobals();
});

describe("LabelSettings", () => {
  it("creates a label with its colour and description", async () => {
    const user = userEvent.setup();
    signIn("owner");
    let labels: unknown[] = [];
    const { calls } = fakeApi({
      "GET /api/labels": () => json(labels),
      "POST /api/labels": () => {
        labels = [refund];
        return json(refund, 201);
      },
    });
    renderAt(<LabelSettings />);
    await user.type(screen.getByLabelText("Label name"), "返品");
    fireEvent.input(screen.getByLabelText("Colour"), { target: { value: "#336699" } });
    await user.type(screen.getByLabelText("Description"), "Returns and refunds");
    await user.click(screen.getByRole("button", { name: "Create label" }));
    expect(await screen.findByText("返品")).toBeInTheDocument();
    expect(calls.find((call) => call.method === "POST")?.body).toEqual({ name: "返品", colour: "#336699", description: "Returns and refunds" });
  });

  it("edits a label in the same form, and says so when the name is taken", async () => {
    const user = userEvent.setup();
    signIn("admin");
    const { calls } = fakeApi({
      "GET /api/labels": () => json([refund]),
      "PUT /api/labels/l-1": () => ({ status: 409, body: problem(409, "label_exists") }),
    });
    renderAt(<LabelSettings />);
    await user.click(await screen.findByRole("button", { name: "Edit: 返品" }));
    const name = screen.getByLabelText("Label name");
    expect(name).toHaveValue("返品");
    expect(name).toHaveFocus();
    await user.clear(name);
    await user.type(name, "交換");
    await user.click(screen.getByRole("button", { name: "Save changes" }));
    expect(await screen.findByRole("alert")).toHaveTextContent("A label with this name exists already.");
    expect(calls.find((call) => call.method === "PUT")?.body).toEqual({ name: "交換", colour: "#336699", description: "Returns and refunds" });
  });
});
