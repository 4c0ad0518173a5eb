import { create, createFileRegistry, fromBinary } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema, FileDescriptorSetSchema, type FileDescriptorProto } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, createClient, createRouterTransport, type ConnectRouter, type Interceptor } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import * as v1 from "../../gen/grpc/reflection/v1/reflection_pb.js";
import * as v1alpha from "../../gen/grpc/reflection/v1alpha/reflection_pb.js";
import { DecisionService, RouteReason } from "../../gen/rollgate/v1/decision_service_pb.js";
import { Variant } from "../../gen/rollgate/v1/rollout_pb.js";
import { RolloutService } from "../../gen/rollgate/v1/rollout_service_pb.js";
import { createHealthStatus } from "../../src/server/grpc-health.js";
import { listenOnePort, type OnePortListener } from "../../src/server/one-port.js";
import { reflectionRoutes, registerReflection } from "../../src/server/reflection.js";
import { grpcurl } from "../helpers/grpcurl.js";

const ALL_SERVICES = [
  "grpc.health.v1.Health",
  "grpc.reflection.v1.ServerReflection",
  "grpc.reflection.v1alpha.ServerReflection",
  "rollgate.v1.DecisionService",
  "rollgate.v1.RolloutService",
];

/** The server's services, with test-only rollgate implementations, and reflection registered last. */
function routes(router: ConnectRouter): void {
  router.service(DecisionService, {
    route: (req) => ({ variant: Variant.STABLE, version: `stable:${req.key}`, reason: RouteReason.WEIGHT }),
  });
  router.service(RolloutService, {});
  const health = createHealthStatus([DecisionService.typeName, RolloutService.typeName], "SERVING");
  router.service(health.service, health.impl);
  registerReflection(router);
}

type V1Question = v1.ServerReflectionRequest["messageRequest"];

/** Sends the questions on one v1 reflection stream and returns the answers in order. */
async function askV1(questions: V1Question[], register: (router: ConnectRouter) => void = routes): Promise<v1.ServerReflectionResponse[]> {
  const client = createClient(v1.ServerReflection, createRouterTransport(register));
  async function* requests() {
    for (const q of questions) yield create(v1.ServerReflectionRequestSchema, { host: "test-host", messageRequest: q });
  }
  const out: v1.ServerReflectionResponse[] = [];
  for await (const res of client.serverReflectionInfo(requests())) out.push(res);
  return out;
}

function files(res: v1.ServerReflectionResponse | v1alpha.ServerReflectionResponse | undefined): FileDescriptorProto[] {
  if (res?.messageResponse.case !== "fileDescriptorResponse") {
    throw new Error(`expected files, got ${res?.messageResponse.case ?? "nothing"}: ${JSON.stringify(res?.messageResponse.value)}`);
  }
  return res.messageResponse.value.fileDescriptorProto.map((b) => fromBinary(FileDescriptorProtoSchema, b));
}

/**
 * Orders files so that each comes after its imports, as a FileDescriptorSet must be; an import
 * missing from `all` is left out, so the registry built from the set fails on it.
 */
function importsFirst(all: FileDescriptorProto[]): FileDescriptorProto[] {
  const out: FileDescriptorProto[] = [];
  const visit = (f: FileDescriptorProto) => {
    if (out.includes(f)) return;
    for (const dep of f.dependency) {
      const d = all.find((x) => x.name === dep);
      if (d !== undefined) visit(d);
    }
    out.push(f);
  };
  all.forEach(visit);
  return out;
}

function errorOf(res: v1.ServerReflectionResponse | undefined): { errorCode: number; errorMessage: string } | undefined {
  return res?.messageResponse.case === "errorResponse" ? res.messageResponse.value : undefined;
}

describe("reflection, in memory (v1)", () => {
  it("lists every registered service, reflection and health included", async () => {
    const [res] = await askV1([{ case: "listServices", value: "" }]);
    expect(res?.messageResponse.case).toBe("listServicesResponse");
    const names = res?.messageResponse.case === "listServicesResponse" ? res.messageResponse.value.service.map((s) => s.name) : [];
    expect(names).toEqual(ALL_SERVICES);
    expect(res?.validHost).toBe("test-host");
    expect(res?.originalRequest?.messageRequest).toEqual({ case: "listServices", value: "" });
  });

  it("answers file_containing_symbol with the file and every import, so the set resolves on its own", async () => {
    const [res] = await askV1([{ case: "fileContainingSymbol", value: "rollgate.v1.DecisionService" }]);
    const got = files(res);
    expect(got[0]?.name).toBe("rollgate/v1/decision_service.proto");
    expect(got.map((f) => f.name).sort()).toEqual([
      "google/protobuf/duration.proto",
      "google/protobuf/timestamp.proto",
      "rollgate/v1/decision_service.proto",
      "rollgate/v1/health.proto",
      "rollgate/v1/rollout.proto",
    ]);
    // createFileRegistry throws on any import it cannot resolve from the answer alone.
    const registry = createFileRegistry(create(FileDescriptorSetSchema, { file: importsFirst(got) }));
    const service = registry.getService("rollgate.v1.DecisionService");
    expect(service?.methods.map((m) => m.name)).toContain("Route");
    expect(registry.getMessage("rollgate.v1.RouteResponse")?.fields.map((f) => f.name)).toContain("rollout_version");
  });

  it("does not send a file twice on one stream, except the one asked for", async () => {
    const [first, second, third] = await askV1([
      { case: "fileContainingSymbol", value: "rollgate.v1.DecisionService" },
      { case: "fileContainingSymbol", value: "rollgate.v1.RolloutService" },
      { case: "fileByFilename", value: "rollgate/v1/rollout.proto" },
    ]);
    expect(files(first)).toHaveLength(5);
    expect(files(second).map((f) => f.name).sort()).toEqual([
      "google/protobuf/field_mask.proto",
      "rollgate/v1/event.proto",
      "rollgate/v1/rollout_service.proto",
    ]);
    expect(files(third).map((f) => f.name)).toEqual(["rollgate/v1/rollout.proto"]);
  });

  it.each([
    ["rollgate.v1.DecisionService", "rollgate/v1/decision_service.proto"],
    ["rollgate.v1.DecisionService.Route", "rollgate/v1/decision_service.proto"],
    ["rollgate.v1.RouteRequest", "rollgate/v1/decision_service.proto"],
    ["rollgate.v1.RouteRequest.key", "rollgate/v1/decision_service.proto"],
    [".rollgate.v1.Rollout", "rollgate/v1/rollout.proto"],
    ["rollgate.v1.Rollout.FeaturesEntry", "rollgate/v1/rollout.proto"],
    ["rollgate.v1.Gate.kind", "rollgate/v1/rollout.proto"],
    ["rollgate.v1.Variant", "rollgate/v1/rollout.proto"],
    ["rollgate.v1.Variant.VARIANT_CANARY", "rollgate/v1/rollout.proto"],
    ["rollgate.v1.VARIANT_CANARY", "rollgate/v1/rollout.proto"],
    ["rollgate.v1.RolloutService.WatchEvents", "rollgate/v1/rollout_service.proto"],
    ["grpc.health.v1.HealthCheckResponse.ServingStatus", "grpc/health/v1/health.proto"],
    ["grpc.health.v1.HealthCheckResponse.SERVING", "grpc/health/v1/health.proto"],
    ["grpc.health.v1.HealthListResponse.StatusesEntry", "grpc/health/v1/health.proto"],
    ["grpc.reflection.v1alpha.ServerReflection", "grpc/reflection/v1alpha/reflection.proto"],
    ["google.protobuf.Timestamp", "google/protobuf/timestamp.proto"],
    ["google.protobuf.FieldMask", "google/protobuf/field_mask.proto"],
  ])("finds the file containing %s", async (symbol, file) => {
    const [res] = await askV1([{ case: "fileContainingSymbol", value: symbol }]);
    expect(files(res)[0]?.name).toBe(file);
  });

  it("answers unknown names with a NOT_FOUND error_response and keeps the stream going", async () => {
    const [symbol, file, after] = await askV1([
      { case: "fileContainingSymbol", value: "rollgate.v1.Nope" },
      { case: "fileByFilename", value: "rollgate/v1/nope.proto" },
      { case: "fileByFilename", value: "rollgate/v1/event.proto" },
    ]);
    expect(errorOf(symbol)).toMatchObject({ errorCode: Code.NotFound, errorMessage: 'symbol "rollgate.v1.Nope" not found' });
    expect(errorOf(file)?.errorCode).toBe(Code.NotFound);
    expect(files(after)[0]?.name).toBe("rollgate/v1/event.proto");
  });

  it("reports no extensions: an empty list for a known message, NOT_FOUND otherwise", async () => {
    const [numbers, unknownType, extension] = await askV1([
      { case: "allExtensionNumbersOfType", value: "rollgate.v1.Rollout" },
      { case: "allExtensionNumbersOfType", value: "rollgate.v1.Nope" },
      { case: "fileContainingExtension", value: create(v1.ExtensionRequestSchema, { containingType: "rollgate.v1.Rollout", extensionNumber: 100 }) },
    ]);
    expect(numbers?.messageResponse).toEqual({
      case: "allExtensionNumbersResponse",
      value: expect.objectContaining({ baseTypeName: "rollgate.v1.Rollout", extensionNumber: [] }) as unknown,
    });
    expect(errorOf(unknownType)?.errorCode).toBe(Code.NotFound);
    expect(errorOf(extension)?.errorCode).toBe(Code.NotFound);
  });

  it("answers an empty request with INVALID_ARGUMENT", async () => {
    const [res] = await askV1([{ case: undefined }]);
    expect(errorOf(res)?.errorCode).toBe(Code.InvalidArgument);
  });

  it("describes exactly the services it is given, plus itself", async () => {
    const only = reflectionRoutes([DecisionService]);
    const [list, other] = await askV1(
      [
        { case: "listServices", value: "" },
        { case: "fileContainingSymbol", value: "rollgate.v1.RolloutService" },
      ],
      (router) => {
        router.service(DecisionService, {});
        only(router);
      },
    );
    const names = list?.messageResponse.case === "listServicesResponse" ? list.messageResponse.value.service.map((s) => s.name) : [];
    expect(names).toEqual(["grpc.reflection.v1.ServerReflection", "grpc.reflection.v1alpha.ServerReflection", "rollgate.v1.DecisionService"]);
    expect(errorOf(other)?.errorCode).toBe(Code.NotFound);
  });
});

describe("reflection, in memory (v1alpha)", () => {
  it("answers list_services and file_containing_symbol like v1", async () => {
    const client = createClient(v1alpha.ServerReflection, createRouterTransport(routes));
    async function* requests() {
      yield create(v1alpha.ServerReflectionRequestSchema, { messageRequest: { case: "listServices", value: "" } });
      yield create(v1alpha.ServerReflectionRequestSchema, { messageRequest: { case: "fileContainingSymbol", value: "rollgate.v1.RouteRequest" } });
      yield create(v1alpha.ServerReflectionRequestSchema, { messageRequest: { case: "fileContainingSymbol", value: "rollgate.v1.Nope" } });
    }
    const out: v1alpha.ServerReflectionResponse[] = [];
    for await (const res of client.serverReflectionInfo(requests())) out.push(res);
    const [list, file, missing] = out;
    expect(list?.$typeName).toBe("grpc.reflection.v1alpha.ServerReflectionResponse");
    const names = list?.messageResponse.case === "listServicesResponse" ? list.messageResponse.value.service.map((s) => s.name) : [];
    expect(names).toEqual(ALL_SERVICES);
    expect(files(file)[0]?.name).toBe("rollgate/v1/decision_service.proto");
    expect(missing?.messageResponse.case === "errorResponse" ? missing.messageResponse.value.errorCode : -1).toBe(Code.NotFound);
  });
});

describe("reflection, end to end with grpcurl", () => {
  let listener: OnePortListener;
  let blockV1 = false;
  const reflectionCalls: string[] = [];

  beforeAll(async () => {
    // Records which reflection version grpcurl uses, and can refuse v1 to force its fallback.
    const spy: Interceptor = (next) => (req) => {
      if (req.service.typeName.startsWith("grpc.reflection.")) {
        reflectionCalls.push(req.service.typeName);
        if (blockV1 && req.service.typeName === v1.ServerReflection.typeName) {
          throw new ConnectError("v1 switched off by the test", Code.Unimplemented);
        }
      }
      return next(req);
    };
    const handler = connectNodeAdapter({ routes, interceptors: [spy] });
    listener = await listenOnePort({ host: "127.0.0.1", port: 0, handler });
  });

  afterAll(async () => {
    await listener?.close(0);
  });

  /** Runs `grpcurl -plaintext [flags] ADDRESS [args]` and expects it to succeed quietly. */
  async function ok(flags: string[], ...args: string[]): Promise<string> {
    const r = await grpcurl(["-plaintext", ...flags, listener.address, ...args]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    return r.stdout;
  }

  it("lists the services", async () => {
    const out = await ok([], "list");
    expect(out.trim().split("\n")).toEqual(ALL_SERVICES);
    expect(reflectionCalls).toContain(v1.ServerReflection.typeName);
  });

  it("describes a service, a message and a dotted message name", async () => {
    const service = await ok([], "describe", "rollgate.v1.DecisionService");
    expect(service).toContain("rollgate.v1.DecisionService is a service:");
    expect(service).toContain("rpc Route ( .rollgate.v1.RouteRequest ) returns ( .rollgate.v1.RouteResponse ) {\n    option idempotency_level = NO_SIDE_EFFECTS;");
    expect(service).toContain("rpc WatchHealth ( .rollgate.v1.WatchHealthRequest ) returns ( stream .rollgate.v1.HealthUpdate );");

    const message = await ok(["-use-reflection"], "describe", "rollgate.v1.RouteRequest");
    expect(message).toContain("rollgate.v1.RouteRequest is a message:");
    expect(message).toContain("string key = 2;");

    const rollout = await ok([], "describe", ".rollgate.v1.Rollout");
    expect(rollout).toContain("rollgate.v1.Rollout is a message:");
    expect(rollout).toMatch(/map<string, bool> features = \d+;/);
    expect(rollout).toContain(".google.protobuf.Timestamp");
  });

  it("calls a method with JSON built from reflected descriptors", async () => {
    const out = await ok(["-d", '{"rollout":"checkout","key":"from-grpcurl"}'], "rollgate.v1.DecisionService/Route");
    expect(JSON.parse(out)).toMatchObject({ variant: "VARIANT_STABLE", version: "stable:from-grpcurl", reason: "ROUTE_REASON_WEIGHT" });
  });

  it("falls back to v1alpha when v1 is unavailable", async () => {
    blockV1 = true;
    try {
      reflectionCalls.length = 0;
      const out = await ok(["-use-reflection"], "describe", "rollgate.v1.RolloutService");
      expect(out).toContain("rpc Promote ( .rollgate.v1.PromoteRequest ) returns ( .rollgate.v1.PromoteResponse );");
      expect(reflectionCalls).toContain(v1alpha.ServerReflection.typeName);
    } finally {
      blockV1 = false;
    }
  });

  it("fails describe of an unknown symbol", async () => {
    const r = await grpcurl(["-plaintext", listener.address, "describe", "rollgate.v1.Nope"]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/not found/i);
  });
});
