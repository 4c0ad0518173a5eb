import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import * as grpc from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { create, toBinary } from "@bufbuild/protobuf";
import { DecisionService, RouteRequestSchema } from "../../gen/rollgate/v1/decision_service_pb.js";
import { connectJson, curl } from "../helpers/curl.js";
import { grpcJsClient, unary } from "../helpers/grpc-js.js";
import { startPostgres } from "../helpers/postgres.js";
import { runCli } from "../cli/run-cli.js";
import { repoRoot, spawnServer, tempDir, type ServerProcess } from "../helpers/servers.js";

/**
 * OpenTelemetry end to end: a real rollgate process exports OTLP/HTTP JSON to a real receiver on
 * a loopback port, which decodes every span it is sent.
 */

type Value = { stringValue?: string; intValue?: string | number; boolValue?: boolean; doubleValue?: number; arrayValue?: { values?: Value[] } };
type Attr = { key: string; value: Value };
interface OtlpSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  kind: number;
  attributes?: Attr[];
  status?: { code?: number; message?: string };
}
/** A received span with its attributes as plain values. */
interface Received {
  readonly traceId: string;
  readonly spanId: string;
  readonly parentSpanId: string;
  readonly name: string;
  readonly kind: number;
  readonly status: number;
  readonly attrs: Record<string, unknown>;
  readonly resource: Record<string, unknown>;
}

function valueOf(v: Value): unknown {
  if (v.stringValue !== undefined) return v.stringValue;
  if (v.intValue !== undefined) return Number(v.intValue);
  if (v.boolValue !== undefined) return v.boolValue;
  if (v.doubleValue !== undefined) return v.doubleValue;
  if (v.arrayValue !== undefined) return (v.arrayValue.values ?? []).map(valueOf);
  return undefined;
}
const attrsOf = (list: Attr[] | undefined) => Object.fromEntries((list ?? []).map((a) => [a.key, valueOf(a.value)]));

/** OTLP span kinds and status codes, as the JSON encoding numbers them. */
const KIND = { internal: 1, server: 2, client: 3 };
const STATUS = { unset: 0, ok: 1, error: 2 };

/** A local OTLP/HTTP receiver (JSON): keeps every span POSTed to /v1/traces. */
async function startReceiver(): Promise<{ url: string; spans: Received[]; requests: number; close(): Promise<void> }> {
  const spans: Received[] = [];
  const state = { requests: 0 };
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      state.requests++;
      if (req.method !== "POST" || req.url !== "/v1/traces" || req.headers["content-type"] !== "application/json") {
        res.writeHead(415).end();
        return;
      }
      const body = JSON.parse(Buffer.concat(chunks).toString("utf8")) as {
        resourceSpans: { resource?: { attributes?: Attr[] }; scopeSpans: { spans: OtlpSpan[] }[] }[];
      };
      for (const rs of body.resourceSpans) {
        const resource = attrsOf(rs.resource?.attributes);
        for (const ss of rs.scopeSpans) {
          for (const s of ss.spans) {
            spans.push({
              traceId: s.traceId,
              spanId: s.spanId,
              parentSpanId: s.parentSpanId ?? "",
              name: s.name,
              kind: s.kind,
              status: s.status?.code ?? 0,
              attrs: attrsOf(s.attributes),
              resource,
            });
          }
        }
      }
      res.writeHead(200, { "content-type": "application/json" }).end("{}");
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    spans,
    get requests() {
      return state.requests;
    },
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

/** Resolves with the first span `match` accepts, polling what the receiver has (the exporter batches every 100 ms). */
async function spanWhere(spans: Received[], match: (s: Received) => boolean, what: string): Promise<Received> {
  const deadline = Date.now() + 15_000;
  for (;;) {
    const s = spans.find(match);
    if (s !== undefined) return s;
    if (Date.now() > deadline) throw new Error(`no span ${what}; received: ${spans.map((x) => x.name).join(", ")}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const TRACE = "4bf92f3577b34da6a3ce929d0e0e4736";
const packageVersion = (JSON.parse(readFileSync(join(repoRoot, "package.json"), "utf8")) as { version: string }).version;
const traceparent = (parent: string) => `00-${TRACE}-${parent}-01`;
const randomHex = (bytes: number) => Array.from({ length: bytes }, () => Math.floor(Math.random() * 256).toString(16).padStart(2, "0")).join("");

/** A resolve hook, loaded with --import, that writes down every @opentelemetry module the process loads. */
function writeLoadHook(dir: string): { env: NodeJS.ProcessEnv; loaded(): string[] } {
  mkdirSync(dir, { recursive: true });
  const log = join(dir, "loaded.txt");
  writeFileSync(log, "");
  const hooks = join(dir, "hooks.mjs");
  writeFileSync(
    hooks,
    `import { appendFileSync } from "node:fs";\n` +
      `export async function resolve(specifier, context, next) {\n` +
      `  const r = await next(specifier, context);\n` +
      `  if (r.url.includes("/@opentelemetry/")) appendFileSync(${JSON.stringify(log)}, r.url + "\\n");\n` +
      `  return r;\n}\n`,
  );
  const register = join(dir, "register.mjs");
  writeFileSync(register, `import { register } from "node:module";\nregister(${JSON.stringify(pathToFileURL(hooks).href)});\n`);
  return {
    env: { NODE_OPTIONS: `--import ${pathToFileURL(register).href}` },
    loaded: () => readFileSync(log, "utf8").split("\n").filter((l) => l !== ""),
  };
}

const running: ServerProcess[] = [];
const tmp = tempDir("rollgate-tracing-");
afterAll(() => {
  for (const p of running.splice(0)) p.child.kill("SIGKILL");
  tmp.cleanup();
});

async function serve(name: string, args: string[], env: NodeJS.ProcessEnv): Promise<ServerProcess & { url: string }> {
  const p = await spawnServer(["--listen", "127.0.0.1:0", "--db", join(tmp.dir, `${name}.db`), ...args], env);
  running.push(p);
  return Object.assign(p, { url: `http://127.0.0.1:${p.port}` });
}

const rollout = (name: string, extra: object = {}) => ({ rollout: { name, stableVersion: "v1", canaryVersion: "v2", ...extra } });

function routeOverGrpc(address: string, req: { rollout: string; key: string }, parent: string): Promise<unknown> {
  const client = grpcJsClient(DecisionService, address);
  const md = new grpc.Metadata();
  md.set("traceparent", traceparent(parent));
  return unary(client, "route", req, md).finally(() => client.close());
}

describe("OpenTelemetry traces (OTLP/HTTP JSON to a local receiver)", () => {
  let receiver: Awaited<ReturnType<typeof startReceiver>>;
  const env = () => ({ OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url, OTEL_BSP_SCHEDULE_DELAY: "100", OTEL_SERVICE_NAME: "rollgate-under-test", OTEL_RESOURCE_ATTRIBUTES: "deployment.environment.name=e2e,team=release%20eng" });
  beforeAll(async () => {
    receiver = await startReceiver();
  });
  afterAll(async () => {
    await receiver.close();
  });

  for (const fastPath of [true, false]) {
    // Concurrent: the two servers start side by side.
    it.concurrent(`a gRPC Route with a traceparent is a server span, the caller's child (fast path ${fastPath ? "on" : "off"})`, async () => {
      const p = await serve(`route-${fastPath}`, fastPath ? [] : ["--no-grpc-fast-path"], env());
      expect((await connectJson(p.url, "rollgate.v1.RolloutService/CreateRollout", rollout("checkout"))).status).toBe(200);
      const parent = randomHex(8);
      await routeOverGrpc(`127.0.0.1:${p.port}`, { rollout: "checkout", key: "user-1" }, parent);
      const span = await spanWhere(receiver.spans, (s) => s.parentSpanId === parent, `with parent ${parent}`);
      expect(span).toMatchObject({ traceId: TRACE, name: "rollgate.v1.DecisionService/Route", kind: KIND.server, status: STATUS.unset });
      expect(span.attrs).toMatchObject({
        "rpc.system": "grpc",
        "rpc.service": "rollgate.v1.DecisionService",
        "rpc.method": "Route",
        "rpc.grpc.status_code": 0,
        "server.address": "127.0.0.1",
        "server.port": p.port,
        "network.protocol.name": "http",
        "rollgate.rollout": "checkout",
      });
      expect(span.resource).toMatchObject({ "service.name": "rollgate-under-test", "deployment.environment.name": "e2e", team: "release eng", "service.version": packageVersion });
      expect(span.resource["service.instance.id"]).toEqual(expect.any(String));
      // The path that served it is the one asked for.
      const metrics = (await curl([`${p.url}/metrics`])).body;
      const served = /^rollgate_grpc_fast_path_requests_total\{method="rollgate\.v1\.DecisionService\/Route"\} (\d+)$/m.exec(metrics)?.[1];
      expect(served).toBe(fastPath ? "1" : undefined);
      p.child.kill("SIGKILL");
    });
  }

  describe("one server", () => {
    let p: ServerProcess & { url: string };
    const hook = writeLoadHook(join(tmp.dir, "one"));
    beforeAll(async () => {
      p = await serve("one", [], { ...env(), ...hook.env });
    });

    it("a Connect JSON call is a connect_rpc span under the caller's, and its store commit is that span's child", async () => {
      expect((await connectJson(p.url, "rollgate.v1.RolloutService/CreateRollout", rollout("weights"))).status).toBe(200);
      const parent = randomHex(8);
      const res = await connectJson(p.url, "rollgate.v1.RolloutService/SetWeight", { name: "weights", weightBp: 1200, reason: "traced" }, [
        `traceparent: ${traceparent(parent)}`,
        "tracestate: vendor=opaque",
      ]);
      expect(res.status).toBe(200);
      const rpc = await spanWhere(receiver.spans, (s) => s.parentSpanId === parent, `with parent ${parent}`);
      expect(rpc).toMatchObject({ traceId: TRACE, name: "rollgate.v1.RolloutService/SetWeight", kind: KIND.server, status: STATUS.unset });
      expect(rpc.attrs).toMatchObject({ "rpc.system": "connect_rpc", "rpc.method": "SetWeight", "rollgate.rollout": "weights" });
      expect(rpc.attrs).not.toHaveProperty("rpc.connect_rpc.error_code");
      const commit = await spanWhere(receiver.spans, (s) => s.parentSpanId === rpc.spanId && s.name === "store.commit", "store.commit under SetWeight");
      expect(commit).toMatchObject({ traceId: TRACE, kind: KIND.client });
      // The new rollout state and one audit event, in one transaction.
      expect(commit.attrs).toMatchObject({
        "db.system.name": "sqlite",
        "db.operation.name": "commit",
        "db.namespace": join(tmp.dir, "one.db"),
        "rollgate.rollout": "weights",
        "rollgate.store.rows": 2,
        "rollgate.store.events": 1,
      });
    });

    it("a Connect Route (JSON over HTTP/1.1 and binary over h2c, served by the Connect fast path) is a connect_rpc span under the caller's", async () => {
      expect((await connectJson(p.url, "rollgate.v1.RolloutService/CreateRollout", rollout("fast"))).status).toBe(200);
      const parents = [randomHex(8), randomHex(8), randomHex(8)];
      const json = await connectJson(p.url, "rollgate.v1.DecisionService/Route", { rollout: "fast", key: "user-7" }, [`traceparent: ${traceparent(parents[0]!)}`]);
      expect(json.status).toBe(200);
      const refused = await connectJson(p.url, "rollgate.v1.DecisionService/Route", { rollout: "nope", key: "user-7" }, [`traceparent: ${traceparent(parents[1]!)}`]);
      expect(refused.status).toBe(404);
      const body = toBinary(RouteRequestSchema, create(RouteRequestSchema, { rollout: "fast", key: "user-8" }));
      const file = join(tmp.dir, "route.bin");
      writeFileSync(file, body);
      const bin = await curl(["--http2-prior-knowledge", "-o", "/dev/null", "-H", "content-type: application/proto", "-H", `traceparent: ${traceparent(parents[2]!)}`, "--data-binary", `@${file}`, `${p.url}/rollgate.v1.DecisionService/Route`]);
      expect(bin.status).toBe(200);
      for (const [i, parent] of parents.entries()) {
        const span = await spanWhere(receiver.spans, (s) => s.parentSpanId === parent, `with parent ${parent}`);
        expect(span).toMatchObject({ traceId: TRACE, name: "rollgate.v1.DecisionService/Route", kind: KIND.server, status: STATUS.unset });
        expect(span.attrs).toMatchObject({ "rpc.system": "connect_rpc", "rpc.method": "Route" });
        if (i === 1) expect(span.attrs).toMatchObject({ "rpc.connect_rpc.error_code": "not_found" });
        else expect(span.attrs).toMatchObject({ "rollgate.rollout": "fast" });
      }
      // Served by the Connect fast path, not connect-node.
      const metrics = (await curl([`${p.url}/metrics`])).body;
      expect(Number(/^rollgate_connect_fast_path_requests_total\{method="rollgate\.v1\.DecisionService\/Route"\} (\d+)$/m.exec(metrics)?.[1])).toBeGreaterThanOrEqual(3);
    });

    it("a refused call records its code; streams are spans from open to end; a server failure (a deadline) is an error span", async () => {
      const parent = randomHex(8);
      await expect(routeOverGrpc(`127.0.0.1:${p.port}`, { rollout: "missing", key: "u" }, parent)).rejects.toMatchObject({ code: grpc.status.NOT_FOUND });
      const notFound = await spanWhere(receiver.spans, (s) => s.parentSpanId === parent, "of the NOT_FOUND Route");
      // A caller's mistake is not the server's failure (the RPC conventions): the code, no error status.
      expect(notFound.attrs).toMatchObject({ "rpc.grpc.status_code": grpc.status.NOT_FOUND, "rollgate.rollout": "missing" });
      expect(notFound.status).toBe(STATUS.unset);

      const json = await connectJson(p.url, "rollgate.v1.DecisionService/Route", { rollout: "missing", key: "u" });
      expect(json.status).toBe(404);
      const jsonSpan = await spanWhere(
        receiver.spans,
        (s) => s.attrs["rpc.system"] === "connect_rpc" && s.attrs["rpc.method"] === "Route" && s.attrs["rollgate.rollout"] === "missing",
        "of the NOT_FOUND Connect Route",
      );
      expect(jsonSpan.attrs["rpc.connect_rpc.error_code"]).toBe("not_found");

      // A WatchHealth stream (the gRPC fast path) is one span from open to end: here the client cancels it.
      await connectJson(p.url, "rollgate.v1.RolloutService/CreateRollout", rollout("watched"));
      const client = grpcJsClient(DecisionService, `127.0.0.1:${p.port}`);
      const streamParent = randomHex(8);
      const md = new grpc.Metadata();
      md.set("traceparent", traceparent(streamParent));
      const call = (client.watchHealth as (req: unknown, md: grpc.Metadata) => grpc.ClientReadableStream<unknown>)({ rollout: "watched" }, md);
      const code = await new Promise<number>((resolve) => {
        call.on("data", () => call.cancel());
        call.on("error", () => undefined);
        call.on("status", (s: grpc.StatusObject) => resolve(s.code));
      });
      client.close();
      expect(code).toBe(grpc.status.CANCELLED);
      const cancelled = await spanWhere(receiver.spans, (s) => s.parentSpanId === streamParent, "of the cancelled WatchHealth stream");
      expect(cancelled).toMatchObject({ name: "rollgate.v1.DecisionService/WatchHealth", kind: KIND.server, status: STATUS.unset });
      expect(cancelled.attrs).toMatchObject({ "rpc.grpc.status_code": grpc.status.CANCELLED, "rpc.system": "grpc" });

      // The same stream over Connect with a deadline the server enforces: DEADLINE_EXCEEDED is the server's failure.
      const deadlineParent = randomHex(8);
      const message = Buffer.from(JSON.stringify({ rollout: "watched" }));
      const envelope = Buffer.concat([Buffer.from([0, 0, 0, 0, 0]), message]);
      envelope.writeUInt32BE(message.length, 1);
      const res = await fetch(`${p.url}/rollgate.v1.DecisionService/WatchHealth`, {
        method: "POST",
        headers: { "content-type": "application/connect+json", "connect-timeout-ms": "500", traceparent: traceparent(deadlineParent) },
        body: envelope,
      });
      const end = Buffer.from(await res.arrayBuffer());
      expect(end.toString("utf8")).toContain('"deadline_exceeded"');
      const timedOut = await spanWhere(receiver.spans, (s) => s.parentSpanId === deadlineParent, "of the Connect WatchHealth stream");
      expect(timedOut).toMatchObject({ name: "rollgate.v1.DecisionService/WatchHealth", kind: KIND.server, status: STATUS.error });
      expect(timedOut.attrs).toMatchObject({ "rpc.system": "connect_rpc", "rpc.connect_rpc.error_code": "deadline_exceeded", "error.type": "deadline_exceeded" });
    });

    it("an evaluation round is a span with one child per rollout evaluated, carrying its decision", async () => {
      const spec = {
        gates: [{ name: "errors", minSamples: "50", errorRate: { max: 0.05 } }],
        analysis: { interval: "1s", window: "30s", consecutiveBreaches: 1 },
      };
      await connectJson(p.url, "rollgate.v1.RolloutService/CreateRollout", rollout("bad-canary", spec));
      await connectJson(p.url, "rollgate.v1.RolloutService/CreateRollout", rollout("quiet", spec));
      const outcomes = [
        ...Array.from({ length: 100 }, (_, i) => ({ variant: "VARIANT_CANARY", success: i >= 40, latencyMs: 20 })),
        ...Array.from({ length: 100 }, () => ({ variant: "VARIANT_STABLE", success: true, latencyMs: 20 })),
      ];
      expect((await connectJson(p.url, "rollgate.v1.DecisionService/RecordOutcome", { rollout: "bad-canary", outcomes })).status).toBe(200);

      const acted = await spanWhere(receiver.spans, (s) => s.name === "rollgate.evaluate" && s.attrs["rollgate.rollout"] === "bad-canary" && s.attrs["rollgate.decision.acted"] === true, "of the rollback");
      expect(acted.attrs).toMatchObject({
        "rollgate.decision": "rollback",
        "rollgate.decision.transition": "rolled_back",
        "rollgate.decision.blocking_gates": ["errors"],
        "rollgate.rollout.stage": "canary",
        "rollgate.rollout.step": 0,
        "rollgate.rollout.weight_bp": 500,
        "rollgate.decision.dry_run": false,
      });
      expect(String(acted.attrs["rollgate.decision.reason"])).toMatch(/canary error rate 0\.4 > max 0\.05/);
      const round = await spanWhere(receiver.spans, (s) => s.spanId === acted.parentSpanId, "of the round");
      expect(round).toMatchObject({ name: "rollgate.evaluation_round", traceId: acted.traceId, kind: KIND.internal });
      expect(round.attrs["rollgate.evaluation.due"]).toBeGreaterThanOrEqual(1);
      // The rollback's commit is the evaluation's child.
      const commit = await spanWhere(receiver.spans, (s) => s.parentSpanId === acted.spanId && s.name === "store.commit", "of the rollback's commit");
      expect(commit.attrs).toMatchObject({ "rollgate.rollout": "bad-canary", "db.operation.name": "commit" });
      // A rollout evaluated without a change says so: no samples, nothing done.
      const quiet = await spanWhere(receiver.spans, (s) => s.name === "rollgate.evaluate" && s.attrs["rollgate.rollout"] === "quiet", "of the quiet rollout");
      expect(quiet.attrs).toMatchObject({ "rollgate.decision.acted": false, "rollgate.decision.blocking_gates": ["errors"] });
      expect(quiet.attrs).not.toHaveProperty("rollgate.decision.transition");
    });

    it("the CLI loads none of it, even with the OTEL variables set", async () => {
      const cli = writeLoadHook(join(tmp.dir, "cli"));
      const r = await runCli(["list"], { env: { ...env(), ...cli.env, ROLLGATE_SERVER: p.url } });
      expect(r.code).toBe(0);
      expect(cli.loaded()).toEqual([]);
    });

    it("loads the SDK when configured", () => {
      const loaded = hook.loaded();
      expect(loaded.some((u) => u.includes("/@opentelemetry/sdk-trace-base/"))).toBe(true);
      expect(loaded.some((u) => u.includes("/@opentelemetry/exporter-trace-otlp-http/"))).toBe(true);
    });
  });

  it("a collector that never answers does not hold up a graceful shutdown", async () => {
    // Accepts connections and requests, answers none: the exporter would wait its 10-s timeout.
    const sockets = new Set<import("node:net").Socket>();
    const silent = createServer(() => undefined);
    silent.on("connection", (s) => sockets.add(s));
    await new Promise<void>((resolve) => silent.listen(0, "127.0.0.1", resolve));
    try {
      const endpoint = `http://127.0.0.1:${(silent.address() as AddressInfo).port}`;
      const p = await spawnServer(["--listen", "127.0.0.1:0", "--db", join(tmp.dir, "silent.db")], { OTEL_EXPORTER_OTLP_ENDPOINT: endpoint, OTEL_BSP_SCHEDULE_DELAY: "60000" });
      running.push(p);
      expect((await connectJson(`http://127.0.0.1:${p.port}`, "rollgate.v1.RolloutService/CreateRollout", rollout("held"))).status).toBe(200);
      p.child.kill("SIGTERM");
      // serve's own deadline is 9 s, after which it exits 1: this exits 0.
      expect(await p.exited).toEqual({ code: 0, signal: null });
    } finally {
      for (const s of sockets) s.destroy();
      await new Promise((resolve) => silent.close(resolve));
    }
  });

  it("a PostgreSQL store's commit is a span too, under the call that made it", async () => {
    const cluster = await startPostgres();
    try {
      const db = await cluster.createDatabase("traced");
      const p = await spawnServer(["--listen", "127.0.0.1:0", "--db", db], env());
      running.push(p);
      const url = `http://127.0.0.1:${p.port}`;
      expect((await connectJson(url, "rollgate.v1.RolloutService/CreateRollout", rollout("pg-weights"))).status).toBe(200);
      const parent = randomHex(8);
      expect((await connectJson(url, "rollgate.v1.RolloutService/SetWeight", { name: "pg-weights", weightBp: 3000, reason: "pg" }, [`traceparent: ${traceparent(parent)}`])).status).toBe(200);
      const rpc = await spanWhere(receiver.spans, (s) => s.parentSpanId === parent, `with parent ${parent}`);
      const commit = await spanWhere(receiver.spans, (s) => s.parentSpanId === rpc.spanId && s.name === "store.commit", "store.commit under the PostgreSQL SetWeight");
      expect(commit.attrs).toMatchObject({
        "db.system.name": "postgresql",
        "db.namespace": new URL(db).pathname.slice(1),
        "db.operation.name": "commit",
        "rollgate.rollout": "pg-weights",
        "rollgate.store.rows": 2,
      });
      p.child.kill("SIGKILL");
      await p.exited;
    } finally {
      cluster.stop();
    }
  });

  it("off (no OTEL variables, or OTEL_SDK_DISABLED) sends nothing and loads no OpenTelemetry module", async () => {
    const quiet = await startReceiver();
    try {
      const configs = [
        ["off", {}],
        ["disabled", { OTEL_SDK_DISABLED: "true", OTEL_EXPORTER_OTLP_ENDPOINT: quiet.url, OTEL_BSP_SCHEDULE_DELAY: "100" }],
      ] as const;
      await Promise.all(
        configs.map(async ([name, extra]) => {
          const hook = writeLoadHook(join(tmp.dir, name));
          const p = await serve(name, [], { ...extra, ...hook.env });
          await connectJson(p.url, "rollgate.v1.RolloutService/CreateRollout", rollout("untraced"));
          await connectJson(p.url, "rollgate.v1.RolloutService/SetWeight", { name: "untraced", weightBp: 900, reason: "x" }, [`traceparent: ${traceparent(randomHex(8))}`]);
          await routeOverGrpc(`127.0.0.1:${p.port}`, { rollout: "untraced", key: "u" }, randomHex(8));
          expect(p.logs.find((l) => l.msg === "listening")).not.toHaveProperty("tracing");
          expect(hook.loaded()).toEqual([]);
          p.child.kill("SIGKILL");
        }),
      );
      // Ten times the batch delay the disabled server was given: it sent nothing.
      await new Promise((r) => setTimeout(r, 1000));
      expect(quiet.requests).toBe(0);
    } finally {
      await quiet.close();
    }
  });
});
