/**
 * The console's figures for docs/benchmarks.md — a measurement, not a test: nothing here fails on a time.
 * Run by `bench/console.sh` (which builds the release binary first):
 * - the first load's size: every byte the browser transfers to show the inbox, as compressed on the wire;
 * - first load and time to interactive of the inbox with 1,000 conversations (a fresh browser profile each
 *   run: nothing cached), the median of `RUNS`;
 * - the list update latency: a signed post from a new customer to its row in the open page, over `POSTS`.
 */
import { writeFileSync } from "node:fs";
import path from "node:path";
import { expect, it } from "vitest";
import { Desk, SHOTS, launchBrowser } from "./harness";

const CONVERSATIONS = Number(process.env["CONVERSATIONS"] ?? 1000);
const RUNS = Number(process.env["RUNS"] ?? 5);
const POSTS = Number(process.env["POSTS"] ?? 20);

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] ?? NaN;
const percentile = (values: number[], p: number) =>
  [...values].sort((a, b) => a - b)[Math.min(values.length - 1, Math.floor(values.length * p))] ?? NaN;

async function api(desk: Desk, route: string, body: unknown, token?: string): Promise<Record<string, unknown>> {
  const headers: Record<string, string> = { "content-type": "application/json" };
  if (token) headers["authorization"] = `Bearer ${token}`;
  const response = await fetch(`${desk.url}${route}`, { method: "POST", headers, body: JSON.stringify(body) });
  if (!response.ok) throw new Error(`${route} answered ${response.status}: ${await response.text()}`);
  return (await response.json()) as Record<string, unknown>;
}

it("measures the console", { timeout: 600_000 }, async () => {
  const desk = await Desk.start("monolith");
  const browser = await launchBrowser();
  try {
    const email = "bench@example.jp";
    const password = "correct horse battery";
    await api(desk, "/api/users/register", { email, password, name: "Bench", language: "en" });
    const session = await api(desk, "/api/users/login", { email, password });
    const inbox = (await api(desk, "/api/inboxes", { name: "Website", channel: "api" }, session["access_token"] as string)) as {
      identifier: string;
      secret: string;
    };
    const token = session["access_token"] as string;
    // A plan whose monthly conversations hold the load (the free plan's would refuse most of it).
    const account = (session["account"] as { id: string }).id;
    await api(desk, `/api/plan/register/${desk.planToken(account, "business")}`, {}, token);
    for (let start = 0; start < CONVERSATIONS; start += 50) {
      const answers = await Promise.all(
        Array.from({ length: Math.min(50, CONVERSATIONS - start) }, (_, i) =>
          desk.postAsCustomer(inbox, `customer-${start + i}`, `顧客 ${start + i}`, `お問い合わせ ${start + i}: 配送状況を教えてください`),
        ),
      );
      const refused = answers.find((answer) => answer.status !== 202);
      if (refused) throw new Error(`a post was answered ${refused.status}: ${await refused.text()}`);
    }
    // Every post is stored before the page is measured.
    const deadline = Date.now() + 120_000;
    for (;;) {
      if (Date.now() > deadline) throw new Error("the posts were not all stored within 2 minutes");
      const list = await fetch(`${desk.url}/api/conversations?status=all&limit=1`, { headers: { authorization: `Bearer ${token}` } });
      const counts = ((await list.json()) as { meta: { counts: { all: number } } }).meta.counts;
      if (counts.all >= CONVERSATIONS) break;
      await new Promise((resolve) => setTimeout(resolve, 200));
    }

    const loads: { bundle: number; api: number; load: number; rows: number; interactive: number; longTasks: number }[] = [];
    // Each run's fresh profile is signed in as a returning user is (a refresh token kept), the token the
    // run before it was left with (refresh tokens are single-use; logins are rate-limited).
    let refreshToken = (await api(desk, "/api/users/login", { email, password }))["refresh_token"] as string;
    for (let run = 0; run < RUNS; run += 1) {
      const context = await browser.newContext({ baseURL: desk.url, viewport: { width: 1280, height: 800 } });
      await context.addInitScript((token: string) => {
        localStorage.setItem("omnidesk.refresh_token", token);
        const w = window as unknown as { longTasks: number[]; rowsAt?: number };
        w.longTasks = [];
        // When the first conversation row is in the document (a locator's polling would see it late).
        new MutationObserver((_, observer) => {
          if (w.rowsAt === undefined && document.querySelector('[role="listitem"]')) {
            w.rowsAt = performance.now();
            observer.disconnect();
          }
        }).observe(document, { subtree: true, childList: true });
        new PerformanceObserver((list) => {
          for (const entry of list.getEntries()) w.longTasks.push(entry.startTime + entry.duration);
        }).observe({ type: "longtask", buffered: true });
      }, refreshToken);
      const page = await context.newPage();
      // The bundle (the document, scripts, styles) apart from the API's answers.
      const sizes: Promise<[boolean, number]>[] = [];
      page.on("requestfinished", (request) => {
        const bundle = ["document", "script", "stylesheet", "font", "image"].includes(request.resourceType());
        sizes.push(request.sizes().then((s) => [bundle, s.responseBodySize + s.responseHeadersSize]));
      });
      await page.goto("/");
      await page.getByRole("listitem").first().waitFor();
      const rowsAt = await page.evaluate(() => (window as unknown as { rowsAt: number }).rowsAt);
      // Interactive: the rows are shown and the main thread has been free of long tasks for half a second.
      await page.waitForTimeout(500);
      const figures = await page.evaluate((rows: number) => {
        const w = window as unknown as { longTasks: number[] };
        const load = performance.getEntriesByType("navigation")[0] as PerformanceNavigationTiming;
        const resources = performance
          .getEntriesByType("resource")
          .map((e) => e as PerformanceResourceTiming)
          .map((e) => `${e.name.replace(location.origin, "")} ${Math.round(e.startTime)}–${Math.round(e.responseEnd)} ms`);
        return { load: load.loadEventEnd, rows, resources, interactive: Math.max(rows, ...w.longTasks), longTasks: w.longTasks.length };
      }, rowsAt);
      const transferred = await Promise.all(sizes);
      const sum = (bundle: boolean) => transferred.filter(([b]) => b === bundle).reduce((total, [, n]) => total + n, 0);
      // PERF_TRACE=1: when each request of the first run started and ended.
      if (run === 0 && process.env["PERF_TRACE"]) console.log(figures.resources.join("\n"));
      loads.push({ bundle: sum(true), api: sum(false), load: figures.load, rows: figures.rows, interactive: figures.interactive, longTasks: figures.longTasks });
      if (run === 0) await page.screenshot({ path: path.join(SHOTS, "perf-inbox-1000.png") });
      refreshToken = await page.evaluate(() => localStorage.getItem("omnidesk.refresh_token") ?? "");
      await context.close();
    }

    // The list update latency: the page open on the inbox, a new customer's post, its row in the page.
    const context = await browser.newContext({ baseURL: desk.url, viewport: { width: 1280, height: 800 } });
    await context.addInitScript((token: string) => localStorage.setItem("omnidesk.refresh_token", token), refreshToken);
    const page = await context.newPage();
    await page.goto("/");
    await page.getByRole("listitem").first().waitFor();
    await page.waitForTimeout(2_000);
    const latencies: number[] = [];
    for (let post = 0; post < POSTS; post += 1) {
      const text = `latency probe ${post} ${Date.now()}`;
      const seen = page.evaluate(
        (wanted: string) =>
          new Promise<number>((resolve) => {
            const observer = new MutationObserver(() => {
              if (document.querySelector(".rows")?.textContent?.includes(wanted)) {
                observer.disconnect();
                resolve(Date.now());
              }
            });
            observer.observe(document.body, { subtree: true, childList: true, characterData: true });
          }),
        text,
      );
      await page.waitForTimeout(50);
      const sent = Date.now();
      const answer = await desk.postAsCustomer(inbox, `probe-${post}`, `Probe ${post}`, text);
      expect(answer.status).toBe(202);
      latencies.push((await seen) - sent);
      await page.waitForTimeout(300);
    }

    // Scrolling the whole list, top to bottom, as fast as the page loads it (pages of 50 rows are fetched
    // as the end comes near): how long each frame took meanwhile.
    const scroll = await page.evaluate(async (total: number) => {
      const rows = document.querySelector(".rows");
      if (!rows) throw new Error("no list");
      const frames: number[] = [];
      const started = performance.now();
      let last = started;
      while (performance.now() - started < 60_000) {
        rows.scrollTop += 1_500;
        await new Promise((resolve) => requestAnimationFrame(resolve));
        const now = performance.now();
        frames.push(now - last);
        last = now;
        const atEnd = () => rows.scrollTop + rows.clientHeight >= rows.scrollHeight - 1;
        if (atEnd()) {
          // At the bottom: done once nothing more comes within a second.
          await new Promise((resolve) => setTimeout(resolve, 1_000));
          if (atEnd()) break;
          last = performance.now();
        }
      }
      frames.sort((a, b) => a - b);
      const at = (p: number) => Math.round(frames[Math.min(frames.length - 1, Math.floor(frames.length * p))] ?? NaN);
      return {
        rows_scrolled: Math.round(rows.scrollHeight / 72),
        of: total,
        seconds: Math.round((performance.now() - started) / 100) / 10,
        frames: frames.length,
        frame_ms: { p50: at(0.5), p95: at(0.95), max: Math.round(frames[frames.length - 1] ?? NaN) },
        frames_over_50ms: frames.filter((f) => f > 50).length,
        rows_in_document: document.querySelectorAll('.rows [role="listitem"]').length,
      };
    }, CONVERSATIONS + POSTS);
    await context.close();

    const result = {
      conversations: CONVERSATIONS,
      runs: RUNS,
      first_load_bundle_bytes: median(loads.map((l) => l.bundle)),
      first_load_api_bytes: median(loads.map((l) => l.api)),
      load_ms: median(loads.map((l) => l.load)),
      rows_shown_ms: median(loads.map((l) => l.rows)),
      interactive_ms: median(loads.map((l) => l.interactive)),
      long_tasks: loads.map((l) => l.longTasks),
      interactive_ms_all: loads.map((l) => Math.round(l.interactive)),
      update_latency_ms: { p50: median(latencies), p95: percentile(latencies, 0.95), max: Math.max(...latencies) },
      scroll,
    };
    writeFileSync(path.join(SHOTS, "console-perf.json"), `${JSON.stringify(result, null, 2)}\n`);
    console.log(JSON.stringify(result, null, 2));
  } finally {
    await browser.close();
    await desk.dispose();
  }
});
