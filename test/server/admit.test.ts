import { connectNodeAdapter } from "@connectrpc/connect-node";
import * as grpc from "@grpc/grpc-js";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DecisionService, type HealthUpdate, type RouteResponse } from "../../gen/rollgate/v1/decision_service_pb.js";
import { RolloutService } from "../../gen/rollgate/v1/rollout_service_pb.js";
import { admitInterceptor, createAdmit, requestIdOf, type ServingState } from "../../src/server/admit.js";
import { createAuthenticator, REQUIRED_ROLE } from "../../src/server/auth.js";
import { createGrpcFastPath } from "../../src/server/grpc-fast-path.js";
import { withCanonicalGrpcMessage } from "../../src/server/grpc/grpc-message.js";
import { createMetrics } from "../../src/server/metrics.js";
import { createCallReporter, type CallRecord } from "../../src/server/observe.js";
import { listenOnePort, type OnePortListener } from "../../src/server/one-port.js";
import { createDecisionHotMethods, createDecisionService } from "../../src/service/decision-service.js";
import { bearer, grpcJsClient, unary } from "../helpers/grpc-js.js";
import { TEST_TOKENS } from "../helpers/servers.js";
import { serviceEnv, type ServiceEnv } from "../helpers/service-env.js";

/** What a caller sees of a refusal, and what the server reported of it. */
interface Seen {
  code: number | undefined;
  details: string | undefined;
  requestId: unknown;
  reported: { code: string | undefined; caller: string | undefined };
}

/**
 * The same hot-method table and the same admission served twice, as the server composes them:
 * `fast` with the gRPC fast path in front of connect-node, `connect` with connect-node alone.
 */
describe("admission, on the fast path and the connect-node path alike", () => {
  let env: ServiceEnv;
  let state: ServingState = "ready";
  let fast: OnePortListener;
  let connect: OnePortListener;
  let fastServed = 0;
  const reported: { record: CallRecord; error: unknown }[] = [];

  beforeAll(async () => {
    env = await serviceEnv();
    await env.rollouts.createRollout({ rollout: { name: "adm", stableVersion: "v1", canaryVersion: "v2" }, reason: "test" });
    const admit = createAdmit({ state: () => state, auth: createAuthenticator(TEST_TOKENS) });
    const metrics = createMetrics(() => []);
    const real = createCallReporter(pino({ level: "silent" }), metrics);
    const report = (record: CallRecord, error: unknown) => {
      reported.push({ record, error });
      real(record, error);
    };
    const hot = createDecisionHotMethods({ engine: env.engine });
    const handler = withCanonicalGrpcMessage(
      connectNodeAdapter({
        routes: (router) => router.service(DecisionService, createDecisionService({ engine: env.engine, hot })),
        interceptors: [admitInterceptor(admit, report)],
      }),
    );
    const onStream = createGrpcFastPath({ methods: Object.values(hot), admit, report, maxBytes: 4 << 20, served: () => fastServed++ });
    fast = await listenOnePort({ host: "127.0.0.1", port: 0, handler, onStream });
    connect = await listenOnePort({ host: "127.0.0.1", port: 0, handler });
  });
  afterAll(async () => {
    await fast?.close(0);
    await connect?.close(0);
    await env?.close();
  });

  /** Calls Route on one listener with grpc-js and returns what the caller and the reporter saw. */
  async function route(l: OnePortListener, md: grpc.Metadata): Promise<Seen> {
    const c = grpcJsClient(DecisionService, l.address);
    const at = reported.length;
    try {
      const e = await unary<RouteResponse>(c, "route", { rollout: "adm", key: "k" }, md).then(
        () => undefined,
        (err: grpc.ServiceError) => err,
      );
      const r = reported[at];
      return {
        code: e?.code,
        details: e?.details,
        requestId: e?.metadata.get("x-request-id"),
        reported: { code: r === undefined ? undefined : codeOf(r.error), caller: r?.record.caller },
      };
    } finally {
      c.close();
    }
  }

  /** Opens WatchHealth on one listener and returns the error that ends it. */
  async function watch(l: OnePortListener, md: grpc.Metadata): Promise<{ code: number; details: string }> {
    const c = grpcJsClient(DecisionService, l.address);
    try {
      const call = (c.watchHealth as (req: unknown, md: grpc.Metadata) => grpc.ClientReadableStream<HealthUpdate>)({ rollout: "adm" }, md);
      return await new Promise((resolve) => {
        call.on("data", () => call.cancel());
        call.on("error", (e: grpc.ServiceError) => resolve({ code: e.code, details: e.details }));
      });
    } finally {
      c.close();
    }
  }

  const withId = (md: grpc.Metadata, id: string) => (md.set("x-request-id", id), md);

  const cases: { name: string; state: ServingState; md: () => grpc.Metadata; code: number; details: string }[] = [
    { name: "while starting", state: "starting", md: () => bearer("reader-token-01234567890"), code: grpc.status.UNAVAILABLE, details: "starting: state is loading" },
    { name: "while draining", state: "draining", md: () => bearer("reader-token-01234567890"), code: grpc.status.UNAVAILABLE, details: "shutting down" },
    {
      name: "without a token",
      state: "ready",
      md: () => new grpc.Metadata(),
      code: grpc.status.UNAUTHENTICATED,
      details: "missing bearer token (authorization: Bearer <token>)",
    },
    { name: "with an unknown token", state: "ready", md: () => bearer("nobody-token-0123456789"), code: grpc.status.UNAUTHENTICATED, details: "unknown token" },
  ];

  for (const c of cases) {
    it(`refuses Route ${c.name} with the same code, message and request id on both paths`, async () => {
      state = c.state;
      const before = fastServed;
      const onFast = await route(fast, withId(c.md(), "adm-1"));
      expect(fastServed).toBe(before + 1); // the fast path really took it
      const onConnect = await route(connect, withId(c.md(), "adm-1"));
      expect(fastServed).toBe(before + 1);
      expect(onFast).toEqual(onConnect);
      expect(onFast).toEqual({
        code: c.code,
        details: c.details,
        requestId: ["adm-1"],
        reported: { code: codeOf({ code: c.code }), caller: "anonymous" },
      });
      // The stream in the table is admitted the same way.
      expect(await watch(fast, c.md())).toEqual(await watch(connect, c.md()));
      expect(await watch(fast, c.md())).toEqual({ code: c.code, details: c.details });
    });
  }

  it("refuses RecordOutcome to a role below reporter alike, naming the role needed", async () => {
    state = "ready";
    const call = async (l: OnePortListener) => {
      const c = grpcJsClient(DecisionService, l.address);
      try {
        return await unary(c, "recordOutcome", { rollout: "adm", outcomes: [] }, bearer("reader-token-01234567890")).catch((e: grpc.ServiceError) => ({
          code: e.code,
          details: e.details,
        }));
      } finally {
        c.close();
      }
    };
    const onFast = await call(fast);
    expect(onFast).toEqual(await call(connect));
    expect(onFast).toEqual({
      code: grpc.status.PERMISSION_DENIED,
      details: 'token "dash" has role reader; rollgate.v1.DecisionService/RecordOutcome needs reporter',
    });
  });

  it("admits the same call on both paths once ready, as its token's caller", async () => {
    state = "ready";
    const onFast = await route(fast, bearer("reader-token-01234567890"));
    const onConnect = await route(connect, bearer("reader-token-01234567890"));
    expect(onFast).toEqual(onConnect);
    expect(onFast).toMatchObject({ code: undefined, reported: { code: "ok", caller: "dash" } });
  });
});

/** Returns the status code name the reporter saw ("ok" when the call succeeded). */
function codeOf(error: unknown): string {
  if (error === undefined) return "ok";
  const code = (error as { code: number }).code;
  return Object.entries(grpc.status).find(([, v]) => v === code)?.[0].toLowerCase() ?? String(code);
}

describe("authorization", () => {
  it("names the role every rollgate method needs, so none is open to callers without a token", () => {
    // A method missing from REQUIRED_ROLE would be public, like gRPC health and reflection.
    const methods = [DecisionService, RolloutService].flatMap((svc) => svc.methods.map((m) => `${svc.typeName}/${m.name}`));
    expect(methods.filter((p) => REQUIRED_ROLE[p] === undefined)).toEqual([]);
    expect(Object.keys(REQUIRED_ROLE).sort()).toEqual([...methods].sort());
  });
});

describe("request ids", () => {
  it("keeps a well-formed caller id and mints distinct UUID-shaped ones otherwise", () => {
    expect(requestIdOf("req-1")).toBe("req-1");
    const minted = [requestIdOf(undefined), requestIdOf(null), requestIdOf("not ok!"), requestIdOf(undefined)];
    for (const id of minted) expect(id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
    expect(new Set(minted).size).toBe(minted.length);
  });
});
