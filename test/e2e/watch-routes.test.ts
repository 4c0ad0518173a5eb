import { spawn } from "node:child_process";
import * as http2 from "node:http2";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { setWeight } from "../../src/domain/rollout-machine.js";
import { compileRoutes, route } from "../../src/domain/routing.js";
import { routeToProto } from "../../src/service/convert.js";
import {
  createRoutesFeed,
  encodeRoutesMessage,
  routesMessageToProto,
  type RoutesMessage,
} from "../../src/service/watch-routes.js";
import {
  DecisionService,
  WatchRoutesRequestSchema,
  WatchRoutesResponseSchema,
  type RouteResponse,
  type RouteState,
  type WatchRoutesResponse,
} from "../../gen/rollgate/v1/decision_service_pb.js";
import { RolloutService } from "../../gen/rollgate/v1/rollout_service_pb.js";
import { Stage, Variant } from "../../gen/rollgate/v1/rollout_pb.js";
import { bearer, grpcJsClient, unary } from "../helpers/grpc-js.js";
import { grpcurlPath } from "../helpers/grpcurl.js";
import { specFixture } from "../helpers/rollouts.js";
import { TEST_TOKENS, startTestServer, type TestServer } from "../helpers/servers.js";

const op = bearer("operator-token-0123456789");
const reader = bearer("reader-token-01234567890");

/** A WatchRoutes call read message by message. */
function watch(c: grpc.Client & Record<string, unknown>, req: unknown, md = reader) {
  const call = (c.watchRoutes as (r: unknown, m: grpc.Metadata) => grpc.ClientReadableStream<WatchRoutesResponse>)(req, md);
  const queue: WatchRoutesResponse[] = [];
  let waiting: ((m: WatchRoutesResponse) => void) | undefined;
  let failure: grpc.ServiceError | undefined;
  let failed: ((e: grpc.ServiceError) => void) | undefined;
  call.on("data", (m: WatchRoutesResponse) => {
    if (waiting !== undefined) {
      const w = waiting;
      waiting = undefined;
      w(m);
    } else queue.push(m);
  });
  call.on("error", (e: grpc.ServiceError) => {
    failure = e;
    failed?.(e);
  });
  return {
    call,
    next(): Promise<WatchRoutesResponse> {
      const m = queue.shift();
      if (m !== undefined) return Promise.resolve(m);
      if (failure !== undefined) return Promise.reject(failure);
      return new Promise((resolve, reject) => {
        waiting = resolve;
        failed = reject;
      });
    },
    /** Skips heartbeats and messages that do not satisfy `want`. */
    async until(want: (m: WatchRoutesResponse) => boolean): Promise<WatchRoutesResponse> {
      for (;;) {
        const m = await this.next();
        if (want(m)) return m;
      }
    },
    error(): Promise<grpc.ServiceError> {
      if (failure !== undefined) return Promise.resolve(failure);
      return new Promise((resolve) => (failed = resolve));
    },
  };
}

/** Routes a key with the server's own routing code from a streamed RouteState. */
function routeFromState(s: RouteState, key: string): RouteResponse {
  const stages = { [Stage.CANARY]: "canary", [Stage.STAGING]: "staging", [Stage.PRODUCTION]: "production", [Stage.ROLLED_BACK]: "rolled_back", [Stage.HALTED]: "halted" } as const;
  const rollout = {
    name: s.rollout,
    version: Number(s.rolloutVersion),
    stage: stages[s.stage as keyof typeof stages],
    weightBp: s.weightBp,
    salt: s.salt,
    stableVersion: s.stableVersion,
    canaryVersion: s.canaryVersion,
    features: new Map(Object.entries(s.features)),
    overrides: new Map(Object.entries(s.overrides).map(([k, v]) => [k, v === Variant.CANARY ? "canary" : "stable"] as const)),
  };
  return routeToProto(route(compileRoutes(rollout as never), key));
}

const plain = (r: RouteResponse) => ({ ...r, $typeName: undefined });

for (const fast of [true, false]) {
  describe(`WatchRoutes over a real port, ${fast ? "gRPC fast path" : "connect-node path"}`, () => {
    let server: TestServer;
    let d: grpc.Client & Record<string, unknown>;
    let r: grpc.Client & Record<string, unknown>;
    const rollouts = (method: string, req: unknown) => unary<unknown>(r, method, req, op);

    beforeAll(async () => {
      server = await startTestServer({ grpcFastPath: fast }, { tokens: TEST_TOKENS, keepaliveMs: 300 });
      d = grpcJsClient(DecisionService, server.address);
      r = grpcJsClient(RolloutService, server.address);
      await rollouts("createRollout", { rollout: { name: "alpha", stableVersion: "v1", canaryVersion: "v2", features: { "new-ui": true, old: false } } });
      await rollouts("createRollout", { rollout: { name: "beta", stableVersion: "b1", canaryVersion: "b2", salt: "sälz" } });
      await rollouts("setOverride", { name: "alpha", key: "vip", variant: Variant.CANARY });
    });
    afterAll(async () => {
      d.close();
      r.close();
      await server.stop();
    });

    it("sends a reset with every rollout, then each committed change, complete; Route agrees with the states", async () => {
      const w = watch(d, {});
      const first = await w.next();
      expect(first.reset).toBe(true);
      expect(first.routes.map((s) => s.rollout).sort()).toEqual(["alpha", "beta"]);
      expect(first.revision).toBeGreaterThan(0n);
      const alpha = first.routes.find((s) => s.rollout === "alpha")!;
      expect(alpha).toMatchObject({ stage: Stage.CANARY, weightBp: 500, salt: "alpha", stableVersion: "v1", canaryVersion: "v2", features: { "new-ui": true, old: false }, overrides: { vip: Variant.CANARY } });
      expect(first.routes.find((s) => s.rollout === "beta")!.salt).toBe("sälz");
      for (const key of ["vip", "user-1", "user-2", "ключ-🚀", "a".repeat(1024)]) {
        const got = await unary<RouteResponse>(d, "route", { rollout: "alpha", key }, reader);
        expect(plain(routeFromState(alpha, key))).toEqual(plain(got));
      }

      await rollouts("setWeight", { name: "alpha", weightBp: 7300 });
      const changed = await w.until((m) => m.routes.length > 0);
      expect(changed.reset).toBe(false);
      expect(changed.revision).toBeGreaterThan(first.revision);
      expect(changed.routes).toHaveLength(1);
      expect(changed.routes[0]).toMatchObject({ rollout: "alpha", weightBp: 7300, overrides: { vip: Variant.CANARY } });
      expect(changed.routes[0]!.rolloutVersion).toBeGreaterThan(alpha.rolloutVersion);
      for (const key of ["user-1", "user-2", "user-3"]) {
        const got = await unary<RouteResponse>(d, "route", { rollout: "alpha", key }, reader);
        expect(plain(routeFromState(changed.routes[0]!, key))).toEqual(plain(got));
      }

      // A rollout created later is watched too (empty = all); a deletion comes in `removed`.
      await rollouts("createRollout", { rollout: { name: "gamma", stableVersion: "g1", canaryVersion: "g2" } });
      const created = await w.until((m) => m.routes.length > 0);
      expect(created.routes.map((s) => s.rollout)).toEqual(["gamma"]);
      await server.engine.delete("gamma", { actor: "test", reason: "" });
      expect((await w.until((m) => m.removed.length > 0)).removed).toEqual(["gamma"]);
      w.call.cancel();
    });

    it("heartbeats with the same revision and no routes, and sends removals", async () => {
      const w = watch(d, {});
      const first = await w.next();
      const beat = await w.next();
      expect(beat).toMatchObject({ reset: false, routes: [], removed: [] });
      expect(beat.revision).toBe(first.revision);
      // No admin token is configured in the test tokens: delete through the engine's public API.
      await server.engine.create(specFixture({ name: "doomed", salt: "doomed" }), { actor: "test", reason: "" });
      await w.until((m) => m.routes.some((s) => s.rollout === "doomed"));
      await server.engine.delete("doomed", { actor: "test", reason: "" });
      const gone = await w.until((m) => m.removed.length > 0);
      expect(gone.removed).toEqual(["doomed"]);
      expect(gone.routes).toEqual([]);
      w.call.cancel();
      await expect.poll(() => server.engine.subscribers().events).toBe(0);
    });

    it("filters by name: only the named rollouts, in the reset and after", async () => {
      const w = watch(d, { rollouts: ["beta"] });
      const first = await w.next();
      expect(first.routes.map((s) => s.rollout)).toEqual(["beta"]);
      await rollouts("setWeight", { name: "alpha", weightBp: 100 });
      await rollouts("setWeight", { name: "beta", weightBp: 4200 });
      const m = await w.until((x) => x.routes.length > 0 || x.removed.length > 0);
      expect(m.routes.map((s) => [s.rollout, s.weightBp])).toEqual([["beta", 4200]]);
      w.call.cancel();
    });

    it("resumes from after_revision with the changes since; a reset from 0; INVALID_ARGUMENT from the future", async () => {
      const w1 = watch(d, {});
      const first = await w1.next();
      w1.call.cancel();
      await rollouts("setWeight", { name: "beta", weightBp: 1234 });
      const w2 = watch(d, { afterRevision: first.revision });
      const resumed = await w2.next();
      expect(resumed.reset).toBe(false);
      expect(resumed.revision).toBeGreaterThan(first.revision);
      expect(resumed.routes.map((s) => [s.rollout, s.weightBp])).toEqual([["beta", 1234]]);
      // Resuming at the head: nothing to send but the revision.
      w2.call.cancel();
      const w3 = watch(d, { afterRevision: resumed.revision });
      expect(await w3.next()).toMatchObject({ reset: false, routes: [], removed: [], revision: resumed.revision });
      w3.call.cancel();
      const future = watch(d, { afterRevision: resumed.revision + 1000n });
      const err = await future.error();
      expect(err.code).toBe(grpc.status.INVALID_ARGUMENT);
      expect(err.details).toContain("after_revision");
    });

    it("refuses bad input: an unknown name (named), more than 1,000 names, an invalid name, no token", async () => {
      const unknown = await watch(d, { rollouts: ["alpha", "ghost"] }).error();
      expect(unknown).toMatchObject({ code: grpc.status.NOT_FOUND, details: 'rollout "ghost" not found' });
      const many = await watch(d, { rollouts: Array.from({ length: 1001 }, (_, i) => `r${i}`) }).error();
      expect(many.code).toBe(grpc.status.INVALID_ARGUMENT);
      expect(many.details).toContain("at most 1000");
      const bad = await watch(d, { rollouts: ["Not A Name"] }).error();
      expect(bad.code).toBe(grpc.status.INVALID_ARGUMENT);
      expect(bad.details).toContain("rollouts[0]");
      const anon = await watch(d, {}, new grpc.Metadata()).error();
      expect(anon.code).toBe(grpc.status.UNAUTHENTICATED);
      // Nothing else affected: a good watch still works.
      const ok = watch(d, {});
      expect((await ok.next()).reset).toBe(true);
      ok.call.cancel();
    });

    it("is usable from grpcurl: a snapshot, then live changes", async () => {
      const child = spawn(await grpcurlPath(), ["-plaintext", "-max-time", "6", "-H", "authorization: Bearer reader-token-01234567890", "-d", "{}", server.address, "rollgate.v1.DecisionService/WatchRoutes"]);
      let stdout = "";
      const exited = new Promise<void>((resolve) => child.on("close", () => resolve()));
      child.stdout.setEncoding("utf8").on("data", (chunk: string) => (stdout += chunk));
      // Change once the snapshot has been printed.
      await expect.poll(() => stdout.includes('"reset": true'), { timeout: 10_000 }).toBe(true);
      await rollouts("setWeight", { name: "beta", weightBp: 9001 });
      await expect.poll(() => stdout.includes('"weightBp": 9001'), { timeout: 10_000 }).toBe(true);
      child.kill();
      await exited;
      const messages = stdout
        .split(/\n(?=\{)/)
        .filter((s) => s.trim() !== "")
        .map((s) => JSON.parse(s) as { revision?: string; reset?: boolean; routes?: { rollout: string; weightBp?: number }[] });
      expect(messages[0]!.reset).toBe(true);
      expect(messages[0]!.routes!.map((s) => s.rollout).sort()).toEqual(["alpha", "beta"]);
      expect(BigInt(messages[0]!.revision!)).toBeGreaterThan(0n);
      expect(messages.slice(1).some((m) => m.routes?.some((s) => s.rollout === "beta" && s.weightBp === 9001))).toBe(true);
    });

    // Last: it adds rollouts.
    it("a stream that does not read never holds up another, and catches up with the latest state", async () => {
      // Enough rollouts that the reset alone overflows the flow-control window and the write buffer.
      for (let i = 0; i < 300; i++) {
        await server.engine.create(specFixture({ name: `bulk-${i}`, salt: `bulk-${i}`, canaryVersion: "x".repeat(100) }), { actor: "test", reason: "" });
      }
      // A raw HTTP/2 client with a tiny flow-control window that reads nothing.
      const session = http2.connect(`http://${server.address}`, { settings: { initialWindowSize: 256 } });
      const body = toBinary(WatchRoutesRequestSchema, create(WatchRoutesRequestSchema, {}));
      const framed = Buffer.alloc(5 + body.length);
      framed.writeUInt32BE(body.length, 1);
      framed.set(body, 5);
      const stalled = session.request({ ":method": "POST", ":path": "/rollgate.v1.DecisionService/WatchRoutes", "content-type": "application/grpc", te: "trailers", authorization: "Bearer reader-token-01234567890" });
      stalled.end(framed);
      stalled.pause();
      const live = watch(d, {});
      await live.next();
      for (let i = 1; i <= 60; i++) await rollouts("setWeight", { name: "alpha", weightBp: 100 + i });
      const latest = await live.until((m) => m.routes.some((s) => s.rollout === "alpha" && s.weightBp === 160));
      expect(latest.reset).toBe(false);
      live.call.cancel();
      // Now read the stalled one: what it gets ends with the latest state, in fewer messages than changes.
      const messages: WatchRoutesResponse[] = [];
      let buf = Buffer.alloc(0);
      await new Promise<void>((resolve) => {
        stalled.on("data", (chunk: Buffer) => {
          buf = Buffer.concat([buf, chunk]);
          while (buf.length >= 5 && buf.length >= 5 + buf.readUInt32BE(1)) {
            const n = buf.readUInt32BE(1);
            messages.push(fromBinary(WatchRoutesResponseSchema, buf.subarray(5, 5 + n)));
            buf = buf.subarray(5 + n);
            const last = messages.at(-1)!;
            if (last.routes.some((s) => s.rollout === "alpha" && s.weightBp === 160)) resolve();
          }
        });
        stalled.resume();
      });
      stalled.close();
      session.close();
      expect(messages[0]!.reset).toBe(true);
      expect(messages.filter((m) => !m.reset && m.routes.length > 0).length).toBeLessThan(60);
    });
  });
}

describe("WatchRoutes at shutdown", () => {
  it.each([true, false])("ends every stream with OK when the server shuts down (fast path: %s)", async (fast) => {
    const server = await startTestServer({ grpcFastPath: fast }, {});
    const d = grpcJsClient(DecisionService, server.address);
    try {
      const call = (d.watchRoutes as (r: unknown, m: grpc.Metadata) => grpc.ClientReadableStream<WatchRoutesResponse>)({}, new grpc.Metadata());
      const status = new Promise<grpc.StatusObject>((resolve) => call.on("status", resolve));
      call.on("error", () => undefined);
      await new Promise<void>((resolve) => call.once("data", () => resolve()));
      await server.stop();
      expect((await status).code).toBe(grpc.status.OK);
    } finally {
      d.close();
    }
  });
});

describe("WatchRoutes feed", () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer({}, {});
    await server.engine.create(specFixture({ name: "feed", salt: "feed" }), { actor: "test", reason: "" });
  });
  afterAll(async () => {
    await server.stop();
  });
  const change = (weightBp: number) => server.engine.change("feed", { actor: "test", reason: "" }, (r, actor) => setWeight(r, weightBp, actor));

  it("coalesces for a reader that falls behind: one message with the latest state", async () => {
    const feed = createRoutesFeed({ engine: server.engine, heartbeatMs: 60_000 });
    const ac = new AbortController();
    const it = feed.watch(create(WatchRoutesRequestSchema, {}), ac.signal)[Symbol.asyncIterator]();
    const first = (await it.next()).value as RoutesMessage;
    expect(first.reset).toBe(true);
    for (let i = 1; i <= 50; i++) await change(1000 + i);
    // Every change has reached the feed (and marked the stream) before it reads again.
    const head = await server.engine.lastSeq();
    await expect.poll(() => feed.revision()).toBe(head);
    const next = (await it.next()).value as RoutesMessage;
    expect(next.reset).toBe(false);
    expect(next.routes.map((r) => [r.name, r.weightBp])).toEqual([["feed", 1050]]);
    expect(next.revision).toBe(feed.revision());
    expect(next.revision).toBeGreaterThanOrEqual(first.revision + 50);
    ac.abort();
    await it.return?.();
    expect(feed.watchers()).toBe(0);
  });

  it("sends a reset when the revision is older than it can replay", async () => {
    const feed = createRoutesFeed({ engine: server.engine, maxReplay: 3 });
    const head = feed.revision() || (await server.engine.lastSeq());
    for (let i = 1; i <= 5; i++) await change(2000 + i);
    const ac = new AbortController();
    const it = feed.watch(create(WatchRoutesRequestSchema, { afterRevision: BigInt(head) }), ac.signal)[Symbol.asyncIterator]();
    const first = (await it.next()).value as RoutesMessage;
    expect(first.reset).toBe(true);
    expect(first.routes.map((r) => [r.name, r.weightBp])).toEqual([["feed", 2005]]);
    ac.abort();
    await it.return?.();
  });

  it("resuming, a name that no longer exists is not refused; a fresh subscription naming it is", async () => {
    await server.engine.create(specFixture({ name: "feed-gone", salt: "feed-gone" }), { actor: "test", reason: "" });
    const feed = createRoutesFeed({ engine: server.engine, heartbeatMs: 60_000 });
    const head = BigInt(await server.engine.lastSeq());
    await server.engine.delete("feed-gone", { actor: "test", reason: "" });
    const ac = new AbortController();
    const req = (afterRevision: bigint) => create(WatchRoutesRequestSchema, { rollouts: ["feed", "feed-gone"], afterRevision });
    // The replay carries the deletion.
    const it = feed.watch(req(head), ac.signal)[Symbol.asyncIterator]();
    const first = (await it.next()).value as RoutesMessage;
    expect(first).toMatchObject({ reset: false, removed: ["feed-gone"] });
    await it.return?.();
    // Resuming after the deletion: nothing to send, and later changes to the other arrive.
    const it2 = feed.watch(req(BigInt(first.revision)), ac.signal)[Symbol.asyncIterator]();
    expect((await it2.next()).value).toMatchObject({ reset: false, routes: [], removed: [], revision: first.revision });
    await change(3100);
    const next = (await it2.next()).value as RoutesMessage;
    expect(next.routes.map((r) => [r.name, r.weightBp])).toEqual([["feed", 3100]]);
    ac.abort();
    await it2.return?.();
    expect(() => feed.watch(req(0n), new AbortController().signal)).toThrow('rollout "feed-gone" not found');
  });

  it("return() ends a next() that is still waiting", async () => {
    const feed = createRoutesFeed({ engine: server.engine, heartbeatMs: 60_000 });
    const it = feed.watch(create(WatchRoutesRequestSchema, {}), new AbortController().signal)[Symbol.asyncIterator]();
    expect(((await it.next()).value as RoutesMessage).reset).toBe(true);
    const waiting = it.next();
    expect(await it.return!()).toEqual({ value: undefined, done: true });
    expect(await waiting).toEqual({ value: undefined, done: true });
    expect(feed.watchers()).toBe(0);
  });

  it("resuming from a revision in the log that this replica has not applied yet: waits for it, else a snapshot", async () => {
    // The log's head as another replica's writes would make it: `ahead` past what this one applied.
    let ahead = 0;
    const engine = { ...server.engine, lastSeq: async () => (await server.engine.lastSeq()) + ahead };
    const feed = createRoutesFeed({ engine, heartbeatMs: 60_000, catchUpWaitMs: 300 });
    const ac = new AbortController();
    const all = feed.watch(create(WatchRoutesRequestSchema, {}), ac.signal)[Symbol.asyncIterator]();
    const head = ((await all.next()).value as RoutesMessage).revision;
    ahead = 2;
    // Caught up while waiting: answered from the log, no reset.
    const caught = feed.watch(create(WatchRoutesRequestSchema, { afterRevision: BigInt(head + 2) }), ac.signal)[Symbol.asyncIterator]();
    const answer = caught.next();
    await change(3201);
    await change(3202);
    expect((await answer).value).toMatchObject({ reset: false, revision: head + 2 });
    await caught.return?.();
    // Never caught up within catchUpWaitMs: a snapshot of what this replica has.
    const behind = feed.watch(create(WatchRoutesRequestSchema, { afterRevision: BigInt(head + 3) }), ac.signal)[Symbol.asyncIterator]();
    const reset = (await behind.next()).value as RoutesMessage;
    expect(reset).toMatchObject({ reset: true, revision: head + 2 });
    expect(reset.routes.map((r) => [r.name, r.weightBp])).toEqual([["feed", 3202]]);
    await behind.return?.();
    // Beyond the log itself: refused as before.
    const beyond = feed.watch(create(WatchRoutesRequestSchema, { afterRevision: BigInt(head + 100) }), ac.signal)[Symbol.asyncIterator]();
    await expect(beyond.next()).rejects.toThrow("after_revision");
    ac.abort();
    await all.return?.();
  });

  it("encodes on the fast path exactly what toBinary writes", () => {
    const r = server.engine.get("feed");
    for (const m of [
      { revision: 0, reset: false, routes: [], removed: [] },
      { revision: 1, reset: true, routes: [r], removed: [] },
      { revision: 2 ** 40 + 3, reset: false, routes: [r, r], removed: ["gone", "ключ"] },
    ] satisfies RoutesMessage[]) {
      expect(Buffer.from(encodeRoutesMessage(m))).toEqual(Buffer.from(toBinary(WatchRoutesResponseSchema, routesMessageToProto(m))));
    }
  });
});
