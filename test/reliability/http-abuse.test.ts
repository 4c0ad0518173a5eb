import { connect as netConnect, type Socket } from "node:net";
import * as grpc from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DecisionService } from "../../gen/rollgate/v1/decision_service_pb.js";
import { grpcJsClient, unary } from "../helpers/grpc-js.js";
import {
  FRAME,
  figures,
  grpcHeaders,
  h2Frame,
  hpackLiterals,
  postJson,
  rawH2,
  runPython,
  sleep,
  startChild,
  watchFrames,
  type ChildServer,
  type Figures,
  type Received,
} from "./abuse-kit.js";

/** HTTP/2 error code ENHANCE_YOUR_CALM (RFC 9113 §7). */
const ENHANCE_YOUR_CALM = 0xb;

/**
 * HTTP-level abuse against a real server in a child process, while a well-behaved grpc-js
 * client keeps calling Route: each attack must leave it succeeding (its p99 and error count are
 * printed, not asserted: timings depend on the machine) and the server up.
 */

let server: ChildServer;
let client: grpc.Client & Record<string, unknown>;
const recorded: Record<string, Figures> = {};

beforeAll(async () => {
  server = await startChild();
  const r = await postJson(server.url, "rollgate.v1.RolloutService/CreateRollout", {
    rollout: { name: "abuse", stableVersion: "v1", canaryVersion: "v2" },
    reason: "http abuse suite",
  });
  expect(r.status).toBe(200);
  client = grpcJsClient(DecisionService, server.address);
});

afterAll(async () => {
  client?.close();
  // One line per attack: what the well-behaved client saw meanwhile.
  console.log("well-behaved Route during each attack:\n" + Object.entries(recorded).map(([k, f]) => `  ${k}: ${JSON.stringify(f)}`).join("\n"));
  await server?.stop();
});

/** Runs `attack` while two grpc-js loops call Route; returns their figures once the attack is done. */
async function underAttack(name: string, attack: () => Promise<void>): Promise<Figures> {
  const latencies: number[] = [];
  let errors = 0;
  let firstError: unknown;
  let stop = false;
  const loop = async () => {
    while (!stop) {
      const t = performance.now();
      try {
        await unary(client, "route", { rollout: "abuse", key: `user-${latencies.length}` }, new grpc.Metadata());
        latencies.push(performance.now() - t);
      } catch (e) {
        errors++;
        firstError ??= e;
      }
    }
  };
  const loops = [loop(), loop()];
  await sleep(50);
  try {
    await attack();
  } finally {
    stop = true;
    await Promise.all(loops);
  }
  const f = figures(latencies, errors);
  recorded[name] = f;
  expect(firstError, `${name}: the well-behaved client failed`).toBeUndefined();
  expect(f.calls).toBeGreaterThan(0);
  expect(server.alive()).toBe(true);
  // And afterwards: a fresh Route still answers.
  const after = await unary<{ variant: number }>(client, "route", { rollout: "abuse", key: "after" });
  expect(after.variant).toBeGreaterThan(0);
  return f;
}

/** Waits until a socket closes or `ms` passes; resolves with whether it closed. */
function closedWithin(s: Socket, ms: number): Promise<boolean> {
  return new Promise((resolve) => {
    if (s.destroyed) return resolve(true);
    const t = setTimeout(() => resolve(false), ms);
    s.once("close", () => {
      clearTimeout(t);
      resolve(true);
    });
  });
}

describe("HTTP/2 abuse", () => {
  it("rapid reset (CVE-2023-44487): thousands of streams opened and reset at once; the attacker gets GOAWAY(ENHANCE_YOUR_CALM) and is closed", async () => {
    let received: Received | undefined;
    let closed = false;
    await underAttack("rapid reset", async () => {
      const s = await rawH2(server.port);
      received = watchFrames(s);
      const block = grpcHeaders(server.address, "/rollgate.v1.DecisionService/Route");
      const rst = Buffer.alloc(4);
      rst.writeUInt32BE(8); // CANCEL
      // 20 rounds of 500 HEADERS+RST_STREAM pairs, written as fast as the socket takes them.
      let id = 1;
      for (let round = 0; round < 20 && !s.destroyed; round++) {
        const frames: Buffer[] = [];
        for (let i = 0; i < 500; i++, id += 2) frames.push(h2Frame(FRAME.HEADERS, 0x4, id, block), h2Frame(FRAME.RST_STREAM, 0, id, rst));
        s.write(Buffer.concat(frames));
        await sleep(5);
      }
      closed = await closedWithin(s, 5000);
      s.destroy();
    });
    // The server's own guard (one-port.ts), not nghttp2's limit (GOAWAY INTERNAL_ERROR, connection left open).
    expect(received?.goaways[0]).toBe(ENHANCE_YOUR_CALM);
    expect(closed).toBe(true);
  });

  it("rapid reset through node:http2's client: stream.close(NGHTTP2_CANCEL) in a loop", async () => {
    const http2 = await import("node:http2");
    const goaways: number[] = [];
    let closed = false;
    await underAttack("rapid reset (node:http2 client)", async () => {
      const session = http2.connect(server.url);
      session.on("error", () => {});
      session.on("goaway", (code) => goaways.push(code));
      const gone = new Promise<void>((resolve) => session.once("close", resolve));
      for (let i = 0; i < 3000 && !session.destroyed && !session.closed; i++) {
        try {
          const req = session.request({ ":method": "POST", ":path": "/rollgate.v1.DecisionService/Route", "content-type": "application/grpc", te: "trailers" });
          req.on("error", () => {});
          req.close(http2.constants.NGHTTP2_CANCEL);
        } catch {
          break; // the server said GOAWAY: the session refuses new streams
        }
        if (i % 200 === 0) await sleep(1);
      }
      closed = await Promise.race([gone.then(() => true), sleep(5000).then(() => false)]);
      session.destroy();
    });
    expect(goaways[0]).toBe(ENHANCE_YOUR_CALM);
    expect(closed).toBe(true);
  });

  it("oversized and numerous headers", async () => {
    await underAttack("huge headers", async () => {
      for (const extra of [
        [["x-big", "a".repeat(256 * 1024)]] as [string, string][],
        Array.from({ length: 2000 }, (_, i) => [`x-h${i}`, "v"] as [string, string]),
      ]) {
        const s = await rawH2(server.port);
        const block = hpackLiterals([
          [":method", "POST"],
          [":scheme", "http"],
          [":path", "/rollgate.v1.DecisionService/Route"],
          [":authority", server.address],
          ["content-type", "application/grpc"],
          ...extra,
        ]);
        // One HEADERS frame carries at most 16 KiB: the rest in CONTINUATION frames (type 9).
        const frames: Buffer[] = [];
        for (let at = 0; at < block.length; at += 16_384) {
          const part = block.subarray(at, at + 16_384);
          const last = at + 16_384 >= block.length;
          frames.push(h2Frame(at === 0 ? FRAME.HEADERS : 9, last ? 0x4 : 0, 1, part));
        }
        s.write(Buffer.concat(frames));
        await closedWithin(s, 1000);
        s.destroy();
      }
      // The same over HTTP/1.1: 128 KiB of headers, 2000 of them.
      for (const head of ["x-big: " + "a".repeat(128 * 1024) + "\r\n", Array.from({ length: 2000 }, (_, i) => `x-h${i}: v\r\n`).join("")]) {
        const s = netConnect({ host: "127.0.0.1", port: server.port });
        s.on("error", () => {});
        let answer = "";
        s.on("data", (d: Buffer) => (answer += d.toString("latin1")));
        s.write(`POST /rollgate.v1.DecisionService/Route HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n${head}content-length: 2\r\n\r\n{}`);
        await closedWithin(s, 2000);
        s.destroy();
        // node:http refuses headers past 16 KiB with 431; never a 5xx.
        expect(answer.slice(0, 12)).toMatch(/^(HTTP\/1\.1 4\d\d|)$/);
      }
    });
  });

  it("SETTINGS and PING floods", async () => {
    await underAttack("settings+ping flood", async () => {
      const sockets = await Promise.all([rawH2(server.port), rawH2(server.port)]);
      const settings = Buffer.alloc(6);
      settings.writeUInt16BE(0x3, 0); // MAX_CONCURRENT_STREAMS
      settings.writeUInt32BE(100, 2);
      const ping = Buffer.alloc(8, 7);
      for (let round = 0; round < 20; round++) {
        const a: Buffer[] = [];
        const b: Buffer[] = [];
        for (let i = 0; i < 1000; i++) {
          a.push(h2Frame(FRAME.SETTINGS, 0, 0, settings));
          b.push(h2Frame(FRAME.PING, 0, 0, ping));
        }
        if (!sockets[0]!.destroyed) sockets[0]!.write(Buffer.concat(a));
        if (!sockets[1]!.destroyed) sockets[1]!.write(Buffer.concat(b));
        await sleep(5);
      }
      await Promise.all(sockets.map((s) => closedWithin(s, 500)));
      for (const s of sockets) s.destroy();
    });
  });
});

describe("HTTP/1.1 abuse", () => {
  it("slowloris: 200 sockets sending their headers a byte at a time", async () => {
    const sockets: Socket[] = [];
    await underAttack("slowloris", async () => {
      const head = Buffer.from("POST /rollgate.v1.DecisionService/Route HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\nx-slow: ");
      for (let i = 0; i < 200; i++) {
        const s = netConnect({ host: "127.0.0.1", port: server.port });
        s.on("error", () => {});
        sockets.push(s);
      }
      for (let at = 0; at < head.length + 30; at++) {
        for (const s of sockets) if (!s.destroyed) s.write(Buffer.from([at < head.length ? head[at]! : 0x61]));
        await sleep(20);
      }
    });
    for (const s of sockets) s.destroy();
  });

  it("a 5 MiB body from Python's urllib without Expect: 100-continue reads the 429, not a reset", async () => {
    // urllib sends `Connection: close` and the whole body before it reads: the server must read
    // (and drop) the rest of the body before it closes, or the kernel resets the connection.
    const script = `
import json, sys, urllib.request, urllib.error
url = sys.argv[1] + "/rollgate.v1.DecisionService/Route"
def attempt(data):
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return {"status": r.status}
    except urllib.error.HTTPError as e:
        return {"status": e.code, "body": json.loads(e.read())}
    except Exception as e:
        return {"error": type(e).__name__ + ": " + str(e)}
big = b'{"rollout":"abuse","key":"' + b"k" * (5 * 1024 * 1024) + b'"}'
def chunked():
    yield b'{"rollout":"abuse","key":"'
    for _ in range(80):
        yield b"k" * 65536
    yield b'"}'
print(json.dumps([attempt(big), attempt(chunked())]))
`;
    await underAttack("5 MiB urllib body", async () => {
      const out = JSON.parse(await runPython(script, [server.url])) as { status?: number; body?: { code: string; message: string }; error?: string }[];
      for (const r of out) {
        expect(r.error).toBeUndefined();
        expect(r.status).toBe(429);
        expect(r.body?.code).toBe("resource_exhausted");
        expect(r.body?.message).toMatch(/larger than configured readMaxBytes 4194304/);
      }
    });
  });
});
