/**
 * What the browser tests stand on: a real OmniDesk (the release binary, as a monolith or as microservices
 * behind the gateway) on a data directory of its own, Debian's Chromium driven by playwright-core, and a
 * page that records every console error and failed request so that a test can insist there were none.
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { createHmac, randomUUID } from "node:crypto";
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { createInterface } from "node:readline";
import { type Browser, type BrowserContext, type Page, chromium } from "playwright-core";

export type Topology = "monolith" | "microservices";

const ROOT = path.resolve(import.meta.dirname, "../..");
/** The binary under test: the release build unless `OMNIDESK_BIN` names another. */
const BIN = process.env["OMNIDESK_BIN"] ?? path.join(ROOT, "target/release/omnidesk");
/** Screenshots, one per step, for a person to look at after a run. */
export const SHOTS = path.join(ROOT, "target/e2e");

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      server.close(() => (typeof address === "object" && address ? resolve(address.port) : reject(new Error("no port"))));
    });
  });
}

/** One OmniDesk deployment on this machine, started and restarted as an operator would. */
export class Desk {
  private child: ChildProcess | null = null;
  readonly url: string;
  private readonly exchange = `omnidesk-e2e.${randomUUID().replaceAll("-", "")}.events`;

  private constructor(
    readonly topology: Topology,
    readonly dataDir: string,
    private readonly port: number,
  ) {
    this.url = `http://127.0.0.1:${port}`;
  }

  static async start(topology: Topology): Promise<Desk> {
    const desk = new Desk(topology, mkdtempSync(path.join(tmpdir(), `omnidesk-e2e-${topology}-`)), await freePort());
    await desk.launch();
    return desk;
  }

  private async launch(): Promise<void> {
    const command = this.topology === "monolith" ? ["serve"] : ["up", "--topology", "microservices"];
    // None of the caller's OMNIDESK_* variables (this harness's own among them): they would be read as
    // configuration. The deployment is configured here, and only here.
    const inherited = Object.entries(process.env).filter(([key]) => !key.startsWith("OMNIDESK_") && key !== "DATABASE_URL");
    const env: NodeJS.ProcessEnv = {
      ...Object.fromEntries(inherited),
      OMNIDESK_LOG: "warn",
      OMNIDESK_PARENT_PID: String(process.pid),
      OMNIDESK_RABBITMQ__EXCHANGE: this.exchange,
    };
    if (this.topology === "microservices") {
      Object.assign(env, { RABBIT_MQ_HOST: "127.0.0.1", RABBIT_MQ_USER: "guest", RABBIT_MQ_PASSWORD: "guest" });
    }
    const child = spawn(BIN, [...command, "--listen", `127.0.0.1:${this.port}`, "--data-dir", this.dataDir], {
      cwd: this.dataDir,
      env,
      stdio: ["ignore", "pipe", "inherit"],
    });
    this.child = child;
    const lines = createInterface({ input: child.stdout });
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${BIN} printed no ready line in 60 s`)), 60_000);
      child.once("exit", (code) => reject(new Error(`${BIN} exited (${code}) before it was ready`)));
      lines.on("line", (line) => {
        if (line.startsWith("OmniDesk is ready at ")) {
          clearTimeout(timer);
          resolve();
        }
      });
    });
  }

  /** Stops every process of the deployment (SIGTERM, as Ctrl-C would) and waits for it to be gone. */
  async stop(): Promise<void> {
    const child = this.child;
    this.child = null;
    if (!child || child.exitCode !== null) return;
    const exited = new Promise((resolve) => child.once("exit", resolve));
    child.kill("SIGTERM");
    await exited;
  }

  /** The same deployment again, on the same data and address. */
  async restart(): Promise<void> {
    await this.stop();
    await this.launch();
  }

  /** `omnidesk plan-token`: a single-use token moving `account` to `plan`, as an operator mints one. */
  planToken(account: string, plan: string): string {
    return execFileSync(BIN, ["plan-token", "--account", account, "--plan", plan, "--data-dir", this.dataDir], {
      encoding: "utf8",
      env: { PATH: process.env["PATH"], OMNIDESK_LOG: "warn" },
    }).trim();
  }

  /** The pid of the process hosting `service` (microservices: from the supervisor's state file). */
  pidOf(service: string): number {
    const state = JSON.parse(readFileSync(path.join(this.dataDir, "run/up.json"), "utf8")) as {
      groups: { services: string[]; pid: number }[];
    };
    const group = state.groups.find((g) => g.services.includes(service));
    if (!group) throw new Error(`no process hosts ${service}`);
    return group.pid;
  }

  async dispose(): Promise<void> {
    await this.stop();
    rmSync(this.dataDir, { recursive: true, force: true });
    if (this.topology !== "microservices") return;
    // Its queues would otherwise stay on the broker (they are durable).
    try {
      const queues = execFileSync("rabbitmqctl", ["-q", "list_queues", "name"], { encoding: "utf8" });
      for (const queue of queues.split("\n").filter((q) => q.startsWith(`${this.exchange}.`))) {
        execFileSync("rabbitmqctl", ["-q", "delete_queue", queue]);
      }
    } catch {
      // A broker that is gone has no queues to leave behind.
    }
  }

  /** A customer's system posting to an API inbox, signed with the inbox's secret as the README shows. */
  async postAsCustomer(inbox: { identifier: string; secret: string }, sourceId: string, name: string, content: string): Promise<Response> {
    const body = JSON.stringify({ contact: { source_id: sourceId, name }, content });
    const ts = Math.floor(Date.now() / 1000);
    const signature = createHmac("sha256", inbox.secret).update(`${ts}.${body}`).digest("hex");
    return fetch(`${this.url}/public/api/v1/inboxes/${inbox.identifier}/messages`, {
      method: "POST",
      headers: {
        "content-type": "application/json",
        "idempotency-key": randomUUID(),
        "x-omnidesk-signature": `t=${ts},v1=${signature}`,
      },
      body,
    });
  }
}

/** Chromium from Debian's package (`CHROMIUM` to use another build), headless, with a profile of its own. */
export async function launchBrowser(): Promise<Browser> {
  return chromium.launch({
    executablePath: process.env["CHROMIUM"] ?? "/usr/bin/chromium",
    headless: true,
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
}

/**
 * A page that records what went wrong in it: console errors, uncaught exceptions, failed requests and
 * answers of 400 or more. `tolerate` marks the stretch of a test where the server is down on purpose.
 */
export class WatchedPage {
  readonly problems: string[] = [];
  /** Every request the page made, in order: when (Date.now()) and what. */
  readonly requests: { at: number; method: string; url: string }[] = [];
  /** The realtime sockets the page opened, in order. */
  readonly sockets: string[] = [];
  private tolerating = false;

  private constructor(
    readonly context: BrowserContext,
    readonly page: Page,
    private readonly name: string,
  ) {
    page.on("console", (message) => {
      if (message.type() === "error") this.record(`console error: ${message.text()}`);
    });
    page.on("pageerror", (error) => this.record(`uncaught: ${error.message}`));
    page.on("request", (request) => this.requests.push({ at: Date.now(), method: request.method(), url: request.url() }));
    page.on("websocket", (socket) => this.sockets.push(socket.url()));
    page.on("requestfailed", (request) => {
      const reason = request.failure()?.errorText ?? "";
      // Aborted is not failed: a request the page gave up on itself (a reload, a cancelled query).
      if (reason !== "net::ERR_ABORTED") this.record(`request failed: ${request.method()} ${request.url()} ${reason}`);
    });
    page.on("response", (response) => {
      if (response.status() >= 400) this.record(`answer ${response.status()}: ${response.request().method()} ${response.url()}`);
    });
  }

  static async open(browser: Browser, baseURL: string, name: string, locale = "en-US"): Promise<WatchedPage> {
    const context = await browser.newContext({ baseURL, locale, viewport: { width: 1280, height: 800 } });
    return new WatchedPage(context, await context.newPage(), name);
  }

  private record(problem: string): void {
    if (!this.tolerating) this.problems.push(problem);
  }

  /** Runs `during` with failures expected (the server is being stopped and started). */
  async tolerate<T>(during: () => Promise<T>): Promise<T> {
    this.tolerating = true;
    try {
      return await during();
    } finally {
      this.tolerating = false;
    }
  }

  async shot(step: string): Promise<void> {
    mkdirSync(SHOTS, { recursive: true });
    await this.page.screenshot({ path: path.join(SHOTS, `${this.name}-${step}.png`), fullPage: true });
  }

  async close(): Promise<void> {
    await this.context.close();
  }
}
