import { create, toBinary, toJsonString } from "@bufbuild/protobuf";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  DecisionService,
  RecordOutcomeRequestSchema,
  RouteBatchRequestSchema,
  RouteRequestSchema,
  WatchHealthRequestSchema,
} from "../../gen/rollgate/v1/decision_service_pb.js";
import { Variant } from "../../gen/rollgate/v1/rollout_pb.js";
import { createDecisionHotMethods, type DecisionHotMethods } from "../../src/service/decision-service.js";
import { connectMethodsOf, procedureOf } from "../../src/service/hot-method.js";
import { serviceEnv, type ServiceEnv } from "../helpers/service-env.js";

/**
 * The hot-method table is what both serving paths are built from: these tests lock that each
 * entry's bytes are exactly its message encoded, so that a path answering with `bytes` and one
 * answering with `message` cannot differ.
 */
describe("DecisionService hot-method table", () => {
  let env: ServiceEnv;
  let hot: DecisionHotMethods;
  beforeAll(async () => {
    env = await serviceEnv();
    await env.rollouts.createRollout({
      rollout: { name: "hot", stableVersion: "v1", canaryVersion: "v2", features: { "new-ui": true }, overrides: { vip: Variant.CANARY } },
      reason: "test",
    });
    hot = createDecisionHotMethods({ engine: env.engine });
  });
  afterAll(async () => {
    await env?.close();
  });

  it("holds Route, RouteBatch, RecordOutcome, WatchHealth and WatchRoutes under their own method descriptors", () => {
    expect(Object.values(hot).map(procedureOf)).toEqual([
      "rollgate.v1.DecisionService/Route",
      "rollgate.v1.DecisionService/RouteBatch",
      "rollgate.v1.DecisionService/RecordOutcome",
      "rollgate.v1.DecisionService/WatchHealth",
      "rollgate.v1.DecisionService/WatchRoutes",
    ]);
    for (const [key, m] of Object.entries(hot)) expect(m.method).toBe(DecisionService.method[key as keyof typeof DecisionService.method]);
  });

  it("answers each unary method with bytes that are its message encoded", () => {
    for (const key of ["user-1", "user-2", "vip", "ключ", "k".repeat(1024)]) {
      const req = create(RouteRequestSchema, { rollout: "hot", key });
      expect(hot.route.bytes(req)).toEqual(toBinary(hot.route.method.output, hot.route.message(req)));
      expect(hot.route.json?.(req)).toBe(toJsonString(hot.route.method.output, hot.route.message(req)));
    }
    const batch = create(RouteBatchRequestSchema, { rollout: "hot", keys: ["a", "vip", "b", "ключ"] });
    expect(hot.routeBatch.bytes(batch)).toEqual(toBinary(hot.routeBatch.method.output, hot.routeBatch.message(batch)));
    const outcomes = create(RecordOutcomeRequestSchema, { rollout: "hot", outcomes: [{ variant: Variant.CANARY, success: true, latencyMs: 12 }] });
    expect(hot.recordOutcome.bytes(outcomes)).toEqual(toBinary(hot.recordOutcome.method.output, hot.recordOutcome.message(outcomes)));
  });

  it("leaves the headroom asked for before the same bytes (the gRPC path frames them in place)", () => {
    const req = create(RouteRequestSchema, { rollout: "hot", key: "user-1" });
    const batch = create(RouteBatchRequestSchema, { rollout: "hot", keys: Array.from({ length: 300 }, (_, i) => `k${i}`) });
    const outcomes = create(RecordOutcomeRequestSchema, { rollout: "hot", outcomes: [{ variant: Variant.CANARY, success: true, latencyMs: 12 }] });
    for (const [m, r] of [[hot.route, req], [hot.routeBatch, batch], [hot.recordOutcome, outcomes]] as const) {
      const plain = (m.bytes as (x: unknown) => Uint8Array)(r);
      const roomy = (m.bytes as (x: unknown, h: number) => Uint8Array)(r, 5);
      expect(roomy.length).toBe(plain.length + 5);
      expect(roomy.subarray(5)).toEqual(plain);
    }
  });

  it("refuses the same way whichever form is asked for", () => {
    const bad = [create(RouteRequestSchema, { rollout: "hot", key: "" }), create(RouteRequestSchema, { rollout: "ghost", key: "k" })];
    for (const req of bad) expect(() => hot.route.bytes(req)).toThrow(captured(() => hot.route.message(req)));
    for (const req of bad) expect(() => hot.route.json?.(req)).toThrow(captured(() => hot.route.message(req)));
    const empty = create(RouteBatchRequestSchema, { rollout: "hot", keys: [] });
    expect(() => hot.routeBatch.bytes(empty)).toThrow(captured(() => hot.routeBatch.message(empty)));
  });

  it("numbers WatchHealth's messages from 1 once for every path, bytes being the message encoded", async () => {
    const abort = new AbortController();
    const items = hot.watchHealth.open(create(WatchHealthRequestSchema, { rollout: "" }), abort.signal)[Symbol.asyncIterator]();
    const first = await items.next();
    await env.rollouts.createRollout({ rollout: { name: "hot2", stableVersion: "v1", canaryVersion: "v2" }, reason: "test" });
    const second = await items.next();
    const seen = [first.value, second.value];
    abort.abort();
    expect(seen.map((i) => i.seq)).toEqual([1, 2]);
    for (const item of seen) {
      const message = create(hot.watchHealth.method.output, hot.watchHealth.message(item));
      expect(message.seq).toBe(BigInt(item.seq));
      expect(hot.watchHealth.bytes(item)).toEqual(toBinary(hot.watchHealth.method.output, message));
    }
    // Unknown rollouts are refused at once, before any message (trailers-only on the fast path).
    expect(() => hot.watchHealth.open(create(WatchHealthRequestSchema, { rollout: "ghost" }), abort.signal)).toThrow('rollout "ghost" not found');
  });

  it("gives connect-node one implementation per entry, keyed by the method's localName", async () => {
    const impl = connectMethodsOf(hot);
    expect(Object.keys(impl)).toEqual(["route", "routeBatch", "recordOutcome", "watchHealth", "watchRoutes"]);
    const res = await impl.route(create(RouteRequestSchema, { rollout: "hot", key: "vip" }));
    expect(res).toEqual(hot.route.message(create(RouteRequestSchema, { rollout: "hot", key: "vip" })));
    expect(() => connectMethodsOf({ wrong: hot.route })).toThrow("key wrong must be the localName route");
  });
});

/** Returns the message of the error `fn` throws. */
function captured(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    return (e as Error).message;
  }
  throw new Error("did not throw");
}

describe("connectMethodsOf: a server stream ended by its signal", () => {
  it("throws CANCELED or the deadline's error, as the fast path reports, instead of ending OK", async () => {
    const { ConnectError, Code, createHandlerContext } = await import("@connectrpc/connect");
    const env = await serviceEnv();
    try {
      const impl = connectMethodsOf({ watchHealth: createDecisionHotMethods({ engine: env.engine }).watchHealth });
      await env.rollouts.createRollout({ rollout: { name: "ends", stableVersion: "v1", canaryVersion: "v2" }, reason: "test" });
      // The client going away (the request's signal), then the deadline (the context's own timer).
      for (const deadline of [false, true]) {
        const ac = new AbortController();
        const ctx = createHandlerContext({
          service: DecisionService,
          method: DecisionService.method.watchHealth,
          protocolName: "connect",
          requestMethod: "POST",
          url: "http://127.0.0.1/",
          requestSignal: ac.signal,
          ...(deadline ? { timeoutMs: 200 } : {}),
        });
        const stream = impl.watchHealth(create(WatchHealthRequestSchema, { rollout: "ends" }), ctx)[Symbol.asyncIterator]();
        expect((await stream.next()).done).toBe(false);
        const pending = stream.next();
        if (!deadline) ac.abort();
        const err = await pending.then(() => undefined, (e: unknown) => e);
        expect(err).toBeInstanceOf(ConnectError);
        expect((err as InstanceType<typeof ConnectError>).code).toBe(deadline ? Code.DeadlineExceeded : Code.Canceled);
      }
    } finally {
      await env.close();
    }
  });
});
