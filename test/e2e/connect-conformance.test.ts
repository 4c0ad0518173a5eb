import { spawnSync } from "node:child_process";
import { request as h1Request, type IncomingHttpHeaders } from "node:http";
import { connect as h2Connect, type ClientHttp2Session } from "node:http2";
import { request as tlsRequest } from "node:https";
import { join } from "node:path";
import { brotliDecompressSync, gunzipSync, gzipSync } from "node:zlib";
import { create, toBinary } from "@bufbuild/protobuf";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { RouteBatchRequestSchema, RouteRequestSchema } from "../../gen/rollgate/v1/decision_service_pb.js";
import { SetWeightRequestSchema } from "../../gen/rollgate/v1/rollout_service_pb.js";
import { manualClock } from "../../src/domain/clock.js";
import { MAX_REQUEST_BYTES } from "../../src/server/server.js";
import { startTestServer, tempDir, TEST_TOKENS, type TestServer } from "../helpers/servers.js";

/**
 * The Connect fast path against connect-node: the same requests, over HTTP/1.1 and HTTP/2 (h2c
 * and TLS), to a server with the fast path and one without; status, the headers that matter and
 * the body must be the same, and the fast server must have served exactly the calls it should.
 */

const ROUTE = "/rollgate.v1.DecisionService/Route";
const BATCH = "/rollgate.v1.DecisionService/RouteBatch";
const RECORD = "/rollgate.v1.DecisionService/RecordOutcome";
const SET_WEIGHT = "/rollgate.v1.RolloutService/SetWeight";
const CONTROL = "/rollgate.v1.RolloutService/";
const OPERATOR = "Bearer operator-token-0123456789";
const READER = "Bearer reader-token-01234567890";
const REPORTER = "Bearer reporter-token-0123456789";

/** One request as the test sends it. */
interface Req {
  readonly method: string;
  readonly path: string;
  readonly headers: Record<string, string>;
  readonly body?: Uint8Array;
}

/** What a caller sees of an answer, and what is compared between the paths. */
interface Seen {
  status: number;
  headers: Record<string, string | undefined>;
  body: string;
}

/** The response headers compared between the two paths. */
const COMPARED = ["content-type", "content-encoding", "accept-encoding", "content-length", "x-request-id", "accept-post", "allow"];

function seen(status: number, headers: IncomingHttpHeaders, raw: Buffer): Seen {
  const encoding = headers["content-encoding"];
  const body = encoding === "gzip" ? gunzipSync(raw) : encoding === "br" ? brotliDecompressSync(raw) : raw;
  const h: Record<string, string | undefined> = {};
  for (const name of COMPARED) {
    const v = headers[name];
    if (v !== undefined) h[name] = Array.isArray(v) ? v.join(", ") : String(v);
  }
  // A request id the caller did not choose is random: only its presence is compared.
  if (h["x-request-id"] !== undefined && !/^cf-/.test(h["x-request-id"])) h["x-request-id"] = "<generated>";
  return { status, headers: h, body: body.toString("base64") };
}

type Transport = "h1" | "h2c" | "tls-h1" | "tls-h2";

/** Sends one request over HTTP/1.1 (node:http / node:https, one connection per request). */
function sendH1(base: string, r: Req, tls: boolean): Promise<Seen> {
  const url = new URL(r.path, base);
  return new Promise((resolve, reject) => {
    const send = tls ? tlsRequest : h1Request;
    const req = send(url, { method: r.method, headers: r.headers, agent: false, ...(tls ? { rejectUnauthorized: false } : {}) }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => resolve(seen(res.statusCode ?? 0, res.headers, Buffer.concat(chunks))));
      res.on("error", reject);
    });
    req.on("error", reject);
    req.end(r.body === undefined ? undefined : Buffer.from(r.body));
  });
}

/** Sends one request on an HTTP/2 session. */
function sendH2(session: ClientHttp2Session, r: Req): Promise<Seen> {
  return new Promise((resolve, reject) => {
    const stream = session.request({ ":method": r.method, ":path": r.path, ...r.headers }, { endStream: r.body === undefined });
    let status = 0;
    let headers: IncomingHttpHeaders = {};
    const chunks: Buffer[] = [];
    stream.on("response", (h) => {
      status = Number(h[":status"]);
      headers = h as IncomingHttpHeaders;
    });
    stream.on("data", (c: Buffer) => chunks.push(c));
    stream.on("end", () => resolve(seen(status, headers, Buffer.concat(chunks))));
    stream.on("error", reject);
    if (r.body !== undefined) stream.end(Buffer.from(r.body));
  });
}

/** A server under test and its sessions. */
interface Target {
  server: TestServer;
  tls: TestServer;
  h2c: ClientHttp2Session;
  tlsH2: ClientHttp2Session;
}

function send(t: Target, transport: Transport, r: Req): Promise<Seen> {
  switch (transport) {
    case "h1":
      return sendH1(t.server.url, r, false);
    case "tls-h1":
      return sendH1(t.tls.url, r, true);
    case "h2c":
      return sendH2(t.h2c, r);
    case "tls-h2":
      return sendH2(t.tlsH2, r);
  }
}

/** Returns how many Connect calls the server's fast path has served, by method. */
async function fastServed(s: TestServer): Promise<number> {
  const m = await s.metrics.registry.getSingleMetric("rollgate_connect_fast_path_requests_total")?.get();
  return (m?.values ?? []).reduce((n, v) => n + v.value, 0);
}

/** rollgate_rpc_requests_total for rollgate's services, as `method code` → count. */
async function rpcCounts(s: TestServer): Promise<Record<string, number>> {
  const m = await s.metrics.registry.getSingleMetric("rollgate_rpc_requests_total")?.get();
  const out: Record<string, number> = {};
  for (const v of m?.values ?? []) {
    if (String(v.labels.method).startsWith("rollgate.v1.")) out[`${v.labels.method} ${v.labels.code}`] = v.value;
  }
  return out;
}

const json = (o: unknown) => new Uint8Array(Buffer.from(JSON.stringify(o)));
const routeJson = json({ rollout: "cf", key: "user-1" });
const routeProto = toBinary(RouteRequestSchema, create(RouteRequestSchema, { rollout: "cf", key: "user-1" }));
const bigBatch = { rollout: "cf", keys: Array.from({ length: 200 }, (_, i) => `user-${i}`) };
const q = (params: Record<string, string>) => `?${new URLSearchParams(params).toString()}`;
const b64url = (b: Uint8Array) => Buffer.from(b).toString("base64url");

/** Each case: the request, whether the fast path (when on) serves it or passes it on, and its HTTP status where the case is about it. */
const CASES: { name: string; req: Req; fast: boolean; status?: number }[] = [
  { name: "JSON Route", req: { method: "POST", path: ROUTE, headers: { "content-type": "application/json", authorization: READER, "x-request-id": "cf-1" }, body: routeJson }, fast: true },
  { name: "JSON with a charset", req: { method: "POST", path: ROUTE, headers: { "content-type": "application/json; charset=UTF-8", authorization: READER }, body: routeJson }, fast: true },
  { name: "binary Route", req: { method: "POST", path: ROUTE, headers: { "content-type": "application/proto", authorization: READER, "x-request-id": "cf-2" }, body: routeProto }, fast: true },
  {
    name: "binary Route with an unknown field (kept, as protobuf does)",
    req: { method: "POST", path: ROUTE, headers: { "content-type": "application/proto", authorization: READER }, body: Buffer.concat([routeProto, Buffer.from([0x98, 0x06, 0x01])]) },
    fast: true,
  },
  { name: "JSON RouteBatch", req: { method: "POST", path: BATCH, headers: { "content-type": "application/json", authorization: READER }, body: json({ rollout: "cf", keys: ["a", "b"] }) }, fast: true },
  {
    name: "JSON RecordOutcome",
    req: { method: "POST", path: RECORD, headers: { "content-type": "application/json", authorization: REPORTER }, body: json({ rollout: "cf", outcomes: [{ variant: "VARIANT_CANARY", success: true, latencyMs: 12 }] }) },
    fast: true,
  },
  { name: "RecordOutcome with a reader's token", req: { method: "POST", path: RECORD, headers: { "content-type": "application/json", authorization: READER, "x-request-id": "cf-3" }, body: json({ rollout: "cf" }) }, fast: true },
  // Control-plane changes: answered once committed, the rollout in the answer (the servers' clocks are the same manual clock).
  { name: "JSON SetWeight", req: { method: "POST", path: SET_WEIGHT, headers: { "content-type": "application/json", authorization: OPERATOR, "x-request-id": "cf-7" }, body: json({ name: "cf", weightBp: 700, reason: "test" }) }, fast: true, status: 200 },
  {
    name: "binary SetWeight",
    req: { method: "POST", path: SET_WEIGHT, headers: { "content-type": "application/proto", authorization: OPERATOR }, body: toBinary(SetWeightRequestSchema, create(SetWeightRequestSchema, { name: "cf", weightBp: 800 })) },
    fast: true, status: 200,
  },
  { name: "SetWeight to the weight it has (unchanged)", req: { method: "POST", path: SET_WEIGHT, headers: { "content-type": "application/json", authorization: OPERATOR }, body: json({ name: "cf", weightBp: 800 }) }, fast: true },
  { name: "SetWeight, gzipped, answer gzip accepted", req: { method: "POST", path: SET_WEIGHT, headers: { "content-type": "application/json", authorization: OPERATOR, "content-encoding": "gzip", "accept-encoding": "gzip" }, body: gzipSync(json({ name: "cf", weightBp: 900 })) }, fast: true, status: 200 },
  { name: "SetWeight with connect-timeout-ms", req: { method: "POST", path: SET_WEIGHT, headers: { "content-type": "application/json", authorization: OPERATOR, "connect-timeout-ms": "5000" }, body: json({ name: "cf", weightBp: 500 }) }, fast: true },
  { name: "SetWeight with a reader's token", req: { method: "POST", path: SET_WEIGHT, headers: { "content-type": "application/json", authorization: READER, "x-request-id": "cf-8" }, body: json({ name: "cf", weightBp: 600 }) }, fast: true },
  { name: "SetWeight without a token", req: { method: "POST", path: SET_WEIGHT, headers: { "content-type": "application/json" }, body: json({ name: "cf", weightBp: 600 }) }, fast: true },
  { name: "SetWeight out of range (field violations)", req: { method: "POST", path: SET_WEIGHT, headers: { "content-type": "application/json", authorization: OPERATOR }, body: json({ name: "cf", weightBp: 10001 }) }, fast: true },
  { name: "SetWeight of an unknown rollout", req: { method: "POST", path: SET_WEIGHT, headers: { "content-type": "application/json", authorization: OPERATOR }, body: json({ name: "nope", weightBp: 600 }) }, fast: true },
  { name: "SetWeight with a malformed name", req: { method: "POST", path: SET_WEIGHT, headers: { "content-type": "application/json", authorization: OPERATOR }, body: json({ name: "Not A Name", weightBp: 600 }) }, fast: true },
  { name: "SetWeight with an unknown field", req: { method: "POST", path: SET_WEIGHT, headers: { "content-type": "application/json", authorization: OPERATOR }, body: json({ name: "cf", weight: 600 }) }, fast: true },
  { name: "SetWeight with a reason too long", req: { method: "POST", path: SET_WEIGHT, headers: { "content-type": "application/json", authorization: OPERATOR }, body: json({ name: "cf", weightBp: 600, reason: "x".repeat(5000) }) }, fast: true },
  { name: "Pause", req: { method: "POST", path: CONTROL + "Pause", headers: { "content-type": "application/json", authorization: OPERATOR }, body: json({ name: "cf", reason: "look" }) }, fast: true, status: 200 },
  { name: "Pause when paused (refused or unchanged, as the machine says)", req: { method: "POST", path: CONTROL + "Pause", headers: { "content-type": "application/json", authorization: OPERATOR }, body: json({ name: "cf" }) }, fast: true },
  { name: "Resume", req: { method: "POST", path: CONTROL + "Resume", headers: { "content-type": "application/json", authorization: OPERATOR }, body: json({ name: "cf", reason: "fine" }) }, fast: true, status: 200 },
  { name: "Halt (the rollout cf-end)", req: { method: "POST", path: CONTROL + "Halt", headers: { "content-type": "application/json", authorization: OPERATOR }, body: json({ name: "cf-end" }) }, fast: true },
  { name: "Rollback (the rollout cf-end)", req: { method: "POST", path: CONTROL + "Rollback", headers: { "content-type": "application/proto", authorization: OPERATOR }, body: new Uint8Array([0x0a, 0x06, ...Buffer.from("cf-end")]) }, fast: true },
  { name: "GET SetWeight (has side effects)", req: { method: "GET", path: SET_WEIGHT + q({ encoding: "json", message: JSON.stringify({ name: "cf", weightBp: 600 }) }), headers: { authorization: OPERATOR } }, fast: false },
  { name: "invalid JSON", req: { method: "POST", path: ROUTE, headers: { "content-type": "application/json", authorization: READER }, body: json("x").subarray(1) }, fast: true },
  { name: "JSON with an unknown field", req: { method: "POST", path: ROUTE, headers: { "content-type": "application/json", authorization: READER }, body: json({ rollout: "cf", key: "k", zz: 1 }) }, fast: true },
  { name: "invalid binary", req: { method: "POST", path: ROUTE, headers: { "content-type": "application/proto", authorization: READER }, body: new Uint8Array([0x0a, 0x7f, 0x01]) }, fast: true },
  { name: "an empty key (field violations in details)", req: { method: "POST", path: ROUTE, headers: { "content-type": "application/json", authorization: READER, "x-request-id": "cf-4" }, body: json({ rollout: "cf", key: "" }) }, fast: true },
  { name: "an unknown rollout", req: { method: "POST", path: ROUTE, headers: { "content-type": "application/json", authorization: READER }, body: json({ rollout: "nope", key: "k" }) }, fast: true },
  { name: "no token", req: { method: "POST", path: ROUTE, headers: { "content-type": "application/json", "x-request-id": "cf-5" }, body: routeJson }, fast: true },
  { name: "an unknown token", req: { method: "POST", path: ROUTE, headers: { "content-type": "application/json", authorization: "Bearer nobody-token-0123456789" }, body: routeJson }, fast: true },
  { name: "a bad token and a bad body (the body is read first)", req: { method: "POST", path: ROUTE, headers: { "content-type": "application/json", authorization: "Bearer x" }, body: json({ zz: 1 }) }, fast: true },
  { name: "text/plain", req: { method: "POST", path: ROUTE, headers: { "content-type": "text/plain", authorization: READER }, body: routeJson }, fast: false },
  { name: "no content type", req: { method: "POST", path: ROUTE, headers: { authorization: READER }, body: routeJson }, fast: false },
  { name: "a streaming Connect type", req: { method: "POST", path: ROUTE, headers: { "content-type": "application/connect+json", authorization: READER }, body: routeJson }, fast: false },
  { name: "a JSON charset other than UTF-8", req: { method: "POST", path: ROUTE, headers: { "content-type": "application/json; charset=latin1", authorization: READER }, body: routeJson }, fast: false },
  {
    name: "oversized (declared)",
    req: { method: "POST", path: ROUTE, headers: { "content-type": "application/json", authorization: READER }, body: new Uint8Array(MAX_REQUEST_BYTES + 1).fill(0x20) },
    fast: true,
  },
  { name: "connect-timeout-ms", req: { method: "POST", path: ROUTE, headers: { "content-type": "application/json", authorization: READER, "connect-timeout-ms": "5000" }, body: routeJson }, fast: true },
  { name: "a malformed connect-timeout-ms", req: { method: "POST", path: ROUTE, headers: { "content-type": "application/json", authorization: READER, "connect-timeout-ms": "soon" }, body: routeJson }, fast: true },
  { name: "connect-protocol-version 1", req: { method: "POST", path: ROUTE, headers: { "content-type": "application/json", authorization: READER, "connect-protocol-version": "1" }, body: routeJson }, fast: true },
  { name: "connect-protocol-version 2 (not checked: not required)", req: { method: "POST", path: ROUTE, headers: { "content-type": "application/json", authorization: READER, "connect-protocol-version": "2" }, body: routeJson }, fast: true },
  { name: "a gzipped request", req: { method: "POST", path: ROUTE, headers: { "content-type": "application/json", authorization: READER, "content-encoding": "gzip" }, body: gzipSync(routeJson) }, fast: true },
  { name: "a corrupt gzipped request", req: { method: "POST", path: ROUTE, headers: { "content-type": "application/json", authorization: READER, "content-encoding": "gzip" }, body: routeJson }, fast: true },
  { name: "an unsupported content-encoding", req: { method: "POST", path: ROUTE, headers: { "content-type": "application/json", authorization: READER, "content-encoding": "zstd" }, body: routeJson }, fast: true },
  {
    name: "a large answer, gzip accepted",
    req: { method: "POST", path: BATCH, headers: { "content-type": "application/json", authorization: READER, "accept-encoding": "zstd, gzip, br" }, body: json(bigBatch) },
    fast: true,
  },
  { name: "a large answer, br accepted", req: { method: "POST", path: BATCH, headers: { "content-type": "application/proto", authorization: READER, "accept-encoding": "br" }, body: toBinary(RouteBatchRequestSchema, create(RouteBatchRequestSchema, bigBatch)) }, fast: true },
  { name: "a small answer, gzip accepted (not compressed)", req: { method: "POST", path: ROUTE, headers: { "content-type": "application/json", authorization: READER, "accept-encoding": "gzip" }, body: routeJson }, fast: true },
  { name: "GET json", req: { method: "GET", path: ROUTE + q({ connect: "v1", encoding: "json", message: JSON.stringify({ rollout: "cf", key: "user-1" }) }), headers: { authorization: READER, "x-request-id": "cf-6" } }, fast: true },
  { name: "GET json, base64", req: { method: "GET", path: ROUTE + q({ encoding: "json", base64: "1", message: b64url(routeJson) }), headers: { authorization: READER } }, fast: true },
  { name: "GET proto, base64", req: { method: "GET", path: ROUTE + q({ connect: "v1", encoding: "proto", base64: "1", message: Buffer.from(routeProto).toString("base64") }), headers: { authorization: READER } }, fast: true },
  { name: "GET proto, gzip, base64", req: { method: "GET", path: ROUTE + q({ encoding: "proto", compression: "gzip", base64: "1", message: b64url(gzipSync(routeProto)) }), headers: { authorization: READER } }, fast: true },
  { name: "GET with an unknown compression", req: { method: "GET", path: ROUTE + q({ encoding: "json", compression: "lz4", message: "{}" }), headers: { authorization: READER } }, fast: true },
  { name: "GET with an unknown field", req: { method: "GET", path: ROUTE + q({ encoding: "json", message: JSON.stringify({ rollout: "cf", key: "k", zz: 1 }) }), headers: { authorization: READER } }, fast: true },
  { name: "GET with bad base64", req: { method: "GET", path: ROUTE + q({ encoding: "proto", base64: "1", message: "***" }), headers: { authorization: READER } }, fast: true },
  { name: "GET with an empty message", req: { method: "GET", path: ROUTE + q({ encoding: "proto" }), headers: { authorization: READER } }, fast: true },
  { name: "GET with a Connect content type", req: { method: "GET", path: ROUTE + q({ encoding: "json", message: "{}" }), headers: { authorization: READER, "content-type": "application/json" } }, fast: true },
  { name: "GET RouteBatch", req: { method: "GET", path: BATCH + q({ encoding: "json", message: JSON.stringify({ rollout: "cf", keys: ["a"] }) }), headers: { authorization: READER } }, fast: true },
  { name: "GET without a token", req: { method: "GET", path: ROUTE + q({ encoding: "json", message: "{}" }), headers: {} }, fast: true },
  { name: "GET without an encoding", req: { method: "GET", path: ROUTE + q({ message: "{}" }), headers: { authorization: READER } }, fast: false },
  { name: "GET with an unknown encoding", req: { method: "GET", path: ROUTE + q({ encoding: "xml", message: "{}" }), headers: { authorization: READER } }, fast: false },
  { name: "GET with a non-Connect content type", req: { method: "GET", path: ROUTE + q({ encoding: "json", message: "{}" }), headers: { authorization: READER, "content-type": "text/plain" } }, fast: false },
  { name: "GET RecordOutcome (has side effects)", req: { method: "GET", path: RECORD + q({ encoding: "json", message: "{}" }), headers: { authorization: REPORTER } }, fast: false },
  { name: "HEAD", req: { method: "HEAD", path: ROUTE + q({ encoding: "json", message: "{}" }), headers: { authorization: READER } }, fast: false },
  { name: "OPTIONS", req: { method: "OPTIONS", path: ROUTE, headers: { authorization: READER } }, fast: false },
  { name: "PUT", req: { method: "PUT", path: ROUTE, headers: { "content-type": "application/json", authorization: READER }, body: routeJson }, fast: false },
  { name: "a method not on the fast path (GetRollout)", req: { method: "POST", path: "/rollgate.v1.RolloutService/GetRollout", headers: { "content-type": "application/json", authorization: READER }, body: json({ name: "nope" }) }, fast: false },
];

const TRANSPORTS: Transport[] = ["h1", "h2c", "tls-h1", "tls-h2"];

const tmp = tempDir("rollgate-connect-conformance-");
let fast: Target;
let slow: Target;

async function target(connectFastPath: boolean): Promise<Target> {
  const tls = { tlsCert: join(tmp.dir, "server.pem"), tlsKey: join(tmp.dir, "server.key") };
  // One instant for every server: the rollouts the changes answer with carry its timestamps.
  const server = await startTestServer({ connectFastPath }, { tokens: TEST_TOKENS, clock: manualClock() });
  const tlsServer = await startTestServer({ connectFastPath, ...tls }, { tokens: TEST_TOKENS, clock: manualClock() });
  const createRollout = (name: string): Req => ({
    method: "POST",
    path: "/rollgate.v1.RolloutService/CreateRollout",
    headers: { "content-type": "application/json", authorization: OPERATOR },
    body: json({ rollout: { name, stableVersion: "v1", canaryVersion: "v2" }, reason: "test" }),
  });
  for (const [s, tlsOn] of [[server, false], [tlsServer, true]] as const) {
    for (const name of ["cf", "cf-end"]) expect((await sendH1(s.url, createRollout(name), tlsOn)).status).toBe(200);
  }
  return { server, tls: tlsServer, h2c: h2Connect(server.url), tlsH2: h2Connect(tlsServer.url, { rejectUnauthorized: false }) };
}

beforeAll(async () => {
  const r = spawnSync("openssl", ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1", "-keyout", "server.key", "-out", "server.pem", "-subj", "/CN=127.0.0.1"], {
    cwd: tmp.dir,
    encoding: "utf8",
  });
  if (r.status !== 0) throw new Error(r.stderr);
  [fast, slow] = await Promise.all([target(true), target(false)]);
});
afterAll(async () => {
  for (const t of [fast, slow]) {
    t?.h2c.close();
    t?.tlsH2.close();
    await t?.server.stop();
    await t?.tls.stop();
  }
  tmp.cleanup();
});

describe("the Connect fast path answers as connect-node does", () => {
  for (const transport of TRANSPORTS) {
    describe(transport, () => {
      for (const c of CASES) {
        it(`${c.name}: same status, headers and body; ${c.fast ? "served by the fast path" : "passed on to connect-node"}`, async () => {
          const server = transport.startsWith("tls") ? "tls" : "server";
          const before = await fastServed(fast[server]);
          const onFast = await send(fast, transport, c.req);
          const served = (await fastServed(fast[server])) - before;
          const onConnect = await send(slow, transport, c.req);
          expect(onFast).toEqual(onConnect);
          if (c.status !== undefined) expect(onFast.status).toBe(c.status);
          expect(served).toBe(c.fast ? 1 : 0);
          expect(await fastServed(slow[server])).toBe(0);
        });
      }
    });
  }

  it("counts every call alike in rollgate_rpc_requests_total", async () => {
    expect(await rpcCounts(fast.server)).toEqual(await rpcCounts(slow.server));
    expect(await rpcCounts(fast.tls)).toEqual(await rpcCounts(slow.tls));
    expect(Object.keys(await rpcCounts(fast.server)).length).toBeGreaterThan(5);
  });
});
