import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { request as httpRequest, Agent } from "node:http";
import { connect as netConnect, createServer as createNetServer, type AddressInfo, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { connect as tlsConnect } from "node:tls";
import { join } from "node:path";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { ConnectError, createClient, type ServiceImpl } from "@connectrpc/connect";
import { connectNodeAdapter, createConnectTransport, createGrpcTransport, Http2SessionManager } from "@connectrpc/connect-node";
import * as grpc from "@grpc/grpc-js";
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import {
  DecisionService,
  HealthUpdateSchema,
  RouteReason,
  RouteRequestSchema,
  RouteResponseSchema,
  WatchHealthRequestSchema,
  type HealthUpdate,
  type RouteRequest,
  type RouteResponse,
} from "../../gen/rollgate/v1/decision_service_pb.js";
import { Variant } from "../../gen/rollgate/v1/rollout_pb.js";
import { RolloutService } from "../../gen/rollgate/v1/rollout_service_pb.js";
import { listenOnePort, type OnePortListener, type OnePortOptions } from "../../src/server/one-port.js";
import { H2_PREFACE, sniffProtocol } from "../../src/server/protocol-sniffer.js";

const MAX_REQUEST_BYTES = 4 * 1024 * 1024;
const ROUTE_PATH = "/rollgate.v1.DecisionService/Route";

/** Test-only DecisionService: fixed answers that show which handler produced them. */
function decisionImpl(overrides: Partial<ServiceImpl<typeof DecisionService>> = {}): Partial<ServiceImpl<typeof DecisionService>> {
  return {
    route(req) {
      return { variant: Variant.CANARY, version: `canary:${req.key}`, bucket: 42, weightBp: 500, reason: RouteReason.WEIGHT, rolloutVersion: 7n };
    },
    async *watchHealth(_req, ctx) {
      yield { seq: 1n };
      // Stays open until the client goes away or the server cuts the connection.
      await new Promise((resolve) => ctx.signal.addEventListener("abort", resolve));
    },
    ...overrides,
  };
}

/** Test-only RolloutService: GetRollout echoes the name. */
const rolloutImpl: Partial<ServiceImpl<typeof RolloutService>> = {
  getRollout(req) {
    return { rollout: { name: req.name, stableVersion: "v1" } };
  },
};

const open: OnePortListener[] = [];

async function start(opts: Partial<OnePortOptions> & { decision?: Partial<ServiceImpl<typeof DecisionService>> } = {}) {
  const connect = connectNodeAdapter({
    routes: (router) => {
      router.service(DecisionService, opts.decision ?? decisionImpl());
      router.service(RolloutService, rolloutImpl);
    },
    readMaxBytes: MAX_REQUEST_BYTES,
  });
  const listener = await listenOnePort({
    host: "127.0.0.1",
    port: 0,
    handler: (req, res) => {
      if (req.method === "GET" && req.url === "/healthz") {
        res.writeHead(200, { "content-type": "text/plain" });
        res.end(`ok http/${req.httpVersion}\n`);
        return;
      }
      connect(req, res);
    },
    ...opts,
  });
  open.push(listener);
  return listener;
}

afterEach(async () => {
  await Promise.all(open.splice(0).map((l) => l.close(0)));
});

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function run(cmd: string, args: string[]): Promise<Run> {
  return new Promise((resolve) => {
    execFile(cmd, args, { maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) => {
      const code = err === null ? 0 : typeof err.code === "number" ? err.code : -1;
      resolve({ code, stdout, stderr });
    });
  });
}

/** Runs curl and splits off the `-w` trailer: HTTP version and status. */
async function curl(args: string[]): Promise<{ code: number; body: string; httpVersion: string; status: number; stderr: string }> {
  const r = await run("curl", ["-sS", "-w", "\n%{http_version} %{http_code}", ...args]);
  const cut = r.stdout.lastIndexOf("\n");
  const [httpVersion = "", status = "0"] = r.stdout.slice(cut + 1).split(" ");
  return { code: r.code, body: r.stdout.slice(0, Math.max(cut, 0)), httpVersion, status: Number(status), stderr: r.stderr };
}

/** A gRPC / gRPC-Web length-prefixed message. */
function envelope(flags: number, payload: Uint8Array): Uint8Array {
  const out = new Uint8Array(5 + payload.length);
  out[0] = flags;
  new DataView(out.buffer).setUint32(1, payload.length);
  out.set(payload, 5);
  return out;
}

/** Splits a gRPC-Web response body into its messages and its trailer frame. */
function parseGrpcWeb(body: Uint8Array): { messages: Uint8Array[]; trailers: Map<string, string> } {
  const messages: Uint8Array[] = [];
  const trailers = new Map<string, string>();
  let at = 0;
  while (at + 5 <= body.length) {
    const flags = body[at] ?? 0;
    const len = new DataView(body.buffer, body.byteOffset + at + 1, 4).getUint32(0);
    const payload = body.subarray(at + 5, at + 5 + len);
    if ((flags & 0x80) !== 0) {
      for (const line of new TextDecoder().decode(payload).split("\r\n")) {
        const i = line.indexOf(":");
        if (i > 0) trailers.set(line.slice(0, i).trim().toLowerCase(), line.slice(i + 1).trim());
      }
    } else {
      messages.push(payload);
    }
    at += 5 + len;
  }
  return { messages, trailers };
}

function grpcJsRoute(client: grpc.Client, req: RouteRequest): Promise<RouteResponse> {
  return new Promise((resolve, reject) => {
    client.makeUnaryRequest(
      ROUTE_PATH,
      (m: RouteRequest) => Buffer.from(toBinary(RouteRequestSchema, m)),
      (b: Buffer) => fromBinary(RouteResponseSchema, b),
      req,
      (err, res) => (err !== null || res === undefined ? reject(err ?? new Error("no response")) : resolve(res)),
    );
  });
}

describe("listenOnePort, cleartext", () => {
  it("serves Connect JSON to curl over HTTP/1.1", async () => {
    const l = await start();
    const r = await curl([
      "--http1.1",
      "-H",
      "content-type: application/json",
      "--data-binary",
      JSON.stringify({ rollout: "checkout", key: "user-1" }),
      `http://${l.address}${ROUTE_PATH}`,
    ]);
    expect(r.httpVersion).toBe("1.1");
    expect(r.status).toBe(200);
    expect(JSON.parse(r.body)).toMatchObject({ variant: "VARIANT_CANARY", version: "canary:user-1", bucket: 42, weightBp: 500, rolloutVersion: "7" });
  });

  it("serves Connect JSON to curl --http2-prior-knowledge on the same port", async () => {
    const l = await start();
    const r = await curl([
      "--http2-prior-knowledge",
      "-H",
      "content-type: application/json",
      "--data-binary",
      JSON.stringify({ rollout: "checkout", key: "user-2" }),
      `http://${l.address}${ROUTE_PATH}`,
    ]);
    expect(r.httpVersion).toBe("2");
    expect(r.status).toBe(200);
    expect(JSON.parse(r.body)).toMatchObject({ version: "canary:user-2" });
  });

  it("serves plain GETs through the same handler over HTTP/1.1 and h2c", async () => {
    const l = await start();
    const h1 = await curl([`http://${l.address}/healthz`]);
    expect(h1).toMatchObject({ status: 200, body: "ok http/1.1\n" });
    const h2 = await curl(["--http2-prior-knowledge", `http://${l.address}/healthz`]);
    expect(h2).toMatchObject({ status: 200, body: "ok http/2.0\n" });
    const missing = await curl([`http://${l.address}/nope`]);
    expect(missing.status).toBe(404);
  });

  it("serves the Connect GET form of a NO_SIDE_EFFECTS method", async () => {
    const l = await start();
    const message = encodeURIComponent(JSON.stringify({ rollout: "checkout", key: "get-key" }));
    const r = await curl([`http://${l.address}${ROUTE_PATH}?encoding=json&message=${message}`]);
    expect(r.status).toBe(200);
    expect(JSON.parse(r.body)).toMatchObject({ version: "canary:get-key" });
  });

  it("serves gRPC to a @grpc/grpc-js client (h2c prior knowledge)", async () => {
    const l = await start();
    const client = new grpc.Client(l.address, grpc.credentials.createInsecure());
    try {
      const res = await grpcJsRoute(client, create(RouteRequestSchema, { rollout: "checkout", key: "grpc-js" }));
      expect(res.version).toBe("canary:grpc-js");
      expect(res.variant).toBe(Variant.CANARY);
      expect(res.rolloutVersion).toBe(7n);
    } finally {
      client.close();
    }
  });

  it("serves gRPC-Web over HTTP/1.1 (fetch)", async () => {
    const l = await start();
    const body = envelope(0, toBinary(RouteRequestSchema, create(RouteRequestSchema, { rollout: "checkout", key: "web" })));
    const res = await fetch(`http://${l.address}${ROUTE_PATH}`, {
      method: "POST",
      headers: { "content-type": "application/grpc-web+proto", "x-grpc-web": "1" },
      body,
    });
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toMatch(/^application\/grpc-web/);
    const { messages, trailers } = parseGrpcWeb(new Uint8Array(await res.arrayBuffer()));
    expect(trailers.get("grpc-status")).toBe("0");
    expect(messages).toHaveLength(1);
    expect(fromBinary(RouteResponseSchema, messages[0] ?? new Uint8Array()).version).toBe("canary:web");
  });

  it("waits for more bytes when the first chunk is a prefix of the HTTP/2 preface, and loses none", async () => {
    // sniffProtocol on a socket of our own, so that the test knows what the server has read:
    // each piece is sent only once the server side has received the one before, so the
    // sniffer really sees a short first chunk (a wall-clock pause only made it likely).
    const sniffed = await sniffingPair();
    try {
      await sniffed.send(H2_PREFACE.subarray(0, 16)); // "PRI * HTTP/2.0\r\n"
      expect(sniffed.verdict()).toBeUndefined(); // a prefix of the preface: not judged yet
      const frame = Buffer.from([0, 0, 0, 4, 0, 0, 0, 0, 0]); // an empty SETTINGS frame
      await sniffed.send(Buffer.concat([H2_PREFACE.subarray(16), frame]));
      expect(sniffed.verdict()).toBe("h2");
      // The chosen server reads every byte, the sniffed ones first.
      expect((await sniffed.received(H2_PREFACE.length + frame.length)).equals(Buffer.concat([H2_PREFACE, frame]))).toBe(true);
    } finally {
      sniffed.close();
    }

    const h1 = await sniffingPair();
    try {
      await h1.send(Buffer.from("P")); // could be "PRI * HTTP/2.0" still
      expect(h1.verdict()).toBeUndefined();
      const rest = Buffer.from(`OST ${ROUTE_PATH} HTTP/1.1\r\nhost: x\r\n\r\n`);
      await h1.send(rest);
      expect(h1.verdict()).toBe("http/1.1");
      expect((await h1.received(1 + rest.length)).toString("latin1")).toBe(`POST ${ROUTE_PATH} HTTP/1.1\r\nhost: x\r\n\r\n`);
    } finally {
      h1.close();
    }

    // And through the one-port listener, a preface split across writes reaches the h2 server.
    const l = await start();
    const h2 = await rawConnect(l.port);
    h2.write(H2_PREFACE.subarray(0, 16));
    const firstFrame = readSome(h2);
    h2.write(Buffer.concat([H2_PREFACE.subarray(16), Buffer.from([0, 0, 0, 4, 0, 0, 0, 0, 0])]));
    expect((await firstFrame)[3]).toBe(0x04); // the server's SETTINGS: it speaks HTTP/2 on this socket
    h2.destroy();
  });

  it("reports an IPv6 address in brackets", async (ctx) => {
    const l = await start({ host: "::1" }).catch((e: NodeJS.ErrnoException) => {
      if (e.code === "EADDRNOTAVAIL" || e.code === "EAFNOSUPPORT") ctx.skip(); // no IPv6 loopback here
      throw e;
    });
    expect(l.address).toBe(`[::1]:${l.port}`);
    const r = await curl(["-g", `http://${l.address}/healthz`]);
    expect(r).toMatchObject({ status: 200, body: "ok http/1.1\n" });
  });

  it("closes a connection that stays silent past firstByteTimeoutMs", async () => {
    const l = await start({ firstByteTimeoutMs: 50 });
    const s = await rawConnect(l.port);
    const closed = new Promise((resolve) => s.once("close", resolve));
    s.resume();
    await closed; // the test times out if the server keeps the silent socket
    // The server's own 'close' may come a loop turn after the client's.
    await vi.waitFor(() => expect(l.connections()).toBe(0));
  });

  it("answers 408 to an HTTP/1.1 client that never finishes its headers", async () => {
    const l = await start({ headersTimeoutMs: 100 });
    const s = await rawConnect(l.port);
    const reply = readAll(s);
    s.write("GET /healthz HTTP/1.1\r\nhost: x\r\n"); // and never the blank line
    expect((await reply).toString("latin1")).toMatch(/^HTTP\/1\.1 408 /);
  });

  it("drops a connection that ends inside the preface", async () => {
    const l = await start();
    const s = await rawConnect(l.port);
    const closed = new Promise((resolve) => s.once("close", resolve));
    s.resume();
    s.end("PRI * HTTP");
    await closed; // only the server can close it: the client merely half-closed
    await vi.waitFor(() => expect(l.connections()).toBe(0));
  });
});

describe("listenOnePort, onStream hook", () => {
  it("lets the hook answer a gRPC call and the handler a Connect call on the same HTTP/2 connection", async () => {
    const hooked: string[] = [];
    const l = await start({
      onStream(stream, headers) {
        const type = String(headers["content-type"] ?? "");
        if (headers[":path"] !== ROUTE_PATH || !type.startsWith("application/grpc")) return false;
        hooked.push(type);
        const chunks: Buffer[] = [];
        stream.on("data", (c: Buffer) => chunks.push(c));
        stream.on("end", () => {
          const req = fromBinary(RouteRequestSchema, Buffer.concat(chunks).subarray(5));
          const res = create(RouteResponseSchema, { variant: Variant.STABLE, version: `hooked:${req.key}` });
          stream.respond({ ":status": 200, "content-type": "application/grpc+proto" }, { waitForTrailers: true });
          stream.once("wantTrailers", () => stream.sendTrailers({ "grpc-status": "0" }));
          stream.end(envelope(0, toBinary(RouteResponseSchema, res)));
        });
        return true;
      },
    });
    const baseUrl = `http://${l.address}`;
    const sessionManager = new Http2SessionManager(baseUrl);
    try {
      const viaGrpc = createClient(DecisionService, createGrpcTransport({ baseUrl, sessionManager }));
      const viaConnect = createClient(DecisionService, createConnectTransport({ baseUrl, httpVersion: "2", sessionManager }));
      const a = await viaGrpc.route({ rollout: "checkout", key: "k1" });
      const b = await viaConnect.route({ rollout: "checkout", key: "k2" });
      const c = await viaGrpc.route({ rollout: "checkout", key: "k3" });
      expect(a.version).toBe("hooked:k1");
      expect(b.version).toBe("canary:k2");
      expect(c.version).toBe("hooked:k3");
      expect(hooked).toEqual(["application/grpc+proto", "application/grpc+proto"]);
      expect(l.sessions()).toBe(1);
      expect(l.connections()).toBe(1);
    } finally {
      sessionManager.abort();
    }
  });

  it("resets a stream whose hook throws, and keeps serving others", async () => {
    const l = await start({
      onStream(_stream, headers) {
        if (headers[":path"] === "/boom") throw new Error("hook bug");
        return false;
      },
    });
    const boom = await curl(["--http2-prior-knowledge", `http://${l.address}/boom`]);
    expect(boom.code).not.toBe(0);
    const ok = await curl(["--http2-prior-knowledge", `http://${l.address}/healthz`]);
    expect(ok.status).toBe(200);
  });
});

describe("listenOnePort, HTTP/2 stream limits (rapid reset, CVE-2023-44487)", () => {
  const http2Client = async (l: OnePortListener) => {
    const { connect } = await import("node:http2");
    const session = connect(`http://${l.address}`);
    session.on("error", () => {});
    await new Promise<void>((resolve) => session.once("remoteSettings", () => resolve()));
    return session;
  };
  const goawayOf = (session: import("node:http2").ClientHttp2Session) =>
    new Promise<number | undefined>((resolve) => {
      session.once("goaway", (code) => resolve(code));
      session.once("close", () => resolve(undefined));
    });
  const getHealthz = (session: import("node:http2").ClientHttp2Session) =>
    new Promise<number>((resolve, reject) => {
      const req = session.request({ ":path": "/healthz" });
      req.on("response", (h) => resolve(Number(h[":status"])));
      req.on("error", reject);
      req.resume();
    });

  it("advertises a bounded maxConcurrentStreams (4096 by default)", async () => {
    const session = await http2Client(await start());
    expect(session.remoteSettings.maxConcurrentStreams).toBe(4096);
    session.destroy();
    const small = await http2Client(await start({ maxConcurrentStreams: 10 }));
    expect(small.remoteSettings.maxConcurrentStreams).toBe(10);
    small.destroy();
  });

  it("sends GOAWAY(ENHANCE_YOUR_CALM) and closes a connection that resets more young streams than the guard allows; others are served", async () => {
    const { constants } = await import("node:http2");
    const calmed: (string | undefined)[] = [];
    const l = await start({ resetGuard: { burst: 5, perSecond: 1 }, onCalm: (a) => calmed.push(a) });
    const attacker = await http2Client(l);
    const got = goawayOf(attacker);
    const closed = new Promise<void>((resolve) => attacker.once("close", resolve));
    for (let i = 0; i < 20 && !attacker.closed && !attacker.destroyed; i++) {
      try {
        const req = attacker.request({ ":method": "POST", ":path": ROUTE_PATH, "content-type": "application/grpc" });
        req.on("error", () => {});
        req.close(constants.NGHTTP2_CANCEL);
      } catch {
        break; // GOAWAY came: no new streams
      }
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    expect(await got).toBe(constants.NGHTTP2_ENHANCE_YOUR_CALM);
    await closed;
    expect(calmed).toEqual(["127.0.0.1"]);
    // A well-behaved client on another connection is served.
    const other = await http2Client(l);
    expect(await getHealthz(other)).toBe(200);
    other.destroy();
  });

  it("does not count streams the server completed, nor streams reset after they were used a while", async () => {
    const { constants } = await import("node:http2");
    const l = await start({ resetGuard: { burst: 2, perSecond: 0 } });
    const session = await http2Client(l);
    let goaway: number | undefined;
    session.on("goaway", (code) => (goaway = code));
    for (let i = 0; i < 20; i++) expect(await getHealthz(session)).toBe(200);
    // Three watches open past a second, then cancelled: a client done with them.
    const watches = [0, 1, 2].map(() => {
      const req = session.request({ ":method": "POST", ":path": "/rollgate.v1.DecisionService/WatchHealth", "content-type": "application/grpc", te: "trailers" });
      req.on("error", () => {});
      req.resume();
      req.end(Buffer.from(envelope(0, toBinary(WatchHealthRequestSchema, create(WatchHealthRequestSchema, {})))));
      return req;
    });
    await new Promise((resolve) => setTimeout(resolve, 1200));
    for (const w of watches) w.close(constants.NGHTTP2_CANCEL);
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(await getHealthz(session)).toBe(200);
    expect(goaway).toBeUndefined();
    session.destroy();
  });
});

describe("listenOnePort, request size limit (readMaxBytes in connect)", () => {
  const bigKey = "k".repeat(MAX_REQUEST_BYTES + 1024);

  it("answers an oversized Connect JSON request over HTTP/1.1 with resource_exhausted", async () => {
    const l = await start();
    const dir = mkdtempSync(join(tmpdir(), "rollgate-big-"));
    try {
      const file = join(dir, "big.json");
      writeFileSync(file, JSON.stringify({ rollout: "checkout", key: bigKey }));
      const r = await curl(["--http1.1", "-H", "content-type: application/json", "--data-binary", `@${file}`, `http://${l.address}${ROUTE_PATH}`]);
      expect(r.status).toBe(429);
      expect(JSON.parse(r.body)).toMatchObject({ code: "resource_exhausted" });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("answers an oversized gRPC request with RESOURCE_EXHAUSTED", async () => {
    const l = await start();
    const client = new grpc.Client(l.address, grpc.credentials.createInsecure());
    try {
      const err = await grpcJsRoute(client, create(RouteRequestSchema, { rollout: "checkout", key: bigKey })).then(
        () => undefined,
        (e: grpc.ServiceError) => e,
      );
      expect(err?.code).toBe(grpc.status.RESOURCE_EXHAUSTED);
    } finally {
      client.close();
    }
  });

  it("answers an oversized gRPC-Web request over HTTP/1.1 with RESOURCE_EXHAUSTED", async () => {
    const l = await start();
    const body = envelope(0, toBinary(RouteRequestSchema, create(RouteRequestSchema, { rollout: "checkout", key: bigKey })));
    const res = await fetch(`http://${l.address}${ROUTE_PATH}`, {
      method: "POST",
      headers: { "content-type": "application/grpc-web+proto", "x-grpc-web": "1" },
      body,
    });
    const { trailers } = parseGrpcWeb(new Uint8Array(await res.arrayBuffer()));
    // A trailers-only answer carries the status in the headers, otherwise in the trailer frame.
    const status = res.headers.get("grpc-status") ?? trailers.get("grpc-status");
    expect(status).toBe(String(grpc.status.RESOURCE_EXHAUSTED));
  });

  it("accepts a request just under the limit", async () => {
    const l = await start();
    const client = new grpc.Client(l.address, grpc.credentials.createInsecure(), { "grpc.max_receive_message_length": 8 * 1024 * 1024 });
    try {
      const key = "k".repeat(MAX_REQUEST_BYTES - 64);
      const res = await grpcJsRoute(client, create(RouteRequestSchema, { rollout: "r", key }));
      expect(res.version).toBe(`canary:${key}`);
    } finally {
      client.close();
    }
  });
});

describe("listenOnePort, close()", () => {
  it("cuts an open server-streaming gRPC call instead of waiting for it", async () => {
    const l = await start();
    const client = new grpc.Client(l.address, grpc.credentials.createInsecure());
    try {
      const call = client.makeServerStreamRequest(
        "/rollgate.v1.DecisionService/WatchHealth",
        (m: ReturnType<typeof create<typeof WatchHealthRequestSchema>>) => Buffer.from(toBinary(WatchHealthRequestSchema, m)),
        (b: Buffer) => fromBinary(HealthUpdateSchema, b),
        create(WatchHealthRequestSchema, { rollout: "" }),
      );
      const ended = new Promise<grpc.StatusObject | Error>((resolve) => {
        call.on("error", resolve);
        call.on("status", resolve);
      });
      call.on("data", () => {});
      const first = await new Promise<HealthUpdate>((resolve) => call.once("data", resolve));
      expect(first.seq).toBe(1n);
      expect(l.sessions()).toBe(1);

      // Without cutting the session after the grace, this would never resolve.
      await l.close(100);
      const outcome = await ended;
      expect("code" in outcome ? outcome.code : -1).not.toBe(grpc.status.OK);
      expect(l.sessions()).toBe(0);
      expect(l.connections()).toBe(0);
    } finally {
      client.close();
    }
  });

  it("lets an in-flight unary call finish, refuses new connections, and resolves once it is done", async () => {
    let entered!: () => void;
    const handlerEntered = new Promise<void>((resolve) => (entered = resolve));
    let release!: () => void;
    const released = new Promise<void>((resolve) => (release = resolve));
    const l = await start({
      decision: decisionImpl({
        async route(req) {
          entered();
          await released;
          return { version: `late:${req.key}` };
        },
      }),
    });
    const client = new grpc.Client(l.address, grpc.credentials.createInsecure());
    try {
      const pending = grpcJsRoute(client, create(RouteRequestSchema, { rollout: "checkout", key: "slow" }));
      await handlerEntered;
      // A grace far beyond the test timeout: the test only passes if close() resolves as soon
      // as the call is done, not when the grace runs out.
      const closed = l.close(10 * 60_000);
      const refused = await rawConnect(l.port).then(
        (s) => (s.destroy(), false),
        (e: NodeJS.ErrnoException) => e.code === "ECONNREFUSED",
      );
      expect(refused).toBe(true);
      release();
      expect((await pending).version).toBe("late:slow");
      await closed;
      expect(l.connections()).toBe(0);
    } finally {
      client.close();
    }
  });

  it("closes idle HTTP/1.1 keep-alive connections at once", async () => {
    const l = await start();
    const agent = new Agent({ keepAlive: true });
    try {
      const status = await new Promise<number>((resolve, reject) => {
        const req = httpRequest(`http://${l.address}/healthz`, { agent }, (res) => {
          res.resume();
          res.on("end", () => resolve(res.statusCode ?? 0));
        });
        req.on("error", reject);
        req.end();
      });
      expect(status).toBe(200);
      expect(l.connections()).toBe(1); // kept alive, idle
      await l.close(10 * 60_000);
      expect(l.connections()).toBe(0);
    } finally {
      agent.destroy();
    }
  });

  it("cuts an open Connect server stream on HTTP/1.1 too", async () => {
    const l = await start();
    const client = createClient(DecisionService, createConnectTransport({ baseUrl: `http://${l.address}`, httpVersion: "1.1" }));
    const it = client.watchHealth({ rollout: "" })[Symbol.asyncIterator]();
    const first = await it.next();
    expect(first.done).toBe(false);
    expect(l.connections()).toBe(1);
    await l.close(100);
    const err = await it.next().then(
      () => undefined,
      (e: unknown) => ConnectError.from(e),
    );
    expect(err).toBeInstanceOf(ConnectError);
    expect(l.connections()).toBe(0);
  });

  it("is idempotent", async () => {
    const l = await start();
    const a = l.close(0);
    const b = l.close(0);
    expect(a).toBe(b);
    await a;
  });
});

describe("listenOnePort, TLS", () => {
  let dir: string;
  let pem: (name: string) => Buffer;
  // Clients connect to 127.0.0.1 but name the server "localhost": an IP as TLS SNI is deprecated.
  const tlsName = { "grpc.ssl_target_name_override": "localhost", "grpc.default_authority": "localhost" };

  beforeAll(async () => {
    const which = await run("openssl", ["version"]);
    expect(which.code, "openssl is needed to make throwaway certificates").toBe(0);
    dir = mkdtempSync(join(tmpdir(), "rollgate-tls-"));
    pem = (name) => readFileSync(join(dir, name));
    const p = (name: string) => join(dir, name);
    const ossl = async (...args: string[]) => {
      const r = await run("openssl", args);
      if (r.code !== 0) throw new Error(`openssl ${args.join(" ")}: ${r.stderr}`);
    };
    const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
    const makeCa = (name: string) => ossl("req", "-x509", ...ec, "-keyout", p(`${name}.key`), "-out", p(`${name}.pem`), "-days", "1", "-subj", `/CN=${name}`);
    const makeLeaf = async (name: string, ca: string, cn: string, ext: string) => {
      writeFileSync(p(`${name}.ext`), ext);
      await ossl("req", ...ec, "-keyout", p(`${name}.key`), "-out", p(`${name}.csr`), "-subj", `/CN=${cn}`);
      await ossl("x509", "-req", "-in", p(`${name}.csr`), "-CA", p(`${ca}.pem`), "-CAkey", p(`${ca}.key`), "-set_serial", "1", "-days", "1", "-out", p(`${name}.pem`), "-extfile", p(`${name}.ext`));
    };
    await makeCa("ca");
    await makeCa("rogue-ca");
    await makeLeaf("server", "ca", "localhost", "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n");
    await makeLeaf("client", "ca", "deployer", "extendedKeyUsage=clientAuth\n");
    await makeLeaf("rogue", "rogue-ca", "intruder", "extendedKeyUsage=clientAuth\n");
  });

  afterAll(() => {
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  });

  it("serves HTTP/1.1 and HTTP/2 by ALPN, and gRPC to grpc-js, on one TLS port", async () => {
    const l = await start({ tls: { cert: pem("server.pem"), key: pem("server.key") } });
    const url = `https://${l.address}`;
    const h1 = await curl(["--cacert", join(dir, "ca.pem"), "--http1.1", `${url}/healthz`]);
    expect(h1).toMatchObject({ status: 200, httpVersion: "1.1", body: "ok http/1.1\n" });
    const h2 = await curl(["--cacert", join(dir, "ca.pem"), "--http2", `${url}/healthz`]);
    expect(h2).toMatchObject({ status: 200, httpVersion: "2", body: "ok http/2.0\n" });

    const client = new grpc.Client(l.address, grpc.credentials.createSsl(pem("ca.pem")), tlsName);
    try {
      const res = await grpcJsRoute(client, create(RouteRequestSchema, { rollout: "checkout", key: "tls" }));
      expect(res.version).toBe("canary:tls");
    } finally {
      client.close();
    }
    // Without a client CA nobody has to show a certificate.
    const get = await curl(["--cacert", join(dir, "ca.pem"), "-H", "content-type: application/json", "--data-binary", '{"name":"r"}', `${url}/rollgate.v1.RolloutService/GetRollout`]);
    expect(JSON.parse(get.body)).toEqual({ rollout: { name: "r", stableVersion: "v1" } });
  });

  it("with a client CA, requires a client certificate signed by it", async () => {
    const l = await start({ tls: { cert: pem("server.pem"), key: pem("server.key"), clientCa: pem("ca.pem") } });
    const url = `https://${l.address}/rollgate.v1.RolloutService/GetRollout`;
    const base = ["--cacert", join(dir, "ca.pem"), "-H", "content-type: application/json", "--data-binary", '{"name":"r"}'];
    const asClient = ["--cert", join(dir, "client.pem"), "--key", join(dir, "client.key")];

    for (const version of ["--http1.1", "--http2"]) {
      const r = await curl([...base, ...asClient, version, url]);
      expect(r.status).toBe(200);
      expect(JSON.parse(r.body)).toEqual({ rollout: { name: "r", stableVersion: "v1" } });
    }

    const anonymous = await curl([...base, url]);
    expect(anonymous.code).not.toBe(0);
    expect(anonymous.status).toBe(0);
    const rogue = await curl([...base, "--cert", join(dir, "rogue.pem"), "--key", join(dir, "rogue.key"), url]);
    expect(rogue.code).not.toBe(0);
    expect(rogue.status).toBe(0);

    const client = new grpc.Client(l.address, grpc.credentials.createSsl(pem("ca.pem"), pem("client.key"), pem("client.pem")), tlsName);
    try {
      const res = await grpcJsRoute(client, create(RouteRequestSchema, { rollout: "checkout", key: "mtls" }));
      expect(res.version).toBe("canary:mtls");
    } finally {
      client.close();
    }
  });

  it("answers 408 to a TLS HTTP/1.1 client that never finishes its headers", async () => {
    const l = await start({ tls: { cert: pem("server.pem"), key: pem("server.key") }, headersTimeoutMs: 100 });
    const s = tlsConnect({ host: "127.0.0.1", port: l.port, ca: pem("ca.pem"), servername: "localhost", ALPNProtocols: ["http/1.1"] });
    await new Promise((resolve, reject) => s.once("secureConnect", resolve).once("error", reject));
    const chunks: Buffer[] = [];
    s.on("data", (c: Buffer) => chunks.push(c));
    const ended = new Promise((resolve) => s.once("close", resolve));
    s.write("GET /healthz HTTP/1.1\r\nhost: x\r\n");
    await ended;
    expect(Buffer.concat(chunks).toString("latin1")).toMatch(/^HTTP\/1\.1 408 /);
  });

  it("close() cuts an open stream on a TLS connection too", async () => {
    const l = await start({ tls: { cert: pem("server.pem"), key: pem("server.key") } });
    const transport = createGrpcTransport({ baseUrl: `https://${l.address}`, nodeOptions: { ca: pem("ca.pem"), servername: "localhost" } });
    const stream = createClient(DecisionService, transport).watchHealth({ rollout: "" });
    const it = stream[Symbol.asyncIterator]();
    const first = await it.next();
    expect(first.done).toBe(false);
    await l.close(100);
    const err = await it.next().then(
      () => undefined,
      (e: unknown) => ConnectError.from(e),
    );
    expect(err).toBeInstanceOf(ConnectError);
    expect(l.connections()).toBe(0);
  });
});

/** Opens a raw TCP connection, resolving once it is established. */
function rawConnect(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = netConnect({ host: "127.0.0.1", port });
    s.setNoDelay(true);
    s.once("connect", () => {
      s.off("error", reject);
      resolve(s);
    });
    s.once("error", reject);
  });
}

/** Resolves with the first chunk the socket receives. */
function readSome(s: Socket): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    s.once("data", resolve);
    s.once("error", reject);
  });
}

/** Resolves with everything the socket receives until the server closes it. */
function readAll(s: Socket): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    s.on("data", (c: Buffer) => chunks.push(c));
    s.once("end", () => resolve(Buffer.concat(chunks)));
    s.once("error", reject);
  });
}

/**
 * Returns a TCP connection whose server side runs sniffProtocol, and ways to send bytes (each
 * call resolves once the server side has received them), to see its verdict, and to read what
 * the chosen protocol server would read after it.
 */
async function sniffingPair() {
  let serverSide: Socket | undefined;
  let verdict: "h2" | "http/1.1" | undefined;
  const server = createNetServer();
  const connected = new Promise<Socket>((resolve) => {
    server.once("connection", (socket: Socket) => {
      serverSide = socket;
      sniffProtocol(socket, 10_000, (isH2) => (verdict = isH2 ? "h2" : "http/1.1"));
      resolve(socket);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const client = await rawConnect((server.address() as AddressInfo).port);
  const socket = await connected;
  let sent = 0;
  return {
    async send(bytes: Buffer) {
      sent += bytes.length;
      client.write(bytes);
      // Received by the server side (its read callback ran, and so its 'readable' handling).
      await vi.waitFor(() => expect(socket.bytesRead).toBe(sent), { interval: 1 });
      await new Promise((resolve) => setImmediate(resolve));
    },
    verdict: () => verdict,
    /** Reads `n` bytes from the server side, as the protocol server would after dispatch. */
    received(n: number): Promise<Buffer> {
      const chunks: Buffer[] = [];
      let got = 0;
      return new Promise((resolve) => {
        socket.on("data", (c: Buffer) => {
          chunks.push(c);
          got += c.length;
          if (got >= n) resolve(Buffer.concat(chunks));
        });
      });
    },
    close() {
      client.destroy();
      serverSide?.destroy();
      server.close();
    },
  };
}
