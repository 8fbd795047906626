/**
 * The agent console in a real browser against the real release binary, as a support team uses it: in the
 * monolith and in microservices behind the gateway. `OMNIDESK_E2E_TOPOLOGIES` (comma-separated) chooses
 * the topologies; both by default. Each step saves a screenshot under target/e2e/.
 */
import type { Browser, Page } from "playwright-core";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { Desk, type Topology, WatchedPage, launchBrowser } from "./harness";

const TOPOLOGIES = (process.env["OMNIDESK_E2E_TOPOLOGIES"] ?? "monolith,microservices").split(",") as Topology[];
const PASSWORD = "correct horse battery";

/** Until `probe` holds, polling as a person would wait for the page. */
async function until(probe: () => Promise<boolean>, what: string, timeout = 15_000): Promise<void> {
  const deadline = Date.now() + timeout;
  while (!(await probe())) {
    if (Date.now() > deadline) throw new Error(`waited ${timeout} ms for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** The conversation row showing `text` in the list (the list pane, not the thread). */
const row = (page: Page, text: string) => page.getByRole("list", { name: "Conversations" }).getByRole("listitem").filter({ hasText: text });

describe.each(TOPOLOGIES)("the console, %s", (topology) => {
  let desk: Desk;
  let browser: Browser;
  let owner: WatchedPage;
  let agent: WatchedPage | undefined;
  const inboxes: Record<string, { identifier: string; secret: string }> = {};
  const ownerEmail = `aiko-${topology}@example.jp`;

  beforeAll(async () => {
    desk = await Desk.start(topology);
    browser = await launchBrowser();
    owner = await WatchedPage.open(browser, desk.url, `${topology}-owner`);
  });

  // Each step builds on the one before: after a failure the rest would only fail for it.
  let failed = false;
  beforeEach((context) => {
    if (failed) context.skip();
  });
  afterEach(async (context) => {
    if (context.task.result?.state !== "fail") return;
    failed = true;
    await owner.shot(`failed-${context.task.name.replaceAll(/\W+/g, "-")}`).catch(() => undefined);
  });

  afterAll(async () => {
    await owner?.close();
    await agent?.close();
    await browser?.close();
    await desk?.dispose();
  });

  it("signs up, moves to Pro with a plan token, and sets up inboxes, a label and a canned response", async () => {
    const { page } = owner;
    await page.goto("/signup");
    await page.getByLabel("Your name").fill("Aiko");
    await page.getByLabel("Workspace name").fill("Aiko's shop");
    await page.getByLabel("E-mail").fill(ownerEmail);
    await page.getByLabel("Password").fill(PASSWORD);
    await page.getByRole("button", { name: "Sign up" }).click();
    await page.getByRole("tab", { name: /All/ }).waitFor();
    await owner.shot("01-signed-up");

    // The free plan has one inbox and no canned responses: the owner redeems a token for Pro (minted by
    // the operator's CLI), under Plan & billing.
    await page.getByRole("link", { name: "Settings" }).click();
    await page.getByRole("link", { name: "Plan & billing" }).click();
    await page.locator(".plan-name").filter({ hasText: "Free" }).waitFor();
    const login = await fetch(`${desk.url}/api/users/login`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ email: ownerEmail, password: PASSWORD }),
    });
    const account = ((await login.json()) as { account: { id: string } }).account.id;
    await page.getByLabel("Plan token", { exact: true }).fill(desk.planToken(account, "pro"));
    await page.getByRole("button", { name: "Redeem" }).click();
    await page.getByText("Your account is now on the Pro plan.").waitFor();
    await page.locator(".plan-name").filter({ hasText: "Pro" }).waitFor();

    await page.getByRole("link", { name: "Inboxes" }).click();
    for (const name of ["Website", "Shop"]) {
      await page.getByLabel("Inbox name").fill(name);
      await page.getByLabel("Channel").selectOption("api");
      await page.getByRole("button", { name: "Create inbox" }).click();
      const identifier = (await page.getByLabel("Identifier").textContent())?.trim() ?? "";
      const secret = (await page.getByLabel("Secret").textContent())?.trim() ?? "";
      expect(identifier).toMatch(/^inb_/);
      expect(secret).toMatch(/^chs_/);
      expect(await page.getByLabel("Endpoint").textContent()).toContain(`/public/api/v1/inboxes/${identifier}/messages`);
      inboxes[name] = { identifier, secret };
      await owner.shot(`02-inbox-${name}`);
    }

    await page.getByRole("link", { name: "Labels" }).click();
    await page.getByLabel("Label name").fill("返品");
    await page.getByLabel("Description").fill("Returns");
    await page.getByRole("button", { name: "Create label" }).click();
    await page.getByText("返品").first().waitFor();

    await page.getByRole("link", { name: "Canned responses" }).click();
    await page.getByLabel("Short code").fill("thanks");
    await page.getByLabel("Content").fill("お問い合わせありがとうございます。");
    await page.getByRole("button", { name: "Create canned response" }).click();
    await page.getByText("お問い合わせありがとうございます。").first().waitFor();
    await owner.shot("03-settings");
  });

  it("shows a customer's message live, without a reload", async () => {
    const { page } = owner;
    await page.getByRole("link", { name: "Inbox", exact: true }).click();
    await page.getByRole("tab", { name: /All/ }).waitFor();
    // Anything that reloaded the page would lose this.
    await page.evaluate(() => Object.assign(window, { e2eMarker: "still here" }));
    const postedAt = Date.now();
    const posted = await desk.postAsCustomer(inboxes["Website"]!, "customer-42", "山田 花子", "返品したいです。注文番号は1001です。");
    expect(posted.status).toBe(202);
    await row(page, "返品したいです").waitFor();
    const shownAt = Date.now();
    expect(await page.evaluate(() => (window as unknown as { e2eMarker?: string }).e2eMarker)).toBe("still here");
    // It came with the feed's event, not with a fetch of the list.
    const fetched = owner.requests.filter((r) => r.at >= postedAt && r.at <= shownAt && r.url.includes("/api/conversations?"));
    expect(fetched).toEqual([]);
    await owner.shot("04-live");
  });

  it("replies, adds a note, labels, assigns, snoozes and resolves", async () => {
    const { page } = owner;
    const pane = page.getByRole("region", { name: "Conversation", exact: true });
    await row(page, "返品したいです").click();
    await pane.getByText("返品したいです。注文番号は1001です。").waitFor();

    const reply = page.getByLabel("Reply");
    await reply.fill("/than");
    await page.getByRole("option", { name: /thanks/ }).click();
    await expect.poll(() => reply.inputValue()).toContain("お問い合わせありがとうございます。");
    await reply.fill("承知しました。ご注文を確認します。");
    await page.getByRole("button", { name: "Send" }).click();
    await pane.getByText("承知しました。ご注文を確認します。").waitFor();

    await page.keyboard.press("Escape");
    await page.locator("body").press("n");
    const note = page.getByLabel("Private note");
    await note.fill("倉庫に在庫を確認中");
    await page.getByRole("button", { name: "Send" }).click();
    await pane.getByText("倉庫に在庫を確認中").waitFor();

    await pane.getByLabel("Labels").getByRole("checkbox", { name: "返品" }).check();
    await pane.getByLabel("Assignee").selectOption({ label: "Aiko" });
    await pane.getByLabel("Priority").selectOption("high");
    await owner.shot("05-worked");

    const later = new Date(Date.now() + 2 * 24 * 3600 * 1000);
    const local = new Date(later.getTime() - later.getTimezoneOffset() * 60_000).toISOString().slice(0, 16);
    await pane.getByLabel("Status").selectOption("snoozed");
    await pane.getByLabel("Snooze until").fill(local);
    await page.getByRole("button", { name: "Snooze" }).click();
    await expect.poll(() => pane.getByLabel("Status").inputValue()).toBe("snoozed");
    await owner.shot("06-snoozed");

    await page.getByRole("button", { name: "Resolve" }).click();
    await expect.poll(() => pane.getByLabel("Status").inputValue()).toBe("resolved");
    await owner.shot("07-resolved");
  });

  it("finds the conversation by a Japanese word", async () => {
    const { page } = owner;
    await page.getByRole("link", { name: "Search" }).click();
    await page.getByLabel("Search").fill("注文番号");
    await page.keyboard.press("Enter");
    await page.getByRole("link", { name: /注文番号/ }).first().waitFor();
    await owner.shot("08-search");
  });

  it("invites an agent, who sees only the inboxes they are a member of", async () => {
    const { page } = owner;
    await desk.postAsCustomer(inboxes["Shop"]!, "customer-7", "佐藤", "在庫はありますか");
    await page.getByRole("link", { name: "Settings" }).click();
    await page.getByRole("link", { name: "Agents" }).click();
    await page.getByLabel("E-mail").fill(`kenji-${topology}@example.jp`);
    await page.getByLabel("Name").fill("Kenji");
    await page.getByLabel("Role").selectOption("agent");
    await page.getByRole("button", { name: "Invite" }).click();
    const link = (await page.getByLabel("Invitation link").textContent())?.trim() ?? "";
    expect(link).toMatch(/\/invitations\/accept#.+/);
    await owner.shot("09-invited");

    agent = await WatchedPage.open(browser, desk.url, `${topology}-agent`);
    await agent.page.goto(link);
    await agent.page.getByLabel("Your name").fill("Kenji");
    await agent.page.getByLabel("Password").fill(PASSWORD);
    await agent.page.getByRole("button", { name: "Join" }).click();
    await agent.page.getByRole("tab", { name: /All/ }).waitFor();
    // Joining signed Kenji in; he logs out, and in again with his new password.
    await agent.page.getByRole("button", { name: "Log out" }).click();
    await agent.page.getByLabel("E-mail").fill(`kenji-${topology}@example.jp`);
    await agent.page.getByLabel("Password").fill(PASSWORD);
    await agent.page.getByRole("button", { name: "Log in" }).click();
    await agent.page.getByRole("tab", { name: /All/ }).waitFor();

    // The owner makes Kenji a member of the Website inbox only.
    await page.getByRole("link", { name: "Inboxes" }).click();
    await page.reload();
    const website = page.getByRole("group", { name: /Website/ });
    await website.getByRole("checkbox", { name: /Kenji/ }).check();
    await website.getByRole("button", { name: "Save members" }).click();
    await website.getByRole("status").waitFor();

    await agent.page.reload();
    await agent.page.getByLabel("Status").first().selectOption("all");
    // By the contacts' names: the rows preview the latest message, the owner's note by now.
    await row(agent.page, "山田 花子").waitFor();
    expect(await row(agent.page, "佐藤").count()).toBe(0);
    await agent.shot("10-agent-inbox");
  });

  it("opens plan & billing with the plan and its usage", async () => {
    const { page } = owner;
    await page.getByRole("link", { name: "Plan & billing" }).click();
    await page.locator(".plan-name").filter({ hasText: "Pro" }).waitFor();
    await expect.poll(() => page.getByRole("meter", { name: "Inboxes" }).getAttribute("value")).toBe("2");
    await owner.shot("11-billing");
  });

  it("reconnects after a restart and shows what was posted meanwhile", async () => {
    const { page } = owner;
    await page.getByRole("link", { name: "Inbox", exact: true }).click();
    await page.getByLabel("Status").first().selectOption("all");
    await row(page, "山田 花子").waitFor();
    const socketsBefore = owner.sockets.length;
    if (topology === "microservices") {
      // The inbox service (the realtime feed's) dies; the gateway and input keep answering, so the
      // customer's post is accepted while it is down and delivered once the supervisor restarts it. Its
      // routes answer 503 meanwhile: failures are expected until the row is back.
      await owner.tolerate(async () => {
        process.kill(desk.pidOf("inbox"), "SIGKILL");
        await page.getByRole("status").filter({ hasText: "Offline" }).waitFor();
        await owner.shot("12-offline");
        const accepted = async () => (await desk.postAsCustomer(inboxes["Website"]!, "customer-99", "鈴木", "停止中に届いたメッセージ")).status === 202;
        await until(accepted, "the gateway to accept the post");
        await row(page, "停止中に届いたメッセージ").waitFor({ timeout: 30_000 });
      });
    } else {
      // The whole monolith stops (failures are expected while it is down) and starts again; the post is
      // made before the page has reconnected, so its reconnection with the cursor must bring it.
      await owner.tolerate(async () => {
        await desk.stop();
        await page.getByRole("status").filter({ hasText: "Offline" }).waitFor();
        await owner.shot("12-offline");
        await desk.restart();
      });
      expect((await desk.postAsCustomer(inboxes["Website"]!, "customer-99", "鈴木", "停止中に届いたメッセージ")).status).toBe(202);
      await row(page, "停止中に届いたメッセージ").waitFor({ timeout: 30_000 });
    }
    await until(async () => (await page.getByRole("status").filter({ hasText: "Offline" }).count()) === 0, "the banner to go");
    // The page reconnected with the last seq it had seen.
    expect(owner.sockets.slice(socketsBefore).some((url) => /[?&]cursor=\d+/.test(url))).toBe(true);
    await owner.shot("13-reconnected");
  });

  it("switches the language to Japanese", async () => {
    const { page } = owner;
    await page.getByRole("banner").getByLabel("Language").selectOption("ja");
    await page.getByRole("link", { name: "受信箱" }).waitFor();
    await page.getByRole("tab", { name: /すべて/ }).waitFor();
    await owner.shot("14-japanese");
  });

  it("had no console error and no failed request", () => {
    expect(owner.problems).toEqual([]);
    expect(agent?.problems ?? []).toEqual([]);
  });
});
