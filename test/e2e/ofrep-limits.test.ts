import { createServer, type Server } from "node:http";
import * as http2 from "node:http2";
import { connect, type Socket } from "node:net";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createAdmit } from "../../src/server/admit.js";
import { createAuthenticator } from "../../src/server/auth.js";
import { createMetrics } from "../../src/server/metrics.js";
import { createCallReporter } from "../../src/server/observe.js";
import { OFREP_MAX_BODY_BYTES, withOfrep } from "../../src/server/ofrep.js";
import type { Engine } from "../../src/service/engine.js";
import { TEST_TOKENS, startTestServer, type TestServer } from "../helpers/servers.js";

const OPERATOR = "operator-token-0123456789";
const READER = "reader-token-01234567890";
const FIVE_MIB = 5 * 1024 * 1024;

/** What a raw HTTP/1.1 client saw after sending (part of) a large body. */
interface RawResult {
  readonly response: string;
  readonly bodyBytesWritten: number;
  readonly closed: boolean;
}

/**
 * Sends `head` then up to 5 MiB of body in 64 KiB writes (each after the last drained), and
 * stops writing when the server closes. Resolves when the socket closes, or after `waitMs`
 * with `closed: false`.
 */
function sendLarge(port: number, head: string, chunked: boolean, waitMs = 10_000): Promise<RawResult> {
  return new Promise((resolve) => {
    const socket: Socket = connect(port, "127.0.0.1");
    let response = "";
    let written = 0;
    let closed = false;
    const timer = setTimeout(() => {
      socket.destroy();
      resolve({ response, bodyBytesWritten: written, closed: false });
    }, waitMs);
    socket.on("data", (d: Buffer) => (response += d.toString("latin1")));
    socket.on("error", () => {});
    socket.on("close", () => {
      closed = true;
      clearTimeout(timer);
      resolve({ response, bodyBytesWritten: written, closed: true });
    });
    const chunk = Buffer.alloc(64 * 1024, 0x61);
    const pump = () => {
      while (!closed && !socket.destroyed && written < FIVE_MIB) {
        written += chunk.length;
        const frame = chunked ? Buffer.concat([Buffer.from(`${chunk.length.toString(16)}\r\n`), chunk, Buffer.from("\r\n")]) : chunk;
        if (!socket.write(frame)) {
          socket.once("drain", () => setImmediate(pump));
          return;
        }
      }
      if (chunked && written >= FIVE_MIB && !socket.destroyed) socket.write("0\r\n\r\n");
    };
    socket.on("connect", () => {
      socket.write(head);
      pump();
    });
  });
}

describe("OFREP: refused and oversized bodies are not read", () => {
  let server: TestServer;
  let port: number;

  beforeAll(async () => {
    server = await startTestServer({}, { tokens: TEST_TOKENS });
    port = Number(new URL(server.url).port);
    const res = await fetch(`${server.url}/rollgate.v1.RolloutService/CreateRollout`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${OPERATOR}` },
      body: JSON.stringify({ rollout: { name: "checkout", stableVersion: "v1", canaryVersion: "v2", features: { "new-ui": true } } }),
    });
    expect(res.status).toBe(200);
  });
  afterAll(async () => {
    await server?.stop();
  });

  async function stillHealthy() {
    const res = await fetch(`${server.url}/ofrep/v1/evaluate/flags/checkout`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${READER}` },
      body: JSON.stringify({ context: { targetingKey: "u1" } }),
    });
    expect(res.status).toBe(200);
  }

  const cases: { name: string; status: number; head: (len: string) => string; chunked: boolean }[] = [
    {
      name: "unauthenticated (401)",
      status: 401,
      chunked: false,
      head: (len) => `POST /ofrep/v1/evaluate/flags/checkout HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n${len}\r\n`,
    },
    {
      name: "not POST (405)",
      status: 405,
      chunked: false,
      head: (len) => `PUT /ofrep/v1/evaluate/flags HTTP/1.1\r\nhost: x\r\nauthorization: Bearer ${READER}\r\n${len}\r\n`,
    },
    {
      name: "declared Content-Length over the limit (413)",
      status: 413,
      chunked: false,
      head: (len) => `POST /ofrep/v1/evaluate/flags/checkout HTTP/1.1\r\nhost: x\r\nauthorization: Bearer ${READER}\r\n${len}\r\n`,
    },
    {
      name: "a chunked body that passes the limit (413)",
      status: 413,
      chunked: true,
      head: () => `POST /ofrep/v1/evaluate/flags/checkout HTTP/1.1\r\nhost: x\r\nauthorization: Bearer ${READER}\r\ntransfer-encoding: chunked\r\n\r\n`,
    },
  ];
  for (const c of cases) {
    it(`HTTP/1.1, ${c.name}: answers, closes the connection, and stays healthy`, async () => {
      const got = await sendLarge(port, c.head(`content-length: ${FIVE_MIB}\r\n`), c.chunked);
      expect(got.response.split("\r\n", 1)[0]).toBe(`HTTP/1.1 ${c.status} ${c.status === 401 ? "Unauthorized" : c.status === 405 ? "Method Not Allowed" : "Payload Too Large"}`);
      expect(got.response.toLowerCase()).toContain("connection: close");
      expect(got.closed).toBe(true);
      expect(got.bodyBytesWritten).toBeLessThan(FIVE_MIB);
      await stillHealthy();
    });
  }

  it("HTTP/2: a refused 5 MiB upload gets its 401, the stream is closed with NO_ERROR, the session stays usable", async () => {
    const session = http2.connect(server.url);
    try {
      const req = session.request({ ":method": "POST", ":path": "/ofrep/v1/evaluate/flags/checkout", "content-type": "application/json" });
      let status = 0;
      req.on("response", (h) => (status = Number(h[":status"])));
      req.on("data", () => {});
      req.on("error", () => {});
      let sent = 0;
      const chunk = Buffer.alloc(64 * 1024, 0x61);
      const pump = () => {
        while (!req.closed && sent < FIVE_MIB) {
          sent += chunk.length;
          if (!req.write(chunk)) {
            req.once("drain", pump);
            return;
          }
        }
        if (!req.closed) req.end();
      };
      pump();
      const rst = await new Promise<number>((resolve) => req.on("close", () => resolve(req.rstCode)));
      expect(status).toBe(401);
      expect(rst).toBe(http2.constants.NGHTTP2_NO_ERROR);
      expect(sent).toBeLessThan(FIVE_MIB);
      const ok = session.request({ ":method": "POST", ":path": "/ofrep/v1/evaluate/flags/checkout", authorization: `Bearer ${READER}` });
      ok.end(JSON.stringify({ context: { targetingKey: "u1" } }));
      const okStatus = await new Promise<number>((resolve) => ok.on("response", (h) => resolve(Number(h[":status"]))));
      ok.resume();
      expect(okStatus).toBe(200);
    } finally {
      session.close();
    }
  });
});

describe("OFREP: the server reads no more than the limit of a refused body (measured on the server's socket)", () => {
  let http: Server;
  let port: number;
  const sockets: Socket[] = [];

  beforeAll(async () => {
    const handler = withOfrep(
      {
        engine: { list: () => [], routeTable: () => undefined } as unknown as Engine,
        admit: createAdmit({ state: () => "ready", auth: createAuthenticator(TEST_TOKENS) }),
        report: createCallReporter(pino({ level: "silent" }), createMetrics(() => [])),
      },
      (_req, res) => {
        res.writeHead(404);
        res.end();
      },
    );
    http = createServer((req, res) => handler(req, res));
    http.on("connection", (s: Socket) => sockets.push(s));
    await new Promise<void>((resolve) => http.listen(0, "127.0.0.1", resolve));
    port = (http.address() as { port: number }).port;
  });
  afterAll(async () => {
    await new Promise<void>((resolve) => http.close(() => resolve()));
  });

  for (const [name, head, chunked] of [
    ["401", `POST /ofrep/v1/evaluate/flags/x HTTP/1.1\r\nhost: x\r\ncontent-length: ${FIVE_MIB}\r\n\r\n`, false],
    ["413, chunked", `POST /ofrep/v1/evaluate/flags/x HTTP/1.1\r\nhost: x\r\nauthorization: Bearer ${READER}\r\ntransfer-encoding: chunked\r\n\r\n`, true],
  ] as const) {
    it(`${name}: at most 64 KiB of body (and one socket read) is read of a 5 MiB upload`, async () => {
      const n = sockets.length;
      const got = await sendLarge(port, head, chunked);
      expect(got.closed).toBe(true);
      expect(sockets.length).toBe(n + 1);
      const server = sockets[n]!;
      // One socket read is at most 64 KiB: the limit, one read past it, the head and chunk framing.
      expect(server.bytesRead).toBeLessThanOrEqual(OFREP_MAX_BODY_BYTES + 64 * 1024 + 4096);
    });
  }
});
