import { Code, ConnectError } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TEST_TOKENS, startTestServer, type TestServer } from "../../../test/helpers/servers.js";
import { createRollgateClient, type RollgateClient } from "../src/index.js";
import { createRollgateClient as createWebClient } from "../src/web.js";
import { Verdict } from "../src/gen/rollgate/v1/health_pb.js";
import { Stage } from "../src/gen/rollgate/v1/rollout_pb.js";
import { closedPortUrl, startSilentServer, startTcpProxy } from "./tcp-proxy.js";
import { VECTOR_FILES, readVectors, type Vector } from "./vectors.js";

let server: TestServer;
beforeAll(async () => {
  server = await startTestServer();
});
afterAll(async () => {
  await server.stop();
});

const PROTOCOLS = ["grpc", "connect"] as const;

/** Creates a rollout through the client's generated control-plane client. */
async function createRollout(client: RollgateClient, name: string, extra: Record<string, unknown> = {}) {
  const r = await client.rollouts.createRollout({ rollout: { name, stableVersion: "v1", canaryVersion: "v2", ...extra }, reason: "client test" });
  return r.rollout!;
}

describe.each(PROTOCOLS)("the TypeScript client over %s against a live server", (protocol) => {
  let client: RollgateClient;
  beforeAll(() => {
    client = createRollgateClient({ baseUrl: server.url, protocol });
  });
  afterAll(async () => {
    await client.close();
  });

  it.each(VECTOR_FILES)("routes every key of %s to the vector's bucket and variant", async (file) => {
    const vectors = readVectors(file);
    const bySalt = new Map<string, Vector[]>();
    for (const v of vectors) bySalt.set(v.salt, [...(bySalt.get(v.salt) ?? []), v]);
    let n = 0;
    let checked = 0;
    for (const [salt, rows] of bySalt) {
      const name = `vec-${protocol}-${file.includes("reference") ? "ref" : "own"}-${n++}`;
      await createRollout(client, name, { salt });
      for (const weightBp of [...new Set(rows.map((r) => r.weight_bp))]) {
        await client.rollouts.setWeight({ name, weightBp, reason: "vector weight" });
        const atWeight = rows.filter((r) => r.weight_bp === weightBp);
        const results = await client.routeBatch(name, atWeight.map((r) => r.key));
        atWeight.forEach((v, i) => {
          const r = results[i]!;
          expect({ key: v.key, bucket: r.bucket, variant: r.variant, weightBp: r.weightBp }).toEqual({
            key: v.key,
            bucket: v.bucket,
            variant: v.variant === "VARIANT_CANARY" ? "canary" : "stable",
            weightBp,
          });
          expect(r.version).toBe(r.variant === "canary" ? "v2" : "v1");
          checked++;
        });
        const first = atWeight[0]!;
        const single = await client.route(name, first.key);
        expect([single.bucket, single.variant, single.reason]).toEqual([first.bucket, first.variant === "VARIANT_CANARY" ? "canary" : "stable", "weight"]);
      }
    }
    expect(checked).toBe(vectors.length);
  });

  it("route answers variant and version, and reports a refusal with the server's code and message", async () => {
    await createRollout(client, `route-${protocol}`);
    await client.rollouts.setOverride({ name: `route-${protocol}`, key: "vip", variant: 2, reason: "pin" });
    expect(await client.route(`route-${protocol}`, "vip")).toMatchObject({ variant: "canary", version: "v2", reason: "override", rolloutVersion: 2n });
    const missing = await client.route("no-such-rollout", "k").catch((e: unknown) => e);
    expect(missing).toBeInstanceOf(ConnectError);
    expect(missing).toMatchObject({ code: Code.NotFound, rawMessage: 'rollout "no-such-rollout" not found' });
    await expect(client.route(`route-${protocol}`, "")).rejects.toMatchObject({ code: Code.InvalidArgument, rawMessage: "key: must not be empty" });
  });

  it("buffers outcomes: a rollout's 500th outcome sends a batch at once, the rest goes on flush(); Health counts every one", async () => {
    const name = `outcomes-${protocol}`;
    await createRollout(client, name, { gates: [{ name: "errors", minSamples: 10n, kind: { case: "errorRate", value: { max: 0.05 } } }] });
    const before = client.outcomeStats();
    for (let i = 0; i < 700; i++) client.recordOutcome(name, { variant: "canary", success: true, latencyMs: 5 + (i % 10), key: `u${i}` });
    for (let i = 0; i < 250; i++) client.recordOutcome(name, { variant: "stable", success: i % 100 !== 0, latencyMs: 7 });
    // The rollout's 500th outcome started a batch by itself: it is on the wire or delivered already.
    expect(client.outcomeStats().buffered - before.buffered).toBe(450);
    await client.flush();
    const after = client.outcomeStats();
    expect(after.sent - before.sent).toBe(950);
    expect(after.accepted - before.accepted).toBe(950);
    expect(after.batches - before.batches).toBe(2);
    expect(after.buffered).toBe(0);
    await expect.poll(async () => (await client.health(name)).samples, { timeout: 15_000 }).toMatchObject({ canary: 700n, stable: 250n });
    const health = await client.health(name);
    expect(health.rollout).toBe(name);
    expect(health.stage).toBe(Stage.CANARY);
    const gate = health.gates.find((g) => g.name === "errors");
    expect(gate).toMatchObject({ kind: "error_rate", samples: 700n, observed: 0 });
    expect([Verdict.PASS, Verdict.INCONCLUSIVE]).toContain(gate!.verdict);
  });

  it("flushes on its own timer, without flush() or close()", async () => {
    const name = `timer-${protocol}`;
    await createRollout(client, name);
    const before = client.outcomeStats().sent;
    for (let i = 0; i < 3; i++) client.recordOutcome(name, { variant: "stable", success: true, latencyMs: 1 });
    await expect.poll(() => client.outcomeStats().sent - before, { timeout: 10_000 }).toBe(3);
    await expect.poll(async () => (await client.health(name)).samples?.stable, { timeout: 15_000 }).toBe(3n);
  });

  it("close() delivers what is still buffered", async () => {
    const name = `close-${protocol}`;
    await createRollout(client, name);
    const own = createRollgateClient({ baseUrl: server.url, protocol, outcomes: { flushIntervalMs: 3_600_000 } });
    for (let i = 0; i < 42; i++) own.recordOutcome(name, { variant: "canary", success: true, latencyMs: 3 });
    expect(own.outcomeStats()).toMatchObject({ buffered: 42, sent: 0 });
    await own.close();
    expect(own.outcomeStats()).toMatchObject({ buffered: 0, sent: 42, accepted: 42 });
    expect(() => own.recordOutcome(name, { variant: "canary", success: true, latencyMs: 3 })).toThrow(/closed/);
    await expect.poll(async () => (await client.health(name)).samples?.canary, { timeout: 15_000 }).toBe(42n);
  });

  it("watchHealth yields the current health first, then an update per change", async () => {
    const name = `watch-${protocol}`;
    await createRollout(client, name);
    const stop = new AbortController();
    const seen: { seq: bigint; paused: boolean; stage: Stage }[] = [];
    for await (const u of client.watchHealth(name, { signal: stop.signal })) {
      expect(u.health?.rollout).toBe(name);
      seen.push({ seq: u.seq, paused: u.health!.paused, stage: u.health!.stage });
      if (seen.length === 1) await client.rollouts.pause({ name, reason: "watch test" });
      if (u.health!.paused) stop.abort();
    }
    expect(seen[0]).toMatchObject({ seq: 1n, paused: false, stage: Stage.CANARY });
    expect(seen.at(-1)).toMatchObject({ paused: true });
    expect(seen.map((s) => s.seq)).toEqual(seen.map((_, i) => BigInt(i + 1)));
  });

  it("watchHealth reconnects after the connection is cut and goes on with the next change", async () => {
    const name = `reconnect-${protocol}`;
    await createRollout(client, name);
    const proxy = await startTcpProxy(server.host, server.port);
    const viaProxy = createRollgateClient({ baseUrl: proxy.url, protocol, watch: { reconnect: { initialBackoffMs: 20, maxBackoffMs: 200 } } });
    const reconnects: (Code | undefined)[] = [];
    try {
      const stages: string[] = [];
      let lastSeq = 0n;
      for await (const u of viaProxy.watchHealth(name, { onReconnect: (e) => reconnects.push(e?.code) })) {
        expect(u.seq).toBeGreaterThan(lastSeq);
        lastSeq = u.seq;
        const h = u.health!;
        stages.push(h.paused ? "paused" : Stage[h.stage]);
        if (stages.length === 1) {
          proxy.cut();
          // The change happens while the watch is down or reconnecting; it must still arrive.
          await client.rollouts.pause({ name, reason: "while disconnected" });
        }
        if (h.paused) break;
      }
      expect(stages[0]).toBe("CANARY");
      expect(stages.at(-1)).toBe("paused");
      expect(reconnects.length).toBeGreaterThanOrEqual(1);
      expect(proxy.connections()).toBeGreaterThanOrEqual(2);
    } finally {
      await viaProxy.close();
      await proxy.close();
    }
  });

  it("applies the deadline to a server that never answers", async () => {
    const silent = await startSilentServer();
    const c = createRollgateClient({ baseUrl: silent.url, protocol, timeoutMs: 300 });
    try {
      await expect(c.route("any", "k")).rejects.toMatchObject({ code: Code.DeadlineExceeded });
    } finally {
      await c.close();
      await silent.close();
    }
  });

  it("reports UNAVAILABLE once retries against a closed port are used up", async () => {
    const c = createRollgateClient({ baseUrl: await closedPortUrl(), protocol, retry: { initialBackoffMs: 1, maxBackoffMs: 5 } });
    try {
      await expect(c.route("any", "k")).rejects.toMatchObject({ code: Code.Unavailable });
    } finally {
      await c.close();
    }
  });
});

describe("bearer tokens", () => {
  let secured: TestServer;
  beforeAll(async () => {
    secured = await startTestServer({}, { tokens: TEST_TOKENS });
  });
  afterAll(async () => {
    await secured.stop();
  });

  it.each(PROTOCOLS)("sends the configured token over %s; none or a wrong one is UNAUTHENTICATED, not retried", async (protocol) => {
    const operator = createRollgateClient({ baseUrl: secured.url, protocol, token: "operator-token-0123456789" });
    const app = createRollgateClient({ baseUrl: secured.url, protocol, token: () => "reporter-token-0123456789" });
    const anonymous = createRollgateClient({ baseUrl: secured.url, protocol });
    try {
      const name = `secured-${protocol}`;
      const created = await operator.rollouts.createRollout({ rollout: { name, stableVersion: "a", canaryVersion: "b" }, reason: "t" });
      expect(created.rollout?.createdBy).toBe("deployer");
      expect((await app.route(name, "k")).version).toMatch(/^[ab]$/);
      await expect(anonymous.route(name, "k")).rejects.toMatchObject({ code: Code.Unauthenticated });
      await expect(app.rollouts.halt({ name, reason: "no" })).rejects.toMatchObject({ code: Code.PermissionDenied });
    } finally {
      await Promise.all([operator.close(), app.close(), anonymous.close()]);
    }
  });
});

describe("the browser entry (rollgate-client/web)", () => {
  it("routes over Connect with fetch only", async () => {
    const web = createWebClient({ baseUrl: server.url });
    try {
      await web.rollouts.createRollout({ rollout: { name: "web-entry", stableVersion: "s", canaryVersion: "c", salt: "checkout-v2" } });
      await web.rollouts.setWeight({ name: "web-entry", weightBp: 2761, reason: "t" });
      // From the reference vectors: checkout-v2/user-1 is bucket 2760.
      expect(await web.route("web-entry", "user-1")).toMatchObject({ bucket: 2760, variant: "canary", version: "c" });
    } finally {
      await web.close();
    }
  });
});
