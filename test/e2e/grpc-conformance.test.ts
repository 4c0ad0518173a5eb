import * as http2 from "node:http2";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { bucketOf } from "../../src/domain/bucketing.js";
import {
  DecisionService,
  RouteRequestSchema,
  RouteResponseSchema,
  WatchHealthRequestSchema,
  WatchRoutesRequestSchema,
  type HealthUpdate,
  type RouteBatchResponse,
  type RouteResponse,
} from "../../gen/rollgate/v1/decision_service_pb.js";
import { FieldViolationsSchema } from "../../gen/rollgate/v1/errors_pb.js";
import { RolloutService, WatchEventsRequestSchema } from "../../gen/rollgate/v1/rollout_service_pb.js";
import { connectJson, curl } from "../helpers/curl.js";
import { bearer, grpcJsClient, unary } from "../helpers/grpc-js.js";
import { grpcurl } from "../helpers/grpcurl.js";
import { TEST_TOKENS, startTestServer, type TestServer } from "../helpers/servers.js";

/** Sends one raw gRPC request over node:http2 and returns headers, trailers and the body. */
function rawCall(address: string, path: string, body: Buffer, extra: http2.OutgoingHttpHeaders = {}, end = true) {
  const client = http2.connect(`http://${address}`);
  return new Promise<{ headers: http2.IncomingHttpHeaders; trailers: http2.IncomingHttpHeaders | undefined; body: Buffer }>((resolve, reject) => {
    const s = client.request({ ":method": "POST", ":path": path, "content-type": "application/grpc", te: "trailers", ...extra });
    let headers: http2.IncomingHttpHeaders = {};
    let trailers: http2.IncomingHttpHeaders | undefined;
    const data: Buffer[] = [];
    s.on("response", (h) => (headers = h));
    s.on("trailers", (t) => (trailers = t));
    s.on("data", (d: Buffer) => data.push(d));
    s.on("error", reject);
    s.on("close", () => {
      client.close();
      resolve({ headers, trailers, body: Buffer.concat(data) });
    });
    if (end) s.end(body);
    else s.write(body);
  });
}
const frame = (b: Uint8Array) => {
  const f = Buffer.alloc(5 + b.length);
  f.writeUInt32BE(b.length, 1);
  f.set(b, 5);
  return f;
};
/** Status of a raw response, whether trailers-only (in headers) or in trailers. */
const statusOf = (r: { headers: http2.IncomingHttpHeaders; trailers: http2.IncomingHttpHeaders | undefined }) =>
  Number((r.trailers ?? r.headers)["grpc-status"]);


for (const fast of [true, false]) {
  describe(`gRPC conformance, ${fast ? "fast path" : "connect-node path"}`, () => {
    let server: TestServer;
    const op = bearer("operator-token-0123456789");
    beforeAll(async () => {
      server = await startTestServer({ grpcFastPath: fast }, { tokens: TEST_TOKENS });
      await connectJson(server.url, "rollgate.v1.RolloutService/CreateRollout", { rollout: { name: "conf", stableVersion: "v1", canaryVersion: "v2" } }, [
        "authorization: Bearer operator-token-0123456789",
      ]);
    });
    afterAll(async () => {
      await server.stop();
    });
    const fastCount = async () => {
      const m = (await curl([`${server.url}/metrics`])).body;
      return Number(/rollgate_grpc_fast_path_requests_total\{method="rollgate.v1.DecisionService\/Route"\} (\d+)/.exec(m)?.[1] ?? 0);
    };

    it("answers Route and RouteBatch to grpc-js, counted by path", async () => {
      const before = await fastCount();
      const c = grpcJsClient(DecisionService, server.address);
      try {
        const r = await unary<RouteResponse>(c, "route", { rollout: "conf", key: "user-1" }, op);
        expect(r.bucket).toBe(bucketOf("conf", "user-1"));
        expect(r.version).toBe(r.bucket < 500 ? "v2" : "v1");
        const b = await unary<RouteBatchResponse>(c, "routeBatch", { rollout: "conf", keys: ["a", "b", "ключ"] }, op);
        expect(b.results.map((x) => x.bucket)).toEqual(["a", "b", "ключ"].map((k) => bucketOf("conf", k)));
      } finally {
        c.close();
      }
      expect((await fastCount()) - before).toBe(fast ? 1 : 0);
    });

    it("maps errors the same way: code, message and field-violation details", async () => {
      const c = grpcJsClient(DecisionService, server.address);
      try {
        const bad = await unary(c, "route", { rollout: "conf", key: "" }, op).catch((e: grpc.ServiceError) => e);
        expect(bad).toMatchObject({ code: grpc.status.INVALID_ARGUMENT, details: "key: must not be empty" });
        const detailsBin = (bad as grpc.ServiceError).metadata.get("grpc-status-details-bin")[0] as Buffer;
        expect(detailsBin.toString("latin1")).toContain(FieldViolationsSchema.typeName);
        const withId = bearer("operator-token-0123456789");
        withId.set("x-request-id", "conformance-err-1");
        const missing = await unary(c, "route", { rollout: "ghost", key: "k" }, withId).catch((e: grpc.ServiceError) => e);
        expect(missing).toMatchObject({ code: grpc.status.NOT_FOUND, details: 'rollout "ghost" not found' });
        // Errors carry the request id as well.
        expect((missing as grpc.ServiceError).metadata.get("x-request-id")).toEqual(["conformance-err-1"]);
        const batch = await unary(c, "routeBatch", { rollout: "conf", keys: [] }, op).catch((e: grpc.ServiceError) => e);
        expect(batch).toMatchObject({ code: grpc.status.INVALID_ARGUMENT, details: "keys: must hold 1..1000 keys" });
      } finally {
        c.close();
      }
    });

    it("authenticates like every other call", async () => {
      const c = grpcJsClient(DecisionService, server.address);
      try {
        const none = await unary(c, "route", { rollout: "conf", key: "k" }).catch((e: grpc.ServiceError) => e);
        expect(none).toMatchObject({ code: grpc.status.UNAUTHENTICATED });
        const ok = await unary<RouteResponse>(c, "route", { rollout: "conf", key: "k" }, bearer("reporter-token-0123456789"));
        expect(ok.weightBp).toBe(500);
      } finally {
        c.close();
      }
    });

    it("echoes x-request-id and answers trailers-only or with trailers per the gRPC spec", async () => {
      const ok = await rawCall(server.address, "/rollgate.v1.DecisionService/Route", frame(toBinary(RouteRequestSchema, create(RouteRequestSchema, { rollout: "conf", key: "x" }))), {
        authorization: "Bearer operator-token-0123456789",
        "x-request-id": "conformance-1",
      });
      expect(ok.headers[":status"]).toBe(200);
      expect(ok.headers["content-type"]).toBe("application/grpc+proto");
      expect(ok.headers["x-request-id"]).toBe("conformance-1");
      expect(ok.trailers?.["grpc-status"]).toBe("0");
      expect(fromBinary(RouteResponseSchema, ok.body.subarray(5)).bucket).toBe(bucketOf("conf", "x"));

      const err = await rawCall(server.address, "/rollgate.v1.DecisionService/Route", frame(toBinary(RouteRequestSchema, create(RouteRequestSchema, { rollout: "conf" }))), {
        authorization: "Bearer operator-token-0123456789",
      });
      expect(statusOf(err)).toBe(3);
      expect((err.trailers ?? err.headers)["grpc-message"]).toBe("key: must not be empty");
    });

    it("rejects malformed envelopes alike on both paths; what does not decode is INVALID_ARGUMENT, never INTERNAL", async () => {
      const auth = { authorization: "Bearer operator-token-0123456789" };
      expect(statusOf(await rawCall(server.address, "/rollgate.v1.DecisionService/Route", Buffer.alloc(0), auth))).toBe(12);
      expect(statusOf(await rawCall(server.address, "/rollgate.v1.DecisionService/Route", frame(Buffer.from([0xff, 0xff, 0xff])), auth))).toBe(3);
      expect(statusOf(await rawCall(server.address, "/rollgate.v1.DecisionService/Route", Buffer.from("0100000000", "hex"), auth))).toBe(3);
      const two = Buffer.concat([frame(Buffer.alloc(0)), frame(Buffer.alloc(0))]);
      expect(statusOf(await rawCall(server.address, "/rollgate.v1.DecisionService/Route", two, auth))).toBe(12);
    });

    it("answers a message over 4 MiB with RESOURCE_EXHAUSTED", async () => {
      const c = grpcJsClient(DecisionService, server.address);
      try {
        const big = await unary(c, "route", { rollout: "conf", key: "k".repeat(5 * 1024 * 1024) }, op).catch((e: grpc.ServiceError) => e);
        // 5 MiB of key + its tag and 4-byte length + the 6-byte rollout field, on both paths alike.
        expect(big).toMatchObject({ code: grpc.status.RESOURCE_EXHAUSTED, details: "message size 5242891 is larger than configured readMaxBytes 4194304" });
      } finally {
        c.close();
      }
    });

    // connect-node applies grpc-timeout to the handler but not while the request body is still
    // arriving, so a stalled request only times out on the fast path.
    it.skipIf(!fast)("honours grpc-timeout while the request is still arriving", async () => {
      const r = await rawCall(
        server.address,
        "/rollgate.v1.DecisionService/Route",
        Buffer.from([0, 0, 0, 0, 9]),
        { authorization: "Bearer operator-token-0123456789", "grpc-timeout": "200m" },
        false,
      );
      expect(statusOf(r)).toBe(4);
    });

    it("serves gzip-compressed calls (through connect) and refuses unknown encodings with UNIMPLEMENTED", async () => {
      // grpc-js compression algorithm 2 is gzip.
      const c = grpcJsClient(DecisionService, server.address, undefined, { "grpc.default_compression_algorithm": 2 });
      try {
        const r = await unary<RouteResponse>(c, "route", { rollout: "conf", key: "gz" }, op);
        expect(r.bucket).toBe(bucketOf("conf", "gz"));
      } finally {
        c.close();
      }
      const snappy = await rawCall(server.address, "/rollgate.v1.DecisionService/Route", frame(Buffer.alloc(0)), {
        authorization: "Bearer operator-token-0123456789",
        "grpc-encoding": "snappy",
      });
      expect(statusOf(snappy)).toBe(12);
      expect((snappy.trailers ?? snappy.headers)["grpc-accept-encoding"]).toContain("gzip");
    });

    it("works from grpcurl", async () => {
      const r = await grpcurl(["-plaintext", "-H", "authorization: Bearer reporter-token-0123456789", "-d", '{"rollout":"conf","key":"user-9"}', server.address, "rollgate.v1.DecisionService/Route"]);
      expect(r.code).toBe(0);
      expect(JSON.parse(r.stdout)).toMatchObject({ bucket: bucketOf("conf", "user-9") });
      const e = await grpcurl(["-plaintext", "-d", '{"rollout":"conf","key":"user-9"}', server.address, "rollgate.v1.DecisionService/Route"]);
      expect(e.code).toBe(64 + 16);
    });

    it("streams WatchHealth: current health first, then updates with seq; NOT_FOUND for an unknown rollout", async () => {
      const c = grpcJsClient(DecisionService, server.address);
      try {
        const call = (c.watchHealth as (req: unknown, md: grpc.Metadata) => grpc.ClientReadableStream<HealthUpdate>)({ rollout: "conf" }, op);
        const seen: HealthUpdate[] = [];
        await new Promise<void>((resolve, reject) => {
          call.on("data", (u: HealthUpdate) => {
            seen.push(u);
            if (seen.length === 1) {
              void connectJson(server.url, "rollgate.v1.RolloutService/SetWeight", { name: "conf", weightBp: 700 }, ["authorization: Bearer operator-token-0123456789"]);
            } else if (u.health!.weightBp === 700) resolve();
          });
          call.on("error", reject);
        });
        call.cancel();
        expect(seen.map((u) => u.seq)).toEqual(seen.map((_, i) => BigInt(i + 1)));
        expect(seen[0]!.health!.rollout).toBe("conf");
        const missing = (c.watchHealth as (req: unknown, md: grpc.Metadata) => grpc.ClientReadableStream<HealthUpdate>)({ rollout: "ghost" }, op);
        const err = await new Promise<grpc.ServiceError>((resolve) => {
          missing.on("error", resolve);
          missing.on("data", () => undefined);
        });
        expect(err).toMatchObject({ code: grpc.status.NOT_FOUND, details: 'rollout "ghost" not found' });
      } finally {
        c.close();
      }
      // A cancelled watcher is gone from the fan-out.
      await expect.poll(() => server.engine.subscribers().health).toBe(0);
    });

    it("ends a WatchHealth stream at its deadline with DEADLINE_EXCEEDED", async () => {
      const c = grpcJsClient(DecisionService, server.address);
      try {
        const call = (c.watchHealth as (req: unknown, md: grpc.Metadata, o: grpc.CallOptions) => grpc.ClientReadableStream<HealthUpdate>)(
          { rollout: "conf" },
          op,
          { deadline: Date.now() + 300 },
        );
        let updates = 0;
        const err = await new Promise<grpc.ServiceError>((resolve) => {
          call.on("data", () => updates++);
          call.on("error", resolve);
        });
        expect(updates).toBeGreaterThanOrEqual(1);
        expect(err.code).toBe(grpc.status.DEADLINE_EXCEEDED);
      } finally {
        c.close();
      }
    });

    it("ends server streams at the server's deadline with DEADLINE_EXCEEDED, not OK", async () => {
      // No client deadline here: only the server's grpc-timeout can end these streams.
      const auth = { authorization: "Bearer operator-token-0123456789", "grpc-timeout": "300m" };
      const health = await rawCall(server.address, "/rollgate.v1.DecisionService/WatchHealth", frame(toBinary(WatchHealthRequestSchema, create(WatchHealthRequestSchema, { rollout: "conf" }))), auth);
      expect(health.body.length).toBeGreaterThan(5); // the current health came first
      expect(health.trailers?.["grpc-status"]).toBe("4");
      const routes = await rawCall(server.address, "/rollgate.v1.DecisionService/WatchRoutes", frame(toBinary(WatchRoutesRequestSchema, create(WatchRoutesRequestSchema, {}))), auth);
      expect(routes.body.length).toBeGreaterThan(5); // the snapshot came first
      expect(routes.trailers?.["grpc-status"]).toBe("4");
      const events = await rawCall(server.address, "/rollgate.v1.RolloutService/WatchEvents", frame(toBinary(WatchEventsRequestSchema, create(WatchEventsRequestSchema, { name: "conf" }))), auth);
      expect(events.trailers?.["grpc-status"]).toBe("4");
      // grpc.health.v1 Watch: a HealthCheckRequest for the whole server is an empty message.
      const healthWatch = await rawCall(server.address, "/grpc.health.v1.Health/Watch", frame(new Uint8Array(0)), auth);
      expect(healthWatch.body.length).toBeGreaterThan(5);
      expect(healthWatch.trailers?.["grpc-status"]).toBe("4");
    });

    it("counts a WatchHealth the client cancels as CANCELED", async () => {
      const canceled = async () => {
        const m = (await curl([`${server.url}/metrics`])).body;
        return Number(/rollgate_rpc_requests_total\{method="rollgate.v1.DecisionService\/WatchHealth",code="canceled"\} (\d+)/.exec(m)?.[1] ?? 0);
      };
      const before = await canceled();
      const c = grpcJsClient(DecisionService, server.address);
      try {
        const call = (c.watchHealth as (req: unknown, md: grpc.Metadata) => grpc.ClientReadableStream<HealthUpdate>)({ rollout: "conf" }, op);
        await new Promise<void>((resolve) => call.once("data", () => resolve()));
        call.on("error", () => undefined);
        call.cancel();
        await expect.poll(canceled).toBe(before + 1);
      } finally {
        c.close();
      }
    });

    it("leaves the control plane to connect", async () => {
      const c = grpcJsClient(RolloutService, server.address);
      try {
        const r = await unary<{ rollout: { name: string } }>(c, "getRollout", { name: "conf" }, op);
        expect(r.rollout.name).toBe("conf");
      } finally {
        c.close();
      }
    });
  });
}
