// Outbound notifications end to end: a real rollgate server on a real port with a --notify file,
// real HTTP receivers on port 0 that verify signatures, fail, hang and recover.
import { spawnSync } from "node:child_process";
import { createHmac, timingSafeEqual } from "node:crypto";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ALERTMANAGER_PATH } from "../../src/server/alertmanager.js";
import { pino } from "pino";
import { loadConfig } from "../../src/server/config.js";
import { startServer, type RunningServer } from "../../src/server/server.js";
import { cliPath, repoRoot, tempDir } from "../helpers/servers.js";

const SECRET = "whsec-0123456789abcdef";
const SLACK_SECRET = "slack-secret-0123456789";

interface Received {
  readonly path: string;
  readonly headers: IncomingMessage["headers"];
  readonly body: string;
}

/** A local webhook receiver: every request recorded; each path answers as `behave` says. */
async function startReceiver(behave: (path: string, nth: number, res: ServerResponse) => void) {
  const received: Received[] = [];
  const seen = new Map<string, number>();
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const path = req.url ?? "/";
      const nth = (seen.get(path) ?? 0) + 1;
      seen.set(path, nth);
      received.push({ path, headers: req.headers, body: Buffer.concat(chunks).toString("utf8") });
      behave(path, nth, res);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as { port: number }).port;
  return {
    url: `http://127.0.0.1:${port}`,
    received,
    at: (path: string) => received.filter((r) => r.path === path),
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** Verifies a delivery as the README tells receivers to: HMAC-SHA256 of `<timestamp>.<body>`. */
function verifies(r: Received, secret: string): boolean {
  const timestamp = String(r.headers["x-rollgate-timestamp"]);
  const expected = `sha256=${createHmac("sha256", secret).update(`${timestamp}.${r.body}`).digest("hex")}`;
  const got = String(r.headers["x-rollgate-signature"]);
  return got.length === expected.length && timingSafeEqual(Buffer.from(got), Buffer.from(expected));
}

async function rpc(base: string, method: string, body: unknown): Promise<any> {
  const service = method === "RecordOutcome" ? "DecisionService" : "RolloutService";
  const res = await fetch(`${base}/rollgate.v1.${service}/${method}`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  const json = await res.json();
  if (res.status !== 200) throw new Error(`${method}: ${res.status} ${JSON.stringify(json)}`);
  return json;
}

async function until(what: string, check: () => boolean | Promise<boolean>, tries = 400): Promise<void> {
  for (let i = 0; i < tries; i++) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`timed out waiting for ${what}`);
}

describe("outbound notifications", () => {
  const tmp = tempDir();
  let receiver: Awaited<ReturnType<typeof startReceiver>>;
  let server: RunningServer;
  const stats = (name: string) => server.notifier!.stats().find((s) => s.name === name)!;

  beforeAll(async () => {
    receiver = await startReceiver((path, nth, res) => {
      if (path === "/flaky" && nth <= 3) return res.writeHead(500).end("not yet");
      if (path === "/down") return res.writeHead(503).end("down");
      if (path === "/refuses") return res.writeHead(404).end("no such hook");
      if (path === "/hang") return; // never answers
      res.writeHead(204).end();
    });
    const file = join(tmp.dir, "notify.yaml");
    writeFileSync(
      file,
      [
        "webhooks:",
        `  - { name: all, url: "${receiver.url}/all", events: ["*"], secret: "${SECRET}" }`,
        `  - { name: carts, url: "${receiver.url}/carts", events: [rolled_back, halted], rollouts: ["cart-*"], secret: "${SECRET}" }`,
        `  - { name: slack, url: "${receiver.url}/slack", events: [rolled_back], secret_env: NOTIFY_TEST_SLACK_SECRET, format: slack }`,
        `  - { name: flaky, url: "${receiver.url}/flaky", events: [halted], rollouts: [flaky], secret: "${SECRET}", backoff_initial: 20ms, backoff_max: 100ms, retry_for: 1m }`,
        `  - { name: down, url: "${receiver.url}/down", events: [paused], secret: "${SECRET}", backoff_initial: 20ms, backoff_max: 50ms, retry_for: 300ms }`,
        `  - { name: refuses, url: "${receiver.url}/refuses", events: [paused], secret: "${SECRET}", backoff_initial: 20ms }`,
        `  - { name: hang, url: "${receiver.url}/hang", events: [weight_changed], rollouts: [hang], secret: "${SECRET}", timeout: 100ms, backoff_initial: 20ms, backoff_max: 50ms, retry_for: 1s, queue_size: 1 }`,
        `  - { name: slow, url: "${receiver.url}/hang", events: [weight_changed], rollouts: [slow], secret: "${SECRET}", timeout: 1h, retry_for: 1h, queue_size: 5 }`,
      ].join("\n"),
    );
    const config = loadConfig(
      { listen: "127.0.0.1:0", db: join(tmp.dir, "rollgate.db"), notify: file, publicUrl: "https://rollgate.example.com/" },
      { NOTIFY_TEST_SLACK_SECRET: SLACK_SECRET },
    );
    server = await startServer(config, { logger: pino({ level: process.env.TEST_LOG_LEVEL ?? "silent" }), evaluationTickMs: 50 });
  });
  afterAll(async () => {
    await server?.close();
    await receiver?.close();
    tmp.cleanup();
  });

  it("POSTs every matching audit event as signed JSON, with the gate snapshot and a dashboard link", async () => {
    await rpc(server.url, "CreateRollout", {
      rollout: { name: "checkout", stableVersion: "v1", canaryVersion: "v2", gates: [{ name: "errors", minSamples: "10", errorRate: { max: 0.05 } }] },
      reason: "first canary",
    });
    await rpc(server.url, "SetWeight", { name: "checkout", weightBp: 1200, reason: "a bit more" });
    await until("two deliveries", () => receiver.at("/all").length >= 2);
    const [created, weight] = receiver.at("/all");
    for (const r of [created!, weight!]) {
      expect(verifies(r, SECRET)).toBe(true);
      expect(verifies(r, "some-other-secret-000")).toBe(false);
      expect(r.headers["content-type"]).toBe("application/json");
      expect(Math.abs(Number(r.headers["x-rollgate-timestamp"]) - Date.now() / 1000)).toBeLessThan(600);
    }
    // Tampering with the body or the timestamp breaks the signature.
    expect(verifies({ ...weight!, body: weight!.body.replace("a bit more", "a lot more") }, SECRET)).toBe(false);
    expect(verifies({ ...weight!, headers: { ...weight!.headers, "x-rollgate-timestamp": "1" } }, SECRET)).toBe(false);
    const body = JSON.parse(weight!.body);
    const events = (await rpc(server.url, "ListEvents", { name: "checkout" })).events;
    expect(weight!.headers["x-rollgate-delivery"]).toBe(`${events[1].seq}-${events[1].hash.slice(0, 16)}`);
    expect(weight!.headers["x-rollgate-event"]).toBe("weight_changed");
    expect(body).toMatchObject({
      id: weight!.headers["x-rollgate-delivery"],
      type: "weight_changed",
      rollout: "checkout",
      seq: Number(events[1].seq),
      actor: "local",
      reason: "a bit more",
      version: 2,
      hash: events[1].hash,
      links: { dashboard: "https://rollgate.example.com/ui/rollouts/checkout" },
    });
    expect(body.time).toBe(new Date(Date.parse(events[1].time)).toISOString());
    expect(body.snapshot).toMatchObject({ stage: "canary", weight_bp: 1200, gates: [{ name: "errors", kind: "error_rate", verdict: "inconclusive", threshold: 0.05 }] });
    expect(JSON.parse(created!.body)).toMatchObject({ type: "created", reason: "first canary", version: 1 });
  });

  it("sends evaluator decisions and Alertmanager's halts, filtered by type and rollout, and in Slack's format", async () => {
    await rpc(server.url, "CreateRollout", {
      rollout: {
        name: "cart-eu",
        stableVersion: "v1",
        canaryVersion: "v2",
        gates: [{ name: "errors", minSamples: "50", onBreach: "ACTION_ROLLBACK", errorRate: { max: 0.05 } }],
        analysis: { interval: "1s", window: "30s", consecutiveBreaches: 2 },
      },
    });
    await rpc(server.url, "CreateRollout", { rollout: { name: "other", stableVersion: "v1", canaryVersion: "v2" } });
    const outcomes = Array.from({ length: 400 }, (_, i) => ({
      variant: i % 2 ? "VARIANT_CANARY" : "VARIANT_STABLE",
      success: i % 2 === 0 || i % 20 > 5,
      latencyMs: 30,
    }));
    // The evaluator rolls it back on its own after two failing evaluations.
    const feeding = setInterval(() => void rpc(server.url, "RecordOutcome", { rollout: "cart-eu", outcomes }).catch(() => undefined), 300);
    try {
      await until("the evaluator's rollback", () => receiver.at("/carts").some((r) => JSON.parse(r.body).type === "rolled_back"), 600);
    } finally {
      clearInterval(feeding);
    }
    const rollback = receiver.at("/carts").map((r) => JSON.parse(r.body)).find((b) => b.type === "rolled_back");
    expect(rollback).toMatchObject({ rollout: "cart-eu", actor: "evaluator", reason: expect.stringMatching(/errors: canary error rate .* > max 0\.05/) });
    expect(rollback.snapshot.gates[0]).toMatchObject({ name: "errors", verdict: "fail" });

    // An Alertmanager halt of a rollout the "carts" webhook does not watch, and one it does.
    await rpc(server.url, "CreateRollout", { rollout: { name: "cart-us", stableVersion: "v1", canaryVersion: "v2" } });
    for (const rollout of ["other", "cart-us"]) {
      const res = await fetch(`${server.url}${ALERTMANAGER_PATH}`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({
          version: "4",
          status: "firing",
          receiver: "rollgate",
          groupKey: "{}:{}",
          alerts: [{ status: "firing", labels: { alertname: "Errors", rollout }, annotations: { summary: `${rollout} errors` }, fingerprint: "0123456789abcdef" }],
        }),
      });
      expect(res.status).toBe(200);
    }
    await until("the halt of cart-us", () => receiver.at("/carts").some((r) => JSON.parse(r.body).type === "halted"));
    await until("everything at /all", async () => receiver.at("/all").some((r) => JSON.parse(r.body).rollout === "cart-us" && JSON.parse(r.body).type === "halted"));
    const carts = receiver.at("/carts").map((r) => JSON.parse(r.body));
    // Only rollbacks and halts of cart-*: no creation, no gate breach, nothing of "other".
    expect(carts.map((b) => [b.type, b.rollout])).toEqual([
      ["rolled_back", "cart-eu"],
      ["halted", "cart-us"],
    ]);
    expect(carts[1]).toMatchObject({ actor: "alertmanager", reason: "cart-us errors", snapshot: { detail: { alertname: "Errors", fingerprint: "0123456789abcdef" } } });
    expect(receiver.at("/all").some((r) => JSON.parse(r.body).rollout === "other" && JSON.parse(r.body).type === "halted")).toBe(true);

    // Slack: rollbacks only, text + blocks, signed with its own secret.
    const slack = receiver.at("/slack");
    expect(slack.length).toBe(1);
    expect(verifies(slack[0]!, SLACK_SECRET)).toBe(true);
    const message = JSON.parse(slack[0]!.body);
    expect(Object.keys(message).sort()).toEqual(["blocks", "text"]);
    expect(message.text).toMatch(/^cart-eu: rolled back by evaluator — errors: canary error rate/);
    expect(message.blocks[0]).toEqual({
      type: "section",
      text: { type: "mrkdwn", text: expect.stringMatching(/^\*<https:\/\/rollgate\.example\.com\/ui\/rollouts\/cart-eu\|cart-eu>\* rolled back by `evaluator`\n>errors: canary error rate .* &gt; max 0\.05/) },
    });
    expect(message.blocks[1].fields).toContainEqual({ type: "mrkdwn", text: "*Stage*\nROLLED_BACK" });
    expect(message.blocks[2].text.text).toMatch(/^• `errors` FAIL: 0\.3 vs 0\.05, stable 0 \(\d+ samples\)$/);
    expect(message.blocks.at(-1).type).toBe("context");
  }, 60_000);

  it("the README's signature checks (Node and Python) accept a real delivery and refuse a tampered one", async () => {
    const readme = readFileSync(join(repoRoot, "README.md"), "utf8");
    const section = readme.slice(readme.indexOf("### Outbound notifications"), readme.indexOf("\n## ", readme.indexOf("### Outbound notifications")));
    const js = /```js\n([\s\S]*?)```/.exec(section)![1]!;
    const py = /```python\n([\s\S]*?)```/.exec(section)![1]!;
    const delivery = receiver.at("/all").at(-1)!;
    const headers = { "x-rollgate-timestamp": String(delivery.headers["x-rollgate-timestamp"]), "x-rollgate-signature": String(delivery.headers["x-rollgate-signature"]) };
    const check = (body: string) => {
      const input = JSON.stringify({ headers, body });
      const node = spawnSync(
        process.execPath,
        ["--input-type=module", "-e", `${js}\nconst i = JSON.parse(process.argv[1]); console.log(verifyRollgate(${JSON.stringify(SECRET)}, i.headers, i.body));`, input],
        { encoding: "utf8" },
      );
      const python = spawnSync(
        "python3",
        ["-c", `${py}\nimport json, sys\ni = json.loads(sys.argv[1])\nh = {"X-Rollgate-Timestamp": i["headers"]["x-rollgate-timestamp"], "X-Rollgate-Signature": i["headers"]["x-rollgate-signature"]}\nprint(verify_rollgate(${JSON.stringify(SECRET)}.encode(), h, i["body"].encode()))`, input],
        { encoding: "utf8" },
      );
      return [node.stdout.trim() || node.stderr, python.stdout.trim() || python.stderr];
    };
    expect(check(delivery.body)).toEqual(["true", "True"]);
    expect(check(delivery.body.replace('"seq":', '"seq": '))).toEqual(["false", "False"]);
  });

  it("retries a receiver that fails with 500, with the same delivery id, until it answers", async () => {
    await rpc(server.url, "CreateRollout", { rollout: { name: "flaky", stableVersion: "v1", canaryVersion: "v2" } });
    await rpc(server.url, "Halt", { name: "flaky", reason: "stop" });
    await until("the delivery", () => stats("flaky").ok === 1);
    const attempts = receiver.at("/flaky");
    expect(attempts.length).toBe(4);
    expect(new Set(attempts.map((a) => a.headers["x-rollgate-delivery"])).size).toBe(1);
    expect(new Set(attempts.map((a) => a.body)).size).toBe(1);
    expect(attempts.every((a) => verifies(a, SECRET))).toBe(true);
    expect(stats("flaky")).toMatchObject({ ok: 1, retried: 3, failed: 0, dropped: 0 });
    const metrics = await (await fetch(`${server.url}/metrics`)).text();
    expect(metrics).toMatch(/^rollgate_notify_deliveries_total\{webhook="flaky",result="retried"\} 3$/m);
    expect(metrics).toMatch(/^rollgate_notify_deliveries_total\{webhook="flaky",result="ok"\} 1$/m);
  });

  it("gives up on a receiver that always fails once retry_for has passed, and never retries a 4xx", async () => {
    await rpc(server.url, "CreateRollout", { rollout: { name: "pausable", stableVersion: "v1", canaryVersion: "v2" } });
    await rpc(server.url, "Pause", { name: "pausable", reason: "hold" });
    await until("giving up", () => stats("down").failed === 1 && stats("refuses").failed === 1);
    const down = receiver.at("/down");
    expect(down.length).toBeGreaterThan(1);
    expect(stats("down")).toMatchObject({ ok: 0, failed: 1, retried: down.length - 1, queued: 0 });
    expect(receiver.at("/refuses").length).toBe(1);
    expect(stats("refuses")).toMatchObject({ ok: 0, failed: 1, retried: 0 });
    const metrics = await (await fetch(`${server.url}/metrics`)).text();
    expect(metrics).toMatch(/^rollgate_notify_deliveries_total\{webhook="down",result="failed"\} 1$/m);
  });

  it("abandons an attempt at a hanging receiver after its timeout, and drops the oldest when its queue is full", async () => {
    await rpc(server.url, "CreateRollout", { rollout: { name: "hang", stableVersion: "v1", canaryVersion: "v2" } });
    for (let w = 100; w <= 600; w += 100) await rpc(server.url, "SetWeight", { name: "hang", weightBp: w, reason: `to ${w}` });
    // 6 events, one in flight for 1 s, a queue of 1: some dropped, the others each given up.
    await until("every hang delivery settled", () => {
      const s = stats("hang");
      return s.queued === 0 && !s.inFlight && s.failed + s.dropped === 6;
    });
    const s = stats("hang");
    expect(s.dropped).toBeGreaterThanOrEqual(1);
    expect(s.ok).toBe(0);
    // Each failure took several attempts, each cut at its timeout (the receiver never answers).
    expect(s.retried).toBeGreaterThanOrEqual(s.failed);
    const seen = receiver.at("/hang").filter((r) => JSON.parse(r.body).rollout === "hang").length;
    expect(seen).toBeGreaterThanOrEqual(1);
    expect(seen).toBeLessThanOrEqual(s.failed + s.retried);
  });

  it("never slows the RPCs that make the events: a receiver that never answers leaves them all served", async () => {
    await rpc(server.url, "CreateRollout", { rollout: { name: "slow", stableVersion: "v1", canaryVersion: "v2" } });
    const answered: number[] = [];
    for (let w = 100; w <= 2000; w += 100) answered.push((await rpc(server.url, "SetWeight", { name: "slow", weightBp: w, reason: "up" })).rollout.weightBp);
    expect(answered.length).toBe(20);
    expect((await rpc(server.url, "GetRollout", { name: "slow" })).rollout.weightBp).toBe(2000);
    // The receiver holds the first delivery forever (1 h timeout): every RPC was answered
    // meanwhile, the queue filled up and dropped the oldest.
    await until("the first delivery at the receiver", () => receiver.at("/hang").some((r) => JSON.parse(r.body).rollout === "slow"));
    const s = stats("slow");
    expect(receiver.at("/hang").filter((r) => JSON.parse(r.body).rollout === "slow").length).toBe(1);
    expect(s).toMatchObject({ ok: 0, failed: 0, inFlight: true, queued: 5, dropped: 14 });
  });
});

const escape = (text: string) => text.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&");

describe("rollgate serve --notify", () => {
  it("refuses a bad notification file at start, naming the field", () => {
    const tmp = tempDir();
    try {
      const file = join(tmp.dir, "notify.yaml");
      const cases: [string, RegExp][] = [
        ["webhooks: []", /webhooks: must be a non-empty list/],
        [`webhooks:\n  - { name: a, url: "ftp://x", events: ["*"], secret: "${SECRET}" }`, /webhooks\[0\]\.url: must be an absolute http:\/\/ or https:\/\/ URL/],
        [`webhooks:\n  - { name: a, url: "http://x", events: [rolledback], secret: "${SECRET}" }`, /webhooks\[0\]\.events\[0\]: "rolledback" must be "\*" or one of created/],
        [`webhooks:\n  - { name: a, url: "http://x", events: ["*"], secret_env: NO_SUCH_VARIABLE_HERE }`, /webhooks\[0\]\.secret_env: NO_SUCH_VARIABLE_HERE must be set/],
        [`webhooks:\n  - { name: a, url: "http://x", events: ["*"], secret: short }`, /webhooks\[0\]\.secret: must be a string of at least 16/],
        [`webhooks:\n  - { name: a, url: "http://x", events: ["*"], secret: "${SECRET}", format: teams }`, /webhooks\[0\]\.format: must be json or slack/],
        [`webhooks:\n  - { name: a, url: "http://x", events: ["*"], secret: "${SECRET}", retry_for: forever }`, /webhooks\[0\]\.retry_for: must be a duration/],
        [`webhooks:\n  - { name: a, url: "http://x", events: ["*"], secret: "${SECRET}", rollouts: ["Cart/*"] }`, /webhooks\[0\]\.rollouts\[0\]: must be a rollout name or a glob/],
        [`webhooks:\n  - { name: a, url: "http://x", events: ["*"], secret: "${SECRET}", urls: "http://y" }`, /webhooks\[0\]\.urls: is not a setting/],
      ];
      for (const [text, message] of cases) {
        writeFileSync(file, text);
        expect(() => loadConfig({ listen: "127.0.0.1:0", db: ":memory:", notify: file }, {})).toThrow(
          new RegExp(`^--notify/ROLLGATE_NOTIFY_FILE: ${escape(file)}: ${message.source}`),
        );
      }
      // The command itself: exit 2 with the message, as for any bad setting.
      writeFileSync(file, cases[1]![0]);
      const r = spawnSync(process.execPath, [cliPath, "serve", "--listen", "127.0.0.1:0", "--db", ":memory:"], {
        encoding: "utf8",
        timeout: 20_000,
        env: { ...process.env, ROLLGATE_NOTIFY_FILE: file },
      });
      expect([r.status, r.stderr]).toEqual([2, `rollgate serve: --notify/ROLLGATE_NOTIFY_FILE: ${file}: webhooks[0].url: must be an absolute http:// or https:// URL\n`]);
      expect(() => loadConfig({ listen: "127.0.0.1:0", db: ":memory:", publicUrl: "rollgate.example.com" }, {})).toThrow(
        /^--public-url\/ROLLGATE_PUBLIC_URL: "rollgate\.example\.com" must be an http/,
      );
      expect(loadConfig({ listen: "127.0.0.1:0", db: ":memory:" }, { ROLLGATE_PUBLIC_URL: "https://rollgate.example.com/" }).publicUrl).toBe("https://rollgate.example.com");
    } finally {
      tmp.cleanup();
    }
  });
});
