import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { create, fromJson, type JsonValue } from "@bufbuild/protobuf";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestServer, tempDir, type TestServer } from "../../../test/helpers/servers.js";
import {
  applyRoutesMessage,
  compileRouteState,
  createLocalMode,
  createLocalRollgateClient,
  createRollgateClient,
  MalformedStateError,
  routeTable,
  type LocalRollgateClient,
  type LocalStats,
  type RollgateClient,
  type RouteResult,
} from "../src/index.js";
import { RouteStateSchema, WatchRoutesResponseSchema, type WatchRoutesResponse } from "../src/gen/rollgate/v1/decision_service_pb.js";
import { PromoteTarget } from "../src/gen/rollgate/v1/rollout_service_pb.js";
import { Stage, Variant } from "../src/gen/rollgate/v1/rollout_pb.js";
import { closedPortUrl, startTcpProxy } from "./tcp-proxy.js";

interface RoutingVector {
  state: JsonValue;
  key: string;
  want: { variant: string; version: string; bucket: number; weightBp: number; features: string[]; reason: string; rolloutVersion: number };
}
const routingVectors = (
  JSON.parse(readFileSync(new URL("../../../vectors/routing-v1.json", import.meta.url), "utf8")) as { vectors: RoutingVector[] }
).vectors;

const quiet = { warn: () => undefined };
const plain = (r: RouteResult) => ({ ...r, features: [...r.features] });

describe("routing spec v1 in process", () => {
  it(`gives the vector's answer for all ${routingVectors.length} vectors`, () => {
    expect(routingVectors.length).toBeGreaterThan(500);
    for (const v of routingVectors) {
      const got = routeTable(compileRouteState(fromJson(RouteStateSchema, v.state)), v.key);
      expect({ key: v.key, got: plain(got) }).toEqual({
        key: v.key,
        got: {
          variant: v.want.variant === "VARIANT_CANARY" ? "canary" : "stable",
          version: v.want.version,
          bucket: v.want.bucket,
          weightBp: v.want.weightBp,
          features: v.want.features,
          reason: v.want.reason.replace("ROUTE_REASON_", "").toLowerCase(),
          rolloutVersion: BigInt(v.want.rolloutVersion),
        },
      });
    }
  });

  it("refuses a malformed message whole and leaves the state as it was", () => {
    const good = create(WatchRoutesResponseSchema, { revision: 3n, reset: true, routes: [{ rollout: "a", stage: Stage.CANARY, weightBp: 500, stableVersion: "v1", canaryVersion: "v2" }] });
    const tables = applyRoutesMessage(new Map(), good);
    for (const bad of [
      { routes: [{ rollout: "a", stage: 99 as Stage, weightBp: 10 }] },
      { routes: [{ rollout: "a", stage: Stage.CANARY, weightBp: 10_001 }] },
      { routes: [{ rollout: "", stage: Stage.CANARY }] },
      { routes: [{ rollout: "b", stage: Stage.CANARY, overrides: { k: Variant.UNSPECIFIED } }] },
      { removed: [""] },
    ]) {
      const m = create(WatchRoutesResponseSchema, { revision: 4n, ...bad });
      expect(() => applyRoutesMessage(tables, m)).toThrow(MalformedStateError);
      expect([...tables.keys()]).toEqual(["a"]);
      expect(tables.get("a")!.weightBp).toBe(500);
    }
  });
});

describe("local mode against a scripted stream", () => {
  /** A stream function that yields what the test pushes, and hangs otherwise. */
  function scripted() {
    const pending: WatchRoutesResponse[] = [];
    let wake: (() => void) | undefined;
    const requests: { afterRevision: bigint }[] = [];
    return {
      requests,
      push(m: Parameters<typeof create<typeof WatchRoutesResponseSchema>>[1]) {
        pending.push(create(WatchRoutesResponseSchema, m));
        wake?.();
      },
      open: (req: { rollouts: string[]; afterRevision: bigint }, signal: AbortSignal) => {
        requests.push(req);
        return (async function* () {
          while (!signal.aborted) {
            const m = pending.shift();
            if (m !== undefined) {
              yield m;
              continue;
            }
            await new Promise<void>((resolve) => {
              wake = resolve;
              signal.addEventListener("abort", () => resolve(), { once: true });
            });
          }
        })();
      },
    };
  }

  it("logs a malformed message, counts it and keeps answering from the last good state", async () => {
    const s = scripted();
    const warnings: string[] = [];
    const remote = createRollgateClient({ baseUrl: await closedPortUrl() });
    const local = createLocalMode(remote, s.open, { logger: { warn: (m) => warnings.push(m) } });
    s.push({ revision: 5n, reset: true, routes: [{ rollout: "a", stage: Stage.CANARY, weightBp: 10_000, salt: "a", stableVersion: "v1", canaryVersion: "v2", rolloutVersion: 2n }] });
    expect(await local.ready(5000)).toBe(true);
    s.push({ revision: 6n, routes: [{ rollout: "a", stage: 42 as Stage, weightBp: 0 }] });
    await expect.poll(() => local.stats().malformed).toBe(1);
    expect(warnings.some((w) => w.includes("malformed"))).toBe(true);
    expect(local.route("a", "user-1")).toMatchObject({ variant: "canary", version: "v2", reason: "weight", rolloutVersion: 2n });
    expect(local.stats().revision).toBe(5n);
    await local.close();
  });

  it("reports staleness in stats() and through onStaleChange when the server goes quiet", async () => {
    const s = scripted();
    const changes: [boolean, LocalStats][] = [];
    const remote = createRollgateClient({ baseUrl: await closedPortUrl() });
    const local = createLocalMode(remote, s.open, { staleAfterMs: 200, onStaleChange: (stale, st) => changes.push([stale, st]), logger: quiet });
    s.push({ revision: 1n, reset: true, routes: [] });
    await local.ready();
    await expect.poll(() => changes.length, { timeout: 5000 }).toBe(1);
    expect(changes[0]![0]).toBe(true);
    expect(changes[0]![1].sinceLastHeardMs).toBeGreaterThan(200);
    expect(local.stats().stale).toBe(true);
    s.push({ revision: 1n });
    await expect.poll(() => changes.length, { timeout: 5000 }).toBe(2);
    expect(changes[1]![0]).toBe(false);
    expect(local.stats().stale).toBe(false);
    await local.close();
  });
});

describe("local mode against a live server", () => {
  let server: TestServer;
  let admin: RollgateClient;
  const stages = ["canary", "staging", "production", "rolled_back", "halted"] as const;
  const keys = Array.from({ length: 10_000 }, (_, i) => (i % 97 === 0 ? `ключ-${i}-🚀` : `user-${i}`));

  beforeAll(async () => {
    server = await startTestServer();
    admin = createRollgateClient({ baseUrl: server.url });
    for (const stage of stages) {
      const name = `local-${stage.replace("_", "-")}`;
      await admin.rollouts.createRollout({
        rollout: { name, stableVersion: `${stage}-v1`, canaryVersion: `${stage}-v2`, features: { "new-ui": true, legacy: false }, salt: `salt-${stage}` },
        reason: "local test",
      });
      await admin.rollouts.setOverride({ name, key: "user-7", variant: Variant.CANARY });
      await admin.rollouts.setOverride({ name, key: "user-8", variant: Variant.STABLE });
      if (stage === "canary") await admin.rollouts.setWeight({ name, weightBp: 3300 });
      if (stage === "staging") await admin.rollouts.promote({ name, target: PromoteTarget.STAGING, force: true, reason: "test" });
      if (stage === "production") await admin.rollouts.promote({ name, target: PromoteTarget.PRODUCTION, force: true, reason: "test" });
      if (stage === "rolled_back") await admin.rollouts.rollback({ name, reason: "test" });
      if (stage === "halted") await admin.rollouts.halt({ name, reason: "test" });
    }
  });
  afterAll(async () => {
    await admin.close();
    await server.stop();
  });

  it("answers exactly what Route answers, for 10,000 keys in every stage", async () => {
    const local = createLocalRollgateClient({ baseUrl: server.url, local: { logger: quiet } });
    try {
      expect(await local.ready()).toBe(true);
      expect(local.stats()).toMatchObject({ ready: true, source: "server", connected: true, rollouts: 5 });
      for (const stage of stages) {
        const name = `local-${stage.replace("_", "-")}`;
        for (let i = 0; i < keys.length; i += 1000) {
          const batch = keys.slice(i, i + 1000);
          const remote = await admin.routeBatch(name, batch);
          batch.forEach((k, j) => expect(plain(local.route(name, k))).toEqual(plain(remote[j]!)));
        }
      }
      expect(local.stats().decisions).toBe(50_000);
      expect(local.stats().fallbacks).toEqual({ notReady: 0, unknownRollout: 0, invalidKey: 0 });
    } finally {
      await local.close();
    }
  });

  it("follows live changes, and answers a counted fallback for an unknown rollout or an invalid key", async () => {
    const local = createLocalRollgateClient({ baseUrl: server.url, local: { logger: quiet } });
    try {
      await local.ready();
      await admin.rollouts.setWeight({ name: "local-canary", weightBp: 10_000 });
      await expect.poll(() => local.route("local-canary", "user-1").weightBp, { timeout: 10_000 }).toBe(10_000);
      expect(plain(local.route("local-canary", "user-1"))).toEqual(plain(await admin.route("local-canary", "user-1")));
      await admin.rollouts.createRollout({ rollout: { name: "local-later", stableVersion: "a", canaryVersion: "b" }, reason: "later" });
      await expect.poll(() => local.route("local-later", "user-1").reason, { timeout: 10_000 }).toBe("weight");
      expect(local.route("nope", "user-1")).toMatchObject({ variant: "stable", reason: "fallback", version: "" });
      expect(local.route("local-canary", "")).toMatchObject({ variant: "stable", reason: "fallback" });
      expect(local.route("local-canary", "x".repeat(1025)).reason).toBe("fallback");
      expect(local.stats().fallbacks).toEqual({ notReady: 0, unknownRollout: 1, invalidKey: 2 });
      await admin.rollouts.deleteRollout({ name: "local-later", reason: "gone" });
      await expect.poll(() => local.route("local-later", "user-1").reason, { timeout: 10_000 }).toBe("fallback");
      await admin.rollouts.setWeight({ name: "local-canary", weightBp: 3300 });
    } finally {
      await local.close();
    }
  });

  it("keeps answering through a cut connection, then reconnects and resumes from its revision", async () => {
    const proxy = await startTcpProxy("127.0.0.1", server.port);
    const local = createLocalRollgateClient({ baseUrl: proxy.url, local: { logger: quiet, reconnect: { initialBackoffMs: 50, maxBackoffMs: 200 } } });
    try {
      await local.ready();
      const before = local.route("local-canary", "user-42");
      const revision = local.stats().revision;
      proxy.cut();
      expect(local.route("local-canary", "user-42")).toEqual(before);
      await admin.rollouts.setWeight({ name: "local-canary", weightBp: 9000 });
      await expect.poll(() => local.route("local-canary", "user-42").weightBp, { timeout: 10_000 }).toBe(9000);
      expect(local.stats().reconnects).toBeGreaterThanOrEqual(1);
      expect(local.stats().revision).toBeGreaterThan(revision);
      await admin.rollouts.setWeight({ name: "local-canary", weightBp: 3300 });
    } finally {
      await local.close();
      await proxy.close();
    }
  });

  it("watching two rollouts, one deleted: a reconnect still resumes and the other's changes arrive", async () => {
    await admin.rollouts.createRollout({ rollout: { name: "local-doomed", stableVersion: "a", canaryVersion: "b" }, reason: "to delete" });
    const proxy = await startTcpProxy("127.0.0.1", server.port);
    const warnings: string[] = [];
    const local = createLocalRollgateClient({
      baseUrl: proxy.url,
      local: { rollouts: ["local-canary", "local-doomed"], logger: { warn: (m) => warnings.push(m) }, reconnect: { initialBackoffMs: 50, maxBackoffMs: 200 } },
    });
    try {
      await local.ready();
      expect(local.stats().rollouts).toBe(2);
      await admin.rollouts.deleteRollout({ name: "local-doomed", reason: "gone" });
      await expect.poll(() => local.route("local-doomed", "user-1").reason, { timeout: 10_000 }).toBe("fallback");
      const connections = proxy.connections();
      proxy.cut();
      await admin.rollouts.setWeight({ name: "local-canary", weightBp: 8100 });
      await expect.poll(() => local.route("local-canary", "user-42").weightBp, { timeout: 10_000 }).toBe(8100);
      expect(proxy.connections()).toBeGreaterThan(connections);
      expect(local.stats()).toMatchObject({ connected: true, rollouts: 1 });
      expect(warnings).toEqual([]);
      await admin.rollouts.setWeight({ name: "local-canary", weightBp: 3300 });
    } finally {
      await local.close();
      await proxy.close();
    }
  });

  it("before any state: answers the fallback (counted), and ready() resolves false at its timeout", async () => {
    const local = createLocalRollgateClient({ baseUrl: await closedPortUrl(), local: { logger: quiet, fallback: "canary", startupTimeoutMs: 300 } });
    try {
      const r = local.route("local-canary", "user-1");
      expect(r).toMatchObject({ variant: "canary", version: "", reason: "fallback", rolloutVersion: 0n });
      expect(await local.ready(200)).toBe(false);
      expect(local.stats()).toMatchObject({ ready: false, source: "none", fallbacks: { notReady: 1, unknownRollout: 0, invalidKey: 0 } });
    } finally {
      await local.close();
    }
  });

  it("persists the last state and starts from it when the server is unreachable at boot", async () => {
    const tmp = tempDir();
    const persistPath = join(tmp.dir, "routes.json");
    let answers: RouteResult[];
    const first: LocalRollgateClient = createLocalRollgateClient({ baseUrl: server.url, local: { logger: quiet, persistPath } });
    try {
      await first.ready();
      answers = stages.map((s) => first.route(`local-${s.replace("_", "-")}`, "user-3"));
    } finally {
      await first.close();
    }
    expect(existsSync(persistPath)).toBe(true);
    const warnings: string[] = [];
    const offline = createLocalRollgateClient({ baseUrl: await closedPortUrl(), local: { logger: { warn: (m) => warnings.push(m) }, persistPath } });
    try {
      expect(await offline.ready(5000)).toBe(true);
      expect(offline.stats()).toMatchObject({ ready: true, source: "file", connected: false });
      expect(stages.map((s) => offline.route(`local-${s.replace("_", "-")}`, "user-3"))).toEqual(answers);
      expect(warnings.some((w) => w.includes("persisted state"))).toBe(true);
    } finally {
      await offline.close();
      tmp.cleanup();
    }
  });
});

describe("local mode over a connection that goes silent without closing", () => {
  it("aborts the stream after idleTimeoutMs, reports disconnected, and reconnects on a new connection", async () => {
    // Heartbeats every 200 ms, so that a healthy stream is never idle for 1.5 s.
    const server = await startTestServer({}, { keepaliveMs: 200 });
    const admin = createRollgateClient({ baseUrl: server.url });
    const proxy = await startTcpProxy("127.0.0.1", server.port);
    const warnings: string[] = [];
    const connection: boolean[] = [];
    const local = createLocalRollgateClient({
      baseUrl: proxy.url,
      local: { idleTimeoutMs: 1500, logger: { warn: (m) => warnings.push(m) }, reconnect: { initialBackoffMs: 50, maxBackoffMs: 200 } },
    });
    local.subscribe({ connection: (up) => connection.push(up) });
    try {
      await admin.rollouts.createRollout({ rollout: { name: "silent", stableVersion: "a", canaryVersion: "b" }, reason: "idle test" });
      expect(await local.ready(10_000)).toBe(true);
      await expect.poll(() => local.route("silent", "user-1").reason, { timeout: 10_000 }).toBe("weight");
      expect(local.stats().connected).toBe(true);
      const connections = proxy.connections();
      proxy.stall();
      await expect.poll(() => connection.includes(false), { timeout: 15_000 }).toBe(true);
      expect(warnings.some((w) => w.includes("no message from the server"))).toBe(true);
      await admin.rollouts.setWeight({ name: "silent", weightBp: 4200 });
      await expect.poll(() => local.route("silent", "user-1").weightBp, { timeout: 15_000 }).toBe(4200);
      expect(proxy.connections()).toBeGreaterThan(connections);
      expect(local.stats()).toMatchObject({ connected: true });
    } finally {
      await local.close();
      await proxy.close();
      await admin.close();
      await server.stop();
    }
  });
});
