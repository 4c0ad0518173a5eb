#!/usr/bin/env node
// Screenshots of the dashboard for the README: starts the built server (`npx tsc -b` first) on
// 127.0.0.1:0 with a throwaway database, creates a few rollouts and feeds them outcomes for a
// while, then photographs the list and a rollout's page with Debian's chromium, at laptop size
// (and the rollout page at phone size). Writes docs/img/dashboard-*.png.
//
//   node scripts/screenshots.mjs            # CHROMIUM=/path/to/chromium to use another browser
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { pino } from "pino";
import { chromium } from "playwright-core";
import { loadConfig } from "../dist/src/server/config.js";
import { startServer } from "../dist/src/server/server.js";

const root = fileURLToPath(new URL("..", import.meta.url));
const out = join(root, "docs", "img");
mkdirSync(out, { recursive: true });
const tmp = mkdtempSync(join(tmpdir(), "rollgate-shots-"));
const server = await startServer(loadConfig({ listen: "127.0.0.1:0", db: join(tmp, "rollgate.db"), logLevel: "silent" }, {}), {
  logger: pino({ level: "silent" }),
});
const base = server.url;

async function call(method, body) {
  const res = await fetch(`${base}/rollgate.v1.${method}`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
  const json = await res.json();
  if (!res.ok) throw new Error(`${method}: ${json.code}: ${json.message}`);
  return json;
}

const analysis = { interval: "1s", window: "60s", gracePeriod: "1s", consecutiveBreaches: 2 };
const gates = [
  { name: "errors", minSamples: "100", errorRate: { max: 0.02 } },
  { name: "p99-latency", minSamples: "100", latency: { quantile: 0.99, maxMs: 250 } },
  { name: "vs-stable", minSamples: "100", latency: { quantile: 0.5, maxRatio: 1.25 } },
];
const rollouts = [
  { name: "checkout", stableVersion: "v1.4.2", canaryVersion: "v1.5.0", gates, analysis },
  { name: "cart", stableVersion: "v3.0.1", canaryVersion: "v3.1.0-rc1", gates: gates.slice(0, 2), analysis },
  { name: "search", stableVersion: "2026.11.28", canaryVersion: "2026.12.01", gates: gates.slice(0, 1), analysis },
  { name: "recommendations", stableVersion: "r41", canaryVersion: "r42", gates: gates.slice(1, 2), analysis },
  { name: "payments-api", stableVersion: "v8.2.0", canaryVersion: "v8.3.0", gates, analysis },
];
for (const r of rollouts) await call("RolloutService/CreateRollout", { rollout: r, reason: "release train 2026-12-01" });
await call("RolloutService/Promote", { name: "checkout", force: true, reason: "clean first hour at 5% (checked by hand)" });
await call("RolloutService/SetFeature", { name: "checkout", feature: "one-click-pay", enabled: true, reason: "exercise the new payment sheet on the canary" });
await call("RolloutService/Pause", { name: "search", reason: "hold over the indexing migration" });
await call("RolloutService/Promote", { name: "recommendations", target: "PROMOTE_TARGET_STAGING", force: true, reason: "QA sign-off on staging" });
await call("RolloutService/Halt", { name: "payments-api", reason: "pager: card declines up on the canary" });

// Traffic: a healthy checkout whose latency wanders, a cart canary that goes bad after a while
// and is rolled back by its gates. A seeded generator keeps every run alike.
let seed = 42;
function random() {
  seed = (seed + 0x6d2b79f5) | 0;
  let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
  t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}
function outcomes(canaryErrors, canaryLatency, n) {
  const list = [];
  for (let i = 0; i < n; i++) {
    const canary = i % 2 === 0;
    const latency = (canary ? canaryLatency : 100) * (0.5 + random() * 0.9);
    list.push({ variant: canary ? "VARIANT_CANARY" : "VARIANT_STABLE", success: random() >= (canary ? canaryErrors : 0.005), latencyMs: latency });
  }
  return list;
}
let tick = 0;
const feed = setInterval(() => {
  tick++;
  const wave = Math.sin(tick / 7);
  call("DecisionService/RecordOutcome", { rollout: "checkout", outcomes: outcomes(0.006 + 0.003 * wave, 104 + 8 * wave, 160) }).catch(() => {});
  call("DecisionService/RecordOutcome", { rollout: "cart", outcomes: outcomes(tick < 40 ? 0.004 : 0.12, 100, 120) }).catch(() => {});
  call("DecisionService/RecordOutcome", { rollout: "search", outcomes: outcomes(0.004, 100, 80) }).catch(() => {});
  call("DecisionService/RecordOutcome", { rollout: "recommendations", outcomes: outcomes(0.002, 95, 80) }).catch(() => {});
}, 500);

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--no-first-run"],
});
try {
  const laptop = await browser.newContext({ viewport: { width: 1280, height: 800 }, deviceScaleFactor: 1, colorScheme: "light" });
  const page = await laptop.newPage();
  page.on("console", (m) => m.type() === "error" && console.error(`console: ${m.text()}`));
  await page.goto(`${base}/ui/rollouts/checkout`);
  // Let the page collect some history from the live stream; the cart canary goes bad meanwhile.
  await page.waitForTimeout(Number(process.env.SHOTS_WAIT_MS ?? 50_000));
  await page.screenshot({ path: join(out, "dashboard-rollout.png"), fullPage: true });
  console.log("wrote docs/img/dashboard-rollout.png");
  await page.click("a.brand");
  await page.waitForSelector("tr[data-rollout=checkout]");
  await page.waitForTimeout(1500);
  // The list is short: the picture ends below its card.
  const bottom = await page.$eval("main", (m) => m.getBoundingClientRect().bottom);
  await page.screenshot({ path: join(out, "dashboard-list.png"), clip: { x: 0, y: 0, width: 1280, height: Math.min(800, Math.ceil(bottom) + 8) } });
  console.log("wrote docs/img/dashboard-list.png");

  const phone = await browser.newContext({ viewport: { width: 390, height: 844 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true, colorScheme: "light" });
  const small = await phone.newPage();
  await small.goto(`${base}/ui/rollouts/checkout`);
  await small.waitForTimeout(4000);
  await small.screenshot({ path: join(out, "dashboard-phone.png"), fullPage: process.env.SHOTS_FULL_PHONE === "1" });
  console.log("wrote docs/img/dashboard-phone.png");
} finally {
  clearInterval(feed);
  await browser.close();
  await server.close();
  rmSync(tmp, { recursive: true, force: true });
}
