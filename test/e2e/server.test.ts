import { create } from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";
import Database from "better-sqlite3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { bucketOf } from "../../src/domain/bucketing.js";
import { DecisionService, type RouteResponse } from "../../gen/rollgate/v1/decision_service_pb.js";
import { RolloutSchema } from "../../gen/rollgate/v1/rollout_pb.js";
import { RolloutService, type CreateRolloutResponse } from "../../gen/rollgate/v1/rollout_service_pb.js";
import { connectJson, curl } from "../helpers/curl.js";
import { bearer, grpcJsClient, unary } from "../helpers/grpc-js.js";
import { grpcurl } from "../helpers/grpcurl.js";
import { TEST_TOKENS, startTestServer, type TestServer } from "../helpers/servers.js";

let server: TestServer;
beforeAll(async () => {
  server = await startTestServer();
});
afterAll(async () => {
  await server.stop();
});

const createBody = (name: string) => ({ rollout: { name, stableVersion: "v1", canaryVersion: "v2" }, reason: "e2e" });

describe("one port, every protocol", () => {
  it("Connect JSON over HTTP/1.1 with curl: create, route, get", async () => {
    const created = await connectJson(server.url, "rollgate.v1.RolloutService/CreateRollout", createBody("curl-json"));
    expect(created.status).toBe(200);
    expect(created.json).toMatchObject({ rollout: { name: "curl-json", stage: "STAGE_CANARY", weightBp: 500, version: "1" } });
    const routed = await connectJson(server.url, "rollgate.v1.DecisionService/Route", { rollout: "curl-json", key: "user-1" });
    const bucket = bucketOf("curl-json", "user-1");
    expect(routed.json).toMatchObject({
      variant: bucket < 500 ? "VARIANT_CANARY" : "VARIANT_STABLE",
      bucket,
      weightBp: 500,
      reason: "ROUTE_REASON_WEIGHT",
      rolloutVersion: "1",
    });
  });

  it("Connect GET for Route (NO_SIDE_EFFECTS)", async () => {
    await connectJson(server.url, "rollgate.v1.RolloutService/CreateRollout", createBody("curl-get"));
    const message = encodeURIComponent(JSON.stringify({ rollout: "curl-get", key: "k" }));
    const r = await curl([`${server.url}/rollgate.v1.DecisionService/Route?connect=v1&encoding=json&message=${message}`]);
    expect(r.status).toBe(200);
    expect(r.json).toMatchObject({ bucket: bucketOf("curl-get", "k") });
  });

  it("gRPC from @grpc/grpc-js on the same port", async () => {
    const rollouts = grpcJsClient(RolloutService, server.address);
    const decisions = grpcJsClient(DecisionService, server.address);
    try {
      const res = await unary<CreateRolloutResponse>(rollouts, "createRollout", {
        rollout: create(RolloutSchema, { name: "grpc-js", stableVersion: "s", canaryVersion: "c", salt: "salty" }),
      });
      expect(res.rollout!.salt).toBe("salty");
      const routed = await unary<RouteResponse>(decisions, "route", { rollout: "grpc-js", key: "ключ-🚀" });
      expect(routed.bucket).toBe(bucketOf("salty", "ключ-🚀"));
      const err = await unary(decisions, "route", { rollout: "grpc-js", key: "" }).catch((e: grpc.ServiceError) => e);
      expect(err).toMatchObject({ code: grpc.status.INVALID_ARGUMENT, details: "key: must not be empty" });
      const missing = await unary(decisions, "route", { rollout: "nope", key: "k" }).catch((e: grpc.ServiceError) => e);
      expect(missing).toMatchObject({ code: grpc.status.NOT_FOUND });
    } finally {
      rollouts.close();
      decisions.close();
    }
  });

  it("grpcurl through reflection: list, describe and a Route call", async () => {
    await connectJson(server.url, "rollgate.v1.RolloutService/CreateRollout", createBody("grpcurl"));
    const list = await grpcurl(["-plaintext", server.address, "list"]);
    expect(list.code).toBe(0);
    expect(list.stdout.split("\n")).toEqual(
      expect.arrayContaining(["rollgate.v1.DecisionService", "rollgate.v1.RolloutService", "grpc.health.v1.Health"]),
    );
    const describe = await grpcurl(["-plaintext", server.address, "describe", "rollgate.v1.DecisionService.Route"]);
    expect(describe.stdout).toContain("rpc Route ( .rollgate.v1.RouteRequest ) returns ( .rollgate.v1.RouteResponse )");
    const call = await grpcurl(["-plaintext", "-d", '{"rollout":"grpcurl","key":"user-7"}', server.address, "rollgate.v1.DecisionService/Route"]);
    expect(call.code).toBe(0);
    expect(JSON.parse(call.stdout)).toMatchObject({ bucket: bucketOf("grpcurl", "user-7"), weightBp: 500 });
    const bad = await grpcurl(["-plaintext", "-d", '{"rollout":"grpcurl","key":""}', server.address, "rollgate.v1.DecisionService/Route"]);
    expect(bad.code).toBe(64 + 3);
    expect(bad.stderr).toContain("key: must not be empty");
    const health = await grpcurl(["-plaintext", "-d", '{"service":"rollgate.v1.DecisionService"}', server.address, "grpc.health.v1.Health/Check"]);
    expect(JSON.parse(health.stdout)).toEqual({ status: "SERVING" });
  });

  it("plain HTTP: /healthz, /readyz and Prometheus /metrics", async () => {
    expect((await curl([`${server.url}/healthz`])).status).toBe(200);
    expect((await curl([`${server.url}/readyz`])).status).toBe(200);
    await connectJson(server.url, "rollgate.v1.DecisionService/Route", { rollout: "curl-json", key: "m" });
    const m = await curl([`${server.url}/metrics`]);
    expect(m.status).toBe(200);
    expect(m.body).toMatch(/rollgate_rpc_requests_total\{method="rollgate.v1.DecisionService\/Route",code="ok"\} \d+/);
    expect(m.body).toMatch(/rollgate_rpc_duration_seconds_bucket\{le="[\d.]+",method="rollgate.v1.DecisionService\/Route"\}/);
    expect(m.body).toMatch(/rollgate_routes_total\{rollout="curl-json",variant="(stable|canary)"\} \d+/);
    expect(m.body).toMatch(/rollgate_rollouts\{stage="canary"\} \d+/);
    expect(m.body).toContain("process_cpu_user_seconds_total");
  });

  it("answers a request over 4 MiB with RESOURCE_EXHAUSTED", async () => {
    const big = await connectJson(server.url, "rollgate.v1.DecisionService/Route", { rollout: "curl-json", key: "x".repeat(5 * 1024 * 1024) });
    expect(big.json).toMatchObject({ code: "resource_exhausted" });
  });

  it("never leaks a SQLite message: INTERNAL with a request id only", async () => {
    await connectJson(server.url, "rollgate.v1.RolloutService/CreateRollout", createBody("internal"));
    const db = new Database(server.dbPath);
    db.exec("CREATE TRIGGER sabotage BEFORE INSERT ON events BEGIN SELECT RAISE(ABORT, 'secret sqlite detail'); END;");
    try {
      const r = await connectJson(server.url, "rollgate.v1.RolloutService/Pause", { name: "internal" }, ["x-request-id: req-123"]);
      expect(r.json).toEqual({ code: "internal", message: "internal error (request id req-123)" });
      expect(r.body).not.toContain("sqlite");
      const get = await connectJson(server.url, "rollgate.v1.RolloutService/GetRollout", { name: "internal" });
      expect(get.json).toMatchObject({ rollout: { version: "1" } });
    } finally {
      db.exec("DROP TRIGGER sabotage");
      db.close();
    }
  });
});

describe("bearer tokens and roles", () => {
  let secured: TestServer;
  beforeAll(async () => {
    secured = await startTestServer({}, { tokens: TEST_TOKENS });
  });
  afterAll(async () => {
    await secured.stop();
  });

  it("UNAUTHENTICATED without or with an unknown token, PERMISSION_DENIED for a weak role", async () => {
    const none = await connectJson(secured.url, "rollgate.v1.RolloutService/ListRollouts", {});
    expect(none.json).toMatchObject({ code: "unauthenticated" });
    const unknown = await connectJson(secured.url, "rollgate.v1.RolloutService/ListRollouts", {}, ["authorization: Bearer not-a-token-at-all"]);
    expect(unknown.json).toMatchObject({ code: "unauthenticated" });
    const reader = await connectJson(secured.url, "rollgate.v1.RolloutService/CreateRollout", createBody("x"), [
      "authorization: Bearer reader-token-01234567890",
    ]);
    expect(reader.json).toMatchObject({ code: "permission_denied" });
    expect(reader.body).toContain("needs operator");
  });

  it("records the token name as the actor", async () => {
    const rollouts = grpcJsClient(RolloutService, secured.address);
    try {
      const res = await unary<CreateRolloutResponse>(
        rollouts,
        "createRollout",
        { rollout: create(RolloutSchema, { name: "secured", stableVersion: "a", canaryVersion: "b" }), reason: "ci" },
        bearer("operator-token-0123456789"),
      );
      expect(res.rollout!.createdBy).toBe("deployer");
      const denied = await unary(rollouts, "deleteRollout", { name: "secured" }, bearer("operator-token-0123456789")).catch(
        (e: grpc.ServiceError) => e,
      );
      expect(denied).toMatchObject({ code: grpc.status.PERMISSION_DENIED });
    } finally {
      rollouts.close();
    }
    const routed = await connectJson(secured.url, "rollgate.v1.DecisionService/Route", { rollout: "secured", key: "k" }, [
      "authorization: Bearer reporter-token-0123456789",
    ]);
    expect(routed.status).toBe(200);
  });

  it("leaves health checks open", async () => {
    const h = await grpcurl(["-plaintext", secured.address, "grpc.health.v1.Health/Check"]);
    expect(JSON.parse(h.stdout)).toEqual({ status: "SERVING" });
  });
});
