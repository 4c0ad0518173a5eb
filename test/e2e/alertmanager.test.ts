// The Alertmanager receiver end to end: a real server on a real port, real HTTP POSTs of
// Alertmanager's webhook payload (version 4), the changes read back over the API.
import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import * as http2 from "node:http2";
import { join } from "node:path";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { verifyChain } from "../../src/domain/audit-chain.js";
import { ALERTMANAGER_MAX_ALERTS, ALERTMANAGER_MAX_BODY_BYTES, ALERTMANAGER_PATH } from "../../src/server/alertmanager.js";
import { loadConfig } from "../../src/server/config.js";
import { startServer } from "../../src/server/server.js";
import { startPostgres, type PostgresCluster } from "../helpers/postgres.js";
import { TEST_TOKENS, repoRoot, startTestServer, type TestServer } from "../helpers/servers.js";

const OPERATOR = "operator-token-0123456789";
const READER = "reader-token-01234567890";

interface AlertInput {
  status?: "firing" | "resolved";
  labels: Record<string, string>;
  annotations?: Record<string, string>;
  fingerprint?: string;
}

/** Returns a notification as Alertmanager 0.27 sends it (every field present). */
function notification(alerts: AlertInput[], status: "firing" | "resolved" = "firing"): Record<string, unknown> {
  return {
    receiver: "rollgate",
    status,
    alerts: alerts.map((a, i) => ({
      status: a.status ?? status,
      labels: a.labels,
      annotations: a.annotations ?? {},
      startsAt: "2026-12-01T14:00:00.123456789Z",
      endsAt: a.status === "resolved" ? "2026-12-01T14:05:00Z" : "0001-01-01T00:00:00Z",
      generatorURL: "http://prometheus.example:9090/graph?g0.expr=up",
      fingerprint: a.fingerprint ?? `f${i}0a1b2c3d4e5f6a`.slice(0, 16),
    })),
    groupLabels: { alertname: alerts[0]?.labels.alertname ?? "" },
    commonLabels: {},
    commonAnnotations: {},
    externalURL: "http://alertmanager.example:9093",
    version: "4",
    groupKey: '{}/{rollout=~".+"}:{alertname="CheckoutErrors"}',
    truncatedAlerts: 0,
  };
}

async function post(base: string, body: unknown, headers: Record<string, string> = {}): Promise<{ status: number; json: any }> {
  const res = await fetch(`${base}${ALERTMANAGER_PATH}`, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body: typeof body === "string" ? body : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, json: text === "" ? undefined : JSON.parse(text) };
}

async function rpc(base: string, method: string, body: unknown, token?: string): Promise<any> {
  const res = await fetch(`${base}/rollgate.v1.RolloutService/${method}`, {
    method: "POST",
    headers: { "content-type": "application/json", ...(token === undefined ? {} : { authorization: `Bearer ${token}` }) },
    body: JSON.stringify(body),
  });
  const json = await res.json();
  if (res.status !== 200) throw new Error(`${method}: ${res.status} ${JSON.stringify(json)}`);
  return json;
}

async function metric(base: string, pattern: RegExp): Promise<number> {
  const text = await (await fetch(`${base}/metrics`)).text();
  const line = text.split("\n").find((l) => pattern.test(l));
  return line === undefined ? 0 : Number(line.slice(line.lastIndexOf(" ") + 1));
}

describe("POST /webhooks/alertmanager", () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer();
    for (const name of ["checkout", "cart", "search", "payments"]) {
      await rpc(server.url, "CreateRollout", { rollout: { name, stableVersion: "v1", canaryVersion: "v2" } });
    }
  });
  afterAll(() => server?.stop());
  const rollout = async (name: string) => (await rpc(server.url, "GetRollout", { name })).rollout;
  const events = async (name: string) => (await rpc(server.url, "ListEvents", { name })).events as any[];

  it("halts the rollout a firing alert names, audited as alertmanager with the summary, alert name and fingerprint", async () => {
    const body = notification([
      { labels: { alertname: "CheckoutErrors", rollout: "checkout", severity: "critical" }, annotations: { summary: "checkout canary 5xx above 5%" }, fingerprint: "3c5a7d9e1b2f4a6c" },
    ]);
    const res = await post(server.url, body);
    expect(res.status).toBe(200);
    expect(res.json.alerts).toEqual([
      { alertname: "CheckoutErrors", fingerprint: "3c5a7d9e1b2f4a6c", rollout: "checkout", action: "halt", outcome: "applied", stage: "halted" },
    ]);
    expect((await rollout("checkout")).stage).toBe("STAGE_HALTED");
    const last = (await events("checkout")).at(-1);
    expect(last).toMatchObject({ type: "EVENT_TYPE_HALTED", actor: "alertmanager", reason: "checkout canary 5xx above 5%" });
    expect(JSON.parse(last.snapshot).detail).toEqual({
      source: "alertmanager",
      alertname: "CheckoutErrors",
      fingerprint: "3c5a7d9e1b2f4a6c",
      action: "halt",
      group_key: '{}/{rollout=~".+"}:{alertname="CheckoutErrors"}',
      starts_at: "2026-12-01T14:00:00.123456789Z",
      generator_url: "http://prometheus.example:9090/graph?g0.expr=up",
    });
    // The receiver's event is on the rollout's hash chain like any other change.
    expect(verifyChain(await server.engine.listEvents("checkout", 0, 100))).toEqual({ ok: true, checked: 2 });

    // Alertmanager re-sends the same group (repeat_interval, a retry): nothing is duplicated.
    const before = (await events("checkout")).length;
    const again = await post(server.url, body);
    expect(again.status).toBe(200);
    expect(again.json.alerts[0]).toMatchObject({ outcome: "already", stage: "halted" });
    expect((await events("checkout")).length).toBe(before);
    expect(await metric(server.url, /^rollgate_alertmanager_alerts_total\{status="firing",action="halt",outcome="already"\}/)).toBe(1);
  });

  it("rolls back or pauses as rollgate_action says, once each, and a resolved alert resumes nothing", async () => {
    const body = notification([
      { labels: { alertname: "CartLatency", rollout: "cart", rollgate_action: "rollback" }, annotations: { summary: "cart p99 over 800 ms" } },
      { labels: { alertname: "SearchSaturation", rollout: "search", rollgate_action: "pause" }, annotations: { description: "search CPU saturated" } },
    ]);
    const res = await post(server.url, body);
    expect(res.status).toBe(200);
    expect(res.json.alerts.map((a: any) => [a.rollout, a.action, a.outcome])).toEqual([
      ["cart", "rollback", "applied"],
      ["search", "pause", "applied"],
    ]);
    expect((await rollout("cart")).stage).toBe("STAGE_ROLLED_BACK");
    const search = await rollout("search");
    expect([search.stage, search.paused]).toEqual(["STAGE_CANARY", true]);
    expect((await events("cart")).at(-1)).toMatchObject({ type: "EVENT_TYPE_ROLLED_BACK", actor: "alertmanager", reason: "cart p99 over 800 ms" });
    expect((await events("search")).at(-1)).toMatchObject({ type: "EVENT_TYPE_PAUSED", actor: "alertmanager", reason: "search CPU saturated" });

    const counts = [(await events("cart")).length, (await events("search")).length];
    const repeat = await post(server.url, body);
    expect(repeat.json.alerts.map((a: any) => a.outcome)).toEqual(["already", "already"]);
    // A halt alert for a rolled-back rollout: it already takes no traffic, and is left as it is.
    const halt = await post(server.url, notification([{ labels: { alertname: "CartDown", rollout: "cart" } }]));
    expect(halt.json.alerts[0]).toMatchObject({ outcome: "already", stage: "rolled_back" });

    const resolved = await post(
      server.url,
      notification(
        [
          { status: "resolved", labels: { alertname: "SearchSaturation", rollout: "search", rollgate_action: "pause" } },
          { status: "resolved", labels: { alertname: "CheckoutErrors", rollout: "checkout" } },
        ],
        "resolved",
      ),
    );
    expect(resolved.status).toBe(200);
    expect(resolved.json.alerts.map((a: any) => a.outcome)).toEqual(["resolved", "resolved"]);
    expect((await rollout("search")).paused).toBe(true);
    expect((await rollout("checkout")).stage).toBe("STAGE_HALTED");
    expect([(await events("cart")).length, (await events("search")).length]).toEqual(counts);
    expect(await metric(server.url, /^rollgate_alertmanager_alerts_total\{status="resolved",action="none",outcome="resolved"\}/)).toBe(2);
  });

  it("acknowledges alerts for unknown rollouts, alerts without a rollout label, and actions a stage refuses", async () => {
    await rpc(server.url, "Promote", { name: "payments", target: "PROMOTE_TARGET_PRODUCTION", force: true, reason: "done" });
    const res = await post(
      server.url,
      notification([
        { labels: { alertname: "Ghost", rollout: "no-such-rollout" } },
        { labels: { alertname: "DiskFull", instance: "db-1" } },
        { labels: { alertname: "PaymentsErrors", rollout: "payments", rollgate_action: "rollback" } },
      ]),
    );
    expect(res.status).toBe(200);
    expect(res.json.alerts.map((a: any) => a.outcome)).toEqual(["unknown_rollout", "no_rollout", "not_applicable"]);
    expect(res.json.alerts[2].message).toMatch(/PRODUCTION/);
    expect((await rollout("payments")).stage).toBe("STAGE_PRODUCTION");
  });

  it("refuses malformed or wrongly shaped payloads with 400 naming the field, and changes nothing", async () => {
    await rpc(server.url, "CreateRollout", { rollout: { name: "untouched", stableVersion: "v1", canaryVersion: "v2" } });
    const good = () => notification([{ labels: { alertname: "A", rollout: "untouched" } }]);
    const cases: [unknown, RegExp][] = [
      ["{not json", /not JSON/],
      ["[1,2]", /must be a JSON object/],
      [{ ...good(), version: "3" }, /^version: must be "4"/],
      [{ ...good(), version: 4 }, /^version: must be "4"/],
      [{ ...good(), alerts: undefined }, /^alerts: is required/],
      [{ ...good(), alerts: {} }, /^alerts: is required \(an array\)/],
      [{ ...good(), status: "pending" }, /^status: must be one of firing, resolved/],
      [{ ...good(), truncatedAlerts: -1 }, /^truncatedAlerts: must be a non-negative integer/],
      [{ ...good(), commonLabels: { a: 1 } }, /^commonLabels\.a: must be a string/],
      [{ ...good(), groupKey: 7 }, /^groupKey: must be a string/],
      [{ ...good(), alerts: [null] }, /^alerts\[0\]: must be an object/],
      [{ ...good(), alerts: [{ ...(good().alerts as any[])[0], labels: undefined }] }, /^alerts\[0\]\.labels: is required/],
      [{ ...good(), alerts: [{ ...(good().alerts as any[])[0], labels: { rollout: ["untouched"] } }] }, /^alerts\[0\]\.labels\.rollout: must be a string/],
      [{ ...good(), alerts: [{ ...(good().alerts as any[])[0], labels: { rollout: "Untouched!" } }] }, /^alerts\[0\]\.labels\.rollout: must match/],
      [{ ...good(), alerts: [{ ...(good().alerts as any[])[0], labels: { rollout: "untouched", rollgate_action: "rolback" } }] }, /^alerts\[0\]\.labels\.rollgate_action: "rolback" must be one of halt, rollback, pause/],
      [{ ...good(), alerts: [{ ...(good().alerts as any[])[0], status: "ok" }] }, /^alerts\[0\]\.status: must be one of/],
      [{ ...good(), alerts: [{ ...(good().alerts as any[])[0], startsAt: "yesterday" }] }, /^alerts\[0\]\.startsAt: must be an RFC 3339 time/],
      [{ ...good(), alerts: [{ ...(good().alerts as any[])[0], annotations: { summary: null } }] }, /^alerts\[0\]\.annotations\.summary: must be a string/],
      [{ ...good(), alerts: [{ ...(good().alerts as any[])[0], fingerprint: 12 }] }, /^alerts\[0\]\.fingerprint: must be a string/],
    ];
    // A good alert first and a bad one after: the bad one refuses the whole notification.
    const mixed = good();
    mixed.alerts = [...(good().alerts as any[]), { ...(good().alerts as any[])[0], labels: { rollout: "untouched", rollgate_action: "explode" } }];
    cases.push([mixed, /^alerts\[1\]\.labels\.rollgate_action/]);
    for (const [body, message] of cases) {
      const res = await post(server.url, body);
      expect([res.status, res.json.error]).toEqual([400, expect.stringMatching(message)]);
    }
    const wrongType = await fetch(`${server.url}${ALERTMANAGER_PATH}`, { method: "POST", headers: { "content-type": "text/plain" }, body: JSON.stringify(good()) });
    expect(wrongType.status).toBe(415);
    expect((await fetch(`${server.url}${ALERTMANAGER_PATH}`)).status).toBe(405);
    const r = await rollout("untouched");
    expect([r.stage, r.version]).toEqual(["STAGE_CANARY", "1"]);
    expect(await metric(server.url, /^rollgate_alertmanager_refused_total\{status="400"\}/)).toBe(cases.length);
  });

  it("answers over HTTP/2 (h2c) too, on the same port", async () => {
    const session = http2.connect(server.url);
    try {
      const h2post = (body: string) =>
        new Promise<{ status: number; json: any }>((resolve, reject) => {
          const req = session.request({ ":method": "POST", ":path": ALERTMANAGER_PATH, "content-type": "application/json" });
          let text = "";
          let status = 0;
          req.on("response", (h) => (status = Number(h[":status"])));
          req.setEncoding("utf8").on("data", (d: string) => (text += d));
          req.on("end", () => resolve({ status, json: JSON.parse(text) }));
          req.on("error", reject);
          req.end(body);
        });
      const ok = await h2post(JSON.stringify(notification([{ labels: { alertname: "Ghost", rollout: "nobody" } }])));
      expect([ok.status, ok.json.alerts[0].outcome]).toEqual([200, "unknown_rollout"]);
      const bad = await h2post(JSON.stringify({ version: "4", status: "firing" }));
      expect([bad.status, bad.json.error]).toEqual([400, "alerts: is required (an array)"]);
    } finally {
      session.close();
    }
  });

  it("bounds the payload: more than 1 MiB or more than 1,000 alerts is 413, and changes nothing", async () => {
    const alert = { labels: { alertname: "Many", rollout: "untouched" } };
    const many = await post(server.url, notification(Array.from({ length: ALERTMANAGER_MAX_ALERTS + 1 }, () => alert)));
    expect([many.status, many.json.error]).toEqual([413, expect.stringMatching(/at most 1000 alerts/)]);
    const huge = notification([{ labels: { alertname: "Huge", rollout: "untouched" }, annotations: { summary: "x".repeat(ALERTMANAGER_MAX_BODY_BYTES) } }]);
    const big = await post(server.url, huge);
    expect([big.status, big.json.error]).toEqual([413, expect.stringMatching(/exceeds 1048576 bytes/)]);
    // Without a declared length (chunked), the count is made as the body arrives.
    const text = JSON.stringify(huge);
    const chunked = await fetch(`${server.url}${ALERTMANAGER_PATH}`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: new ReadableStream({
        start(c) {
          for (let i = 0; i < text.length; i += 65536) c.enqueue(new TextEncoder().encode(text.slice(i, i + 65536)));
          c.close();
        },
      }),
      duplex: "half",
    } as RequestInit).catch((e: unknown) => e as Error);
    // The server answers 413 and closes the connection; the client sees the answer or the close.
    if (chunked instanceof Response) expect(chunked.status).toBe(413);
    else expect(String(chunked)).toMatch(/fetch failed|terminated|socket/i);
    const r = await rollout("untouched");
    expect([r.stage, r.version]).toEqual(["STAGE_CANARY", "1"]);
  });
});

describe("the README's Alertmanager example", () => {
  it("halts checkout as written", async () => {
    const server = await startTestServer();
    try {
      await rpc(server.url, "CreateRollout", { rollout: { name: "checkout", stableVersion: "v1.4.2", canaryVersion: "v1.5.0" } });
      const readme = readFileSync(join(repoRoot, "README.md"), "utf8");
      const start = readme.indexOf("### Halting on an Alertmanager alert");
      const block = /```sh\n([\s\S]*?)```/.exec(readme.slice(start, readme.indexOf("### Outbound notifications")))![1]!;
      // Not spawnSync: the server answering it runs in this process.
      const r = await new Promise<{ status: number | null; stdout: string }>((resolve) => {
        const child = spawn("bash", ["-e", "-c", block.replaceAll("localhost:8080", server.address)], { timeout: 20_000 });
        let stdout = "";
        child.stdout.setEncoding("utf8").on("data", (d: string) => (stdout += d));
        child.on("close", (status) => resolve({ status, stdout }));
      });
      expect(r.status).toBe(0);
      expect(JSON.parse(r.stdout).alerts).toEqual([
        { alertname: "CheckoutCanaryErrors", fingerprint: "5f3c1a9b2d4e6f70", rollout: "checkout", action: "halt", outcome: "applied", stage: "halted" },
      ]);
      const last = (await rpc(server.url, "ListEvents", { name: "checkout" })).events.at(-1);
      expect(last).toMatchObject({ type: "EVENT_TYPE_HALTED", actor: "alertmanager", reason: "checkout canary 5xx ratio 7.1% over 5%" });
    } finally {
      await server.stop();
    }
  });
});

describe("POST /webhooks/alertmanager with tokens", () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer({}, { tokens: TEST_TOKENS });
    await rpc(server.url, "CreateRollout", { rollout: { name: "checkout", stableVersion: "v1", canaryVersion: "v2" } }, OPERATOR);
  });
  afterAll(() => server?.stop());

  it("needs a bearer token of role operator, as the Halt RPC does", async () => {
    const body = notification([{ labels: { alertname: "CheckoutErrors", rollout: "checkout" }, annotations: { summary: "errors" } }]);
    const none = await post(server.url, body);
    expect([none.status, none.json.error]).toEqual([401, "missing bearer token (authorization: Bearer <token>)"]);
    const unknown = await post(server.url, body, { authorization: "Bearer not-a-token-at-all" });
    expect([unknown.status, unknown.json.error]).toEqual([401, "unknown token"]);
    const reader = await post(server.url, body, { authorization: `Bearer ${READER}` });
    expect([reader.status, reader.json.error]).toEqual([403, expect.stringMatching(/token "dash" has role reader; .* needs operator/)]);
    expect((await rpc(server.url, "GetRollout", { name: "checkout" }, READER)).rollout.stage).toBe("STAGE_CANARY");
    const ok = await post(server.url, body, { authorization: `Bearer ${OPERATOR}` });
    expect([ok.status, ok.json.alerts[0].outcome]).toEqual([200, "applied"]);
    const last = (await rpc(server.url, "ListEvents", { name: "checkout" }, READER)).events.at(-1);
    // The receiver's changes are the receiver's, whoever holds the token Alertmanager sends.
    expect(last).toMatchObject({ type: "EVENT_TYPE_HALTED", actor: "alertmanager", reason: "errors" });
  });
});

describe("POST /webhooks/alertmanager on PostgreSQL", () => {
  let cluster: PostgresCluster;
  beforeAll(async () => {
    cluster = await startPostgres();
  }, 60_000);
  afterAll(() => cluster?.stop());

  it("answers 503 while the database is down, so that Alertmanager retries, and acts once it is back", async () => {
    const db = await cluster.createDatabase();
    const server = await startServer(loadConfig({ listen: "127.0.0.1:0", db, logLevel: "silent" }, {}), {
      logger: pino({ level: "silent" }),
      databasePingMs: 100,
    });
    try {
      await rpc(server.url, "CreateRollout", { rollout: { name: "checkout", stableVersion: "v1", canaryVersion: "v2" } });
      const body = notification([{ labels: { alertname: "CheckoutErrors", rollout: "checkout" }, annotations: { summary: "errors" } }]);
      cluster.kill();
      try {
        // Before the ping notices, the change itself fails with UNAVAILABLE: 503 either way.
        const down = await post(server.url, body);
        expect([down.status, down.json.error]).toEqual([503, expect.stringMatching(/database|try again/)]);
        for (let i = 0; i < 100 && (await fetch(`${server.url}/readyz`)).status !== 503; i++) await new Promise((r) => setTimeout(r, 50));
        const stillDown = await post(server.url, body);
        expect([stillDown.status, stillDown.json.error]).toEqual([503, "the database is unreachable; nothing was changed"]);
      } finally {
        cluster.start();
      }
      for (let i = 0; i < 200 && (await fetch(`${server.url}/readyz`)).status !== 200; i++) await new Promise((r) => setTimeout(r, 50));
      const retried = await post(server.url, body);
      expect([retried.status, retried.json.alerts[0].outcome]).toEqual([200, "applied"]);
      expect((await rpc(server.url, "GetRollout", { name: "checkout" })).rollout.stage).toBe("STAGE_HALTED");
    } finally {
      await server.close();
    }
  }, 90_000);
});
