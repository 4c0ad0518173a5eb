import { existsSync } from "node:fs";
import Database from "better-sqlite3";
import { chromium, type Browser, type BrowserContext, type Page } from "playwright-core";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { RolloutService } from "../../gen/rollgate/v1/rollout_service_pb.js";
import { runCli } from "../cli/run-cli.js";
import { grpcJsClient, unary } from "../helpers/grpc-js.js";
import { startTestServer, TEST_TOKENS, type TestServer } from "../helpers/servers.js";

/**
 * The dashboard (/ui/) in a real browser: Debian's chromium driven by playwright-core, against a
 * real server on a real port. Every page is watched for console errors and for any request that
 * would leave the server.
 */

/**
 * The browser globals the page callbacks below use, as they see them: this file is type-checked
 * without the DOM library (which would change fetch's types for every other test).
 */
interface PageElement {
  getAttribute(name: string): string | null;
  getBoundingClientRect(): { left: number; right: number; height: number };
}
declare const document: { querySelector(selector: string): PageElement | null; documentElement: { scrollWidth: number } };
declare const window: { innerWidth: number; marker?: number };
declare const sessionStorage: { getItem(key: string): string | null };
declare function getComputedStyle(el: unknown, pseudo?: string): { display: string; content: string };

const CHROMIUM = "/usr/bin/chromium";
const haveChromium = existsSync(CHROMIUM);
if (!haveChromium) {
  console.warn(`dashboard browser tests skipped: ${CHROMIUM} is missing (Debian: apt-get install chromium; .ci/run installs it)`);
}

const LAUNCH_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--no-first-run"];

let browser: Browser;
let server: TestServer;
const contexts: BrowserContext[] = [];

/** What a page did: console errors, uncaught exceptions, every request it made. */
interface Watched {
  readonly page: Page;
  readonly errors: string[];
  readonly requests: { url: string; authorization: string | undefined }[];
  /** Console errors Chrome prints for an API call the server refused (a 4xx the page shows). */
  readonly refusals: string[];
  /** Console errors Chrome prints for an API call that found no server (during a restart). */
  readonly dropped: string[];
  /** What the test expects besides nothing: refusals, dropped calls. */
  readonly allow: Set<"refusals" | "dropped">;
}

const watchedPages: { watched: Watched; origin: string }[] = [];

/** Opens a page in a fresh context (its own sessionStorage) and records what it does. */
async function open(origin: string, path: string, viewport = { width: 1280, height: 800 }, mobile = false): Promise<Watched> {
  const context = await browser.newContext({ viewport, ...(mobile ? { isMobile: true, hasTouch: true, deviceScaleFactor: 2 } : {}) });
  contexts.push(context);
  const page = await context.newPage();
  // Fail within the test's own timeout, saying what was awaited.
  page.setDefaultTimeout(10_000);
  const watched: Watched = { page, errors: [], requests: [], refusals: [], dropped: [], allow: new Set() };
  page.on("console", (m) => {
    if (m.type() !== "error") return;
    const text = `${m.text()} (${m.location().url})`;
    const isApi = /\/rollgate\.v1\./.test(m.location().url);
    // Chrome logs every failed fetch, also those the page expects and shows (a refusal, a restart).
    if (isApi && /^Failed to load resource: the server responded with a status of 4\d\d/.test(m.text())) watched.refusals.push(text);
    else if (isApi && /^Failed to load resource: net::ERR_/.test(m.text())) watched.dropped.push(text);
    else watched.errors.push(text);
  });
  page.on("pageerror", (e) => watched.errors.push(`uncaught: ${e.message}`));
  page.on("request", (r) => watched.requests.push({ url: r.url(), authorization: r.headers()["authorization"] }));
  watchedPages.push({ watched, origin });
  await page.goto(`${origin}${path}`);
  return watched;
}

async function api<T = Record<string, unknown>>(s: TestServer, method: string, body: unknown, token?: string): Promise<T> {
  const res = await fetch(`${s.url}/rollgate.v1.${method}`, {
    method: "POST",
    headers: { "content-type": "application/json", ...(token === undefined ? {} : { authorization: `Bearer ${token}` }) },
    body: JSON.stringify(body),
  });
  const json = (await res.json()) as T;
  if (!res.ok) throw new Error(`${method}: ${JSON.stringify(json)}`);
  return json;
}

const gates = [
  { name: "errors", minSamples: "50", errorRate: { max: 0.05 } },
  { name: "p99", minSamples: "50", latency: { quantile: 0.99, maxMs: 300 } },
];
const analysis = { interval: "1s", window: "60s", gracePeriod: "1s" };

async function create(s: TestServer, name: string, token?: string): Promise<void> {
  await api(s, "RolloutService/CreateRollout", { rollout: { name, stableVersion: "v1", canaryVersion: "v2", gates, analysis }, reason: `create ${name}` }, token);
}

async function traffic(s: TestServer, name: string, token?: string): Promise<void> {
  const outcomes = [];
  for (let i = 0; i < 200; i++) outcomes.push({ variant: i % 2 ? "VARIANT_CANARY" : "VARIANT_STABLE", success: i % 100 >= 2, latencyMs: 40 + (i % 60) });
  await api(s, "DecisionService/RecordOutcome", { rollout: name, outcomes }, token);
}

/** Fills the open action dialog's reason and submits it. */
async function submitAction(page: Page, reason: string): Promise<void> {
  await page.fill("#action-reason", reason);
  await page.click("#action-submit");
}

/** Returns the actor and the reason an audit-log row of the page shows for the latest event of a type. */
async function eventCells(page: Page, type: string): Promise<string[]> {
  return page.$eval(`tr[data-type=${type}]`, (tr) => [tr.querySelector(".actor")?.textContent ?? "", tr.querySelector(".reason > div")?.textContent ?? ""]);
}

interface EventJson {
  seq: string;
  type: string;
  actor?: string;
  reason?: string;
}

async function events(s: TestServer, name: string): Promise<EventJson[]> {
  return (await api<{ events?: EventJson[] }>(s, "RolloutService/ListEvents", { name })).events ?? [];
}

/** After each test: no console error, no request to another origin, nothing refused or dropped unless expected. */
async function checkPages(): Promise<void> {
  for (const { watched, origin } of watchedPages.splice(0)) {
    expect(watched.errors, "console errors").toEqual([]);
    if (!watched.allow.has("refusals")) expect(watched.refusals, "refused API calls").toEqual([]);
    if (!watched.allow.has("dropped")) expect(watched.dropped, "API calls that found no server").toEqual([]);
    // Every request the page made went to the server that served it: no CDN, no fonts, nothing.
    const foreign = watched.requests.map((r) => r.url).filter((u) => new URL(u).origin !== origin);
    expect(foreign, "requests leaving the server").toEqual([]);
    expect(watched.requests.length).toBeGreaterThan(0);
  }
  for (const c of contexts.splice(0)) await c.close();
}

beforeAll(async () => {
  if (haveChromium) browser = await chromium.launch({ executablePath: CHROMIUM, args: LAUNCH_ARGS });
});
afterAll(async () => {
  await browser?.close();
});

describe.skipIf(!haveChromium)("the dashboard in chromium", () => {
  beforeAll(async () => {
    server = await startTestServer();
    await create(server, "alpha");
    await create(server, "beta");
    await traffic(server, "alpha");
  });
  afterEach(checkPages);
  afterAll(async () => {
    await server?.stop();
  });

  it("lists every rollout with its stage, weight, health and next action, and follows new ones live", async () => {
    const { page } = await open(server.url, "/ui/");
    await page.waitForSelector("tr[data-rollout=beta]");
    const cells = async (name: string) =>
      page.$$eval(`tr[data-rollout=${name}] td`, (tds) => Object.fromEntries(tds.map((td) => [td.getAttribute("data-label"), (td.textContent ?? "").replace(/\s+/g, " ").trim()])));
    await page.waitForFunction(() => document.querySelector("tr[data-rollout=alpha] .score") !== null);
    const alpha = await cells("alpha");
    expect(alpha["Rollout"]).toBe("alphav1 → v2");
    expect(alpha["Stage"]).toMatch(/^canary\s?step 1 of 4$/);
    expect(alpha["Weight"]).toBe("5%");
    expect(alpha["Health"]).toMatch(/^\d\.\d\d (healthy|monitor|rollback)$/);
    expect(alpha["Next action"]).toMatch(/^(continue|promote|hold|step back|scale down|rollback|emergency stop)/);
    const health = (await api<{ health: { score: number } }>(server, "DecisionService/Health", { rollout: "beta" })).health;
    expect((await cells("beta"))["Health"]).toContain((health.score ?? 0).toFixed(2));
    expect(await page.textContent(".count")).toBe("2 rollouts");
    await expect.poll(() => page.getAttribute("#live", "data-state"), { timeout: 5000 }).toBe("live");
    // A rollout created elsewhere appears without a reload.
    await create(server, "gamma");
    await page.waitForSelector("tr[data-rollout=gamma]", { timeout: 3000 });
    await page.click("tr[data-rollout=alpha] a");
    await page.waitForSelector(".head[data-stage=CANARY]");
    expect(new URL(page.url()).pathname).toBe("/ui/rollouts/alpha");
  });

  it("shows a rollout: steps with the current one marked, every gate, plots, and the audit log with its chain verified as the CLI does", async () => {
    const { page } = await open(server.url, "/ui/rollouts/alpha");
    await page.waitForSelector("tr[data-gate=errors]");
    expect(await page.$$eval(".steps li", (lis) => lis.map((li) => li.className))).toEqual(["current", "todo", "todo", "todo", "todo"]);
    expect(await page.getAttribute(".steps li[aria-current=step]", "data-step")).toBe("1");
    // The gates as Health reports them: observed, threshold, baseline, samples, verdict.
    await page.waitForFunction(() => document.querySelector("tr[data-gate=p99]")?.getAttribute("data-verdict") !== "INCONCLUSIVE");
    const health = (await api<{ health: { gates: { name: string; samples: string; verdict: string; threshold: number }[] } }>(server, "DecisionService/Health", { rollout: "alpha" })).health;
    const row = async (gate: string) =>
      page.$$eval(`tr[data-gate=${gate}] td`, (tds) => Object.fromEntries(tds.map((td) => [td.getAttribute("data-label"), (td.textContent ?? "").trim()])));
    const errors = await row("errors");
    const want = health.gates.find((g) => g.name === "errors")!;
    expect(errors["Samples"]).toBe(want.samples);
    expect(errors["Threshold"]).toBe("5%");
    expect(errors["Observed"]).toBe("2%");
    expect(errors["Stable baseline"]).toBe("2%");
    expect(errors["Verdict"]).toBe(want.verdict.replace("VERDICT_", "").toLowerCase());
    expect((await row("p99"))["Threshold"]).toBe("300 ms");
    // The audit log, its chain checked in the browser (compared with the CLI's verdict below).
    await page.waitForSelector(".chain[data-ok]");
    expect(await page.getAttribute(".chain", "data-ok")).toBe("true");
    expect(Number(await page.getAttribute(".chain", "data-checked"))).toBe((await events(server, "alpha")).length);
    expect(await eventCells(page, "CREATED")).toEqual(["local", "create alpha"]);
    // The plots: the health score and each gate, with points added from the live stream.
    expect(await page.$$eval("figure[data-plot]", (f) => f.map((x) => x.getAttribute("data-plot")))).toEqual(["score", "errors", "p99"]);
    await page.waitForFunction(() => (document.querySelector("figure[data-plot=score] path.line-score")?.getAttribute("d") ?? "").split("L").length >= 3, undefined, { timeout: 10_000 });
    expect(await page.$$eval("figure[data-plot=errors] path", (p) => p.map((x) => x.getAttribute("class")))).toEqual(["line-baseline", "line-threshold", "line-observed"]);
  });

  it("acts with a reason through the API: pause, set weight, resume land in the audit log with actor and reason", async () => {
    const w = await open(server.url, "/ui/rollouts/beta");
    const { page } = w;
    w.allow.add("refusals");
    await page.waitForSelector("button[data-action=pause]");
    await page.click("button[data-action=pause]");
    // No reason, no call: the form asks for one.
    await page.click("#action-submit");
    expect(await page.$eval("#action-reason", (t) => (t as unknown as { validity: { valueMissing: boolean } }).validity.valueMissing)).toBe(true);
    await submitAction(page, "hold for the load test");
    await page.waitForSelector(".toast");
    await page.waitForSelector("tr[data-type=PAUSED]");
    expect(await eventCells(page, "PAUSED")).toEqual(["local", "hold for the load test"]);
    await page.click("button[data-action=weight]");
    await page.fill("#action-weight", "12.5");
    await submitAction(page, "a little more traffic");
    await page.waitForSelector("tr[data-type=WEIGHT_CHANGED]");
    await page.click("button[data-action=resume]");
    await submitAction(page, "load test over");
    await page.waitForSelector("tr[data-type=RESUMED]");
    const log = (await events(server, "beta")).map((e) => [e.type, e.actor, e.reason]);
    expect(log).toEqual(
      expect.arrayContaining([
        ["EVENT_TYPE_PAUSED", "local", "hold for the load test"],
        ["EVENT_TYPE_WEIGHT_CHANGED", "local", "a little more traffic"],
        ["EVENT_TYPE_RESUMED", "local", "load test over"],
      ]),
    );
    expect((await api<{ rollout: { weightBp: number } }>(server, "RolloutService/GetRollout", { name: "beta" })).rollout.weightBp).toBe(1250);
    // A bad weight goes to the server, which refuses it with the field and the rule.
    await page.click("button[data-action=weight]");
    await page.$eval("#action-weight", (i) => ((i as unknown as { max: string }).max = "1000"));
    await page.fill("#action-weight", "150");
    await submitAction(page, "too much");
    await page.waitForSelector("#action-error .error-box[data-code=invalid_argument]");
    expect(await page.textContent("#action-error")).toContain("weight_bp");
    // A rollout that does not exist is the API's NOT_FOUND, said as such.
    await page.goto(`${server.url}/ui/rollouts/no-such-rollout`);
    await page.waitForSelector(".error-box[data-code=not_found]");
    expect(await page.textContent(".error-box")).toContain("no-such-rollout");
  });

  it("shows the blocking gates when the gates refuse a promotion, and promotes when forced", async () => {
    await create(server, "delta");
    const w = await open(server.url, "/ui/rollouts/delta");
    const { page } = w;
    w.allow.add("refusals");
    await page.waitForSelector("button[data-action=promote]");
    await page.click("button[data-action=promote]");
    await submitAction(page, "ship it");
    await page.waitForSelector("#action-error .error-box[data-code=failed_precondition]");
    const blocked = await page.$$eval("#action-error tr[data-gate]", (trs) => trs.map((tr) => [tr.getAttribute("data-gate"), tr.getAttribute("data-verdict")]));
    expect(blocked).toEqual([
      ["errors", "INCONCLUSIVE"],
      ["p99", "INCONCLUSIVE"],
    ]);
    expect(await page.textContent("#action-error")).toContain('promotion of "delta" refused by gates');
    expect(w.refusals).toHaveLength(1);
    await page.check("#action-force");
    await submitAction(page, "ship it anyway: gates have no traffic yet");
    await page.waitForSelector(".steps li[aria-current=step][data-step='2']");
    expect((await events(server, "delta")).find((e) => e.type === "EVENT_TYPE_PROMOTED" || e.type === "EVENT_TYPE_STEP_CHANGED")?.reason).toBe("forced: ship it anyway: gates have no traffic yet");
  });

  it("shows a rollback made elsewhere (grpc-js) within 3 s, without a reload", async () => {
    await create(server, "epsilon");
    const { page } = await open(server.url, "/ui/rollouts/epsilon");
    await page.waitForSelector(".head[data-stage=CANARY]");
    await expect.poll(() => page.getAttribute("#live", "data-state"), { timeout: 5000 }).toBe("live");
    await page.evaluate(() => (window.marker = 42));
    const rollouts = grpcJsClient(RolloutService, server.address);
    try {
      await unary(rollouts, "rollback", { name: "epsilon", reason: "pager: checkout latency" });
    } finally {
      rollouts.close();
    }
    await page.waitForFunction(
      () => document.querySelector(".head")?.getAttribute("data-stage") === "ROLLED_BACK" && document.querySelector("tr[data-type=ROLLED_BACK]") !== null,
      undefined,
      { timeout: 3000 },
    );
    expect(await page.evaluate(() => window.marker)).toBe(42);
    expect(await eventCells(page, "ROLLED_BACK")).toEqual(["local", "pager: checkout latency"]);
    expect(await page.getAttribute(".chain", "data-ok")).toBe("true");
  });

  it("checks the hash chain as rollgate events --verify does: the same verdict on an intact chain and on a tampered one", async () => {
    await create(server, "intact");
    await create(server, "tampered");
    for (const reason of ["one", "two", "three"]) await api(server, "RolloutService/SetWeight", { name: "tampered", weightBp: 600 + reason.length, reason });
    const victim = (await events(server, "tampered"))[2]!;
    const db = new Database(server.dbPath);
    try {
      db.exec("DROP TRIGGER IF EXISTS events_no_update");
      expect(db.prepare("UPDATE events SET reason = ? WHERE seq = ?").run("nothing to see here", Number(victim.seq)).changes).toBe(1);
    } finally {
      db.close();
    }
    const [cli, cliIntact] = await Promise.all(["tampered", "intact"].map((name) => runCli(["--server", server.url, "events", name, "--verify", "-o", "json"])));
    expect(cli!.code).toBe(1);
    const verdict = JSON.parse(cli!.stdout) as { ok: boolean; checked: number; seq: number; problem: string };
    expect(verdict).toMatchObject({ ok: false, checked: 2, seq: Number(victim.seq) });
    expect(JSON.parse(cliIntact!.stdout)).toEqual({ ok: true, checked: 1 });
    const intact = await open(server.url, "/ui/rollouts/intact");
    await intact.page.waitForSelector(".chain[data-ok]");
    expect([await intact.page.getAttribute(".chain", "data-ok"), await intact.page.getAttribute(".chain", "data-checked")]).toEqual(["true", "1"]);
    const { page } = await open(server.url, "/ui/rollouts/tampered");
    await page.waitForSelector(".chain[data-ok]");
    expect(await page.getAttribute(".chain", "data-ok")).toBe("false");
    expect(Number(await page.getAttribute(".chain", "data-seq"))).toBe(verdict.seq);
    expect(Number(await page.getAttribute(".chain", "data-checked"))).toBe(verdict.checked);
    expect(await page.textContent(".chain")).toBe(`✗ Hash chain broken at seq ${verdict.seq}: ${verdict.problem} (${verdict.checked} events before it verified).`);
  });

  it("is readable on a phone: no sideways scrolling, tables as labelled cards, the actions in reach", async () => {
    for (const path of ["/ui/", "/ui/rollouts/alpha"]) {
      const { page } = await open(server.url, path, { width: 390, height: 844 }, true);
      await page.waitForSelector(path === "/ui/" ? "tr[data-rollout=alpha]" : "tr[data-gate=errors]");
      expect(await page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth)).toBe(true);
      // Each cell shows its column's name (the live view redraws rows, so wait for a settled one).
      const labelled = await page.waitForFunction(() => {
        const td = document.querySelector("tbody tr td:nth-child(2)");
        const content = td === null ? "" : getComputedStyle(td, "::before").content;
        return content === "" ? false : content;
      });
      expect(await labelled.jsonValue()).toMatch(/^"(Stage|Observed)"$/);
      // Looked up and measured in one turn: the live view may replace the table between two steps
      // (a detached element's computed display is "").
      expect(await page.evaluate(() => getComputedStyle(document.querySelector("table thead")!).display)).toBe("none");
      if (path !== "/ui/") {
        // Measured in the page in one go: the live view redraws these every second.
        const [button, plot] = await page.evaluate(() =>
          ["button[data-action=rollback]", "figure[data-plot=score] svg"].map((sel) => {
            const r = document.querySelector(sel)!.getBoundingClientRect();
            return { left: r.left, right: r.right, height: r.height };
          }),
        );
        expect(button!.left).toBeGreaterThanOrEqual(0);
        expect(button!.right).toBeLessThanOrEqual(390);
        expect(button!.height).toBeGreaterThanOrEqual(32);
        expect(plot!.right).toBeLessThanOrEqual(390);
      }
    }
  });
});

describe.skipIf(!haveChromium)("the dashboard with tokens, and across a server restart", () => {
  let secured: TestServer;
  const reader = TEST_TOKENS.find((t) => t.role === "reader")!;
  const operator = TEST_TOKENS.find((t) => t.role === "operator")!;
  beforeAll(async () => {
    secured = await startTestServer({}, { tokens: TEST_TOKENS });
    await create(secured, "guarded", operator.token);
  });
  afterEach(checkPages);
  afterAll(async () => {
    await secured?.stop();
  });

  it("asks for a token, sends it as Authorization: Bearer, and applies the token's role", async () => {
    const w = await open(secured.url, "/ui/");
    const { page } = w;
    w.allow.add("refusals");
    await page.waitForSelector("#token-dialog[open]");
    expect(w.refusals.length).toBeGreaterThan(0); // the first, tokenless ListRollouts: 401
    await page.fill("#token-input", reader.token);
    await page.click("#token-form button[type=submit]");
    await page.waitForSelector("tr[data-rollout=guarded]");
    expect(await page.evaluate(() => sessionStorage.getItem("rollgate.token"))).toBe(reader.token);
    const apiCalls = w.requests.filter((r) => new URL(r.url).pathname.startsWith("/rollgate.v1."));
    expect(apiCalls.at(-1)!.authorization).toBe(`Bearer ${reader.token}`);
    // A reader may look but not act: the server's refusal is shown as it is.
    await page.click("tr[data-rollout=guarded] a");
    await page.waitForSelector("button[data-action=halt]");
    await page.click("button[data-action=halt]");
    await submitAction(page, "stop it");
    await page.waitForSelector("#action-error .error-box[data-code=permission_denied]");
    expect(await page.textContent("#action-error")).toContain('token "dash" has role reader');
    // Another token, from the same dialog; the action then goes through as its name.
    await page.click("#action-error button.link");
    await page.waitForSelector("#token-dialog[open]");
    await page.fill("#token-input", operator.token);
    await page.click("#token-form button[type=submit]");
    await page.waitForSelector(".head[data-stage=CANARY]");
    await page.click("button[data-action=halt]");
    await submitAction(page, "stop it");
    await page.waitForSelector(".head[data-stage=HALTED]");
    await page.waitForSelector("tr[data-type=HALTED]");
    expect(await eventCells(page, "HALTED")).toEqual([operator.name, "stop it"]);
    const log = (await api<{ events: EventJson[] }>(secured, "RolloutService/ListEvents", { name: "guarded" }, operator.token)).events;
    expect(log.filter((e) => e.type === "EVENT_TYPE_HALTED").map((e) => [e.actor, e.reason])).toEqual([[operator.name, "stop it"]]);
  });

  it("reconnects after its streams drop (a server restart) and shows a rollback made with the CLI", async () => {
    const restartable = await startTestServer();
    let current = restartable;
    try {
      await create(current, "phoenix");
      const w = await open(current.url, "/ui/rollouts/phoenix");
      const { page } = w;
      w.allow.add("dropped");
      await page.waitForSelector(".head[data-stage=CANARY]");
      await expect.poll(() => page.getAttribute("#live", "data-state"), { timeout: 5000 }).toBe("live");
      const port = current.port;
      await current.close();
      await expect.poll(() => page.getAttribute("#live", "data-state"), { timeout: 5000 }).toBe("reconnecting");
      current = await startTestServer({ listen: `127.0.0.1:${port}` }, { dbPath: restartable.dbPath });
      await expect.poll(() => page.getAttribute("#live", "data-state"), { timeout: 10_000 }).toBe("live");
      const cli = await runCli(["--server", current.url, "rollback", "phoenix", "--reason", "rolled back from a terminal"]);
      expect(cli.code).toBe(0);
      await page.waitForFunction(() => document.querySelector(".head")?.getAttribute("data-stage") === "ROLLED_BACK" && document.querySelector("tr[data-type=ROLLED_BACK]") !== null, undefined, {
        timeout: 3000,
      });
      // Events are not shown twice after the reconnect.
      expect(await page.$$eval("tr[data-type=CREATED]", (r) => r.length)).toBe(1);
    } finally {
      await current.stop();
      if (current !== restartable) await restartable.stop();
    }
  });
});
