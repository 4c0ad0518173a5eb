import { execFile } from "node:child_process";
import { request } from "node:http";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { curl } from "../helpers/curl.js";
import { repoRoot, startTestServer, type TestServer } from "../helpers/servers.js";

/**
 * Real Connect clients — curl (HTTP/1.1 and prior-knowledge HTTP/2) and `buf curl` (connect-go
 * inside) — against the server with the Connect fast path on and off: the same answers, and the
 * fast one served them itself. clients/go/connect_conformance_test.go does the same with
 * connect-go's own client.
 */

const ROUTE = "rollgate.v1.DecisionService/Route";
const BATCH = "rollgate.v1.DecisionService/RouteBatch";
const buf = join(repoRoot, "node_modules", ".bin", "buf");

/** Runs `buf curl` with the repository's schema; returns its stdout (the answer as JSON) and exit code. */
function bufCurl(args: string[]): Promise<{ code: number; out: string; err: string }> {
  return new Promise((resolve) => {
    execFile(buf, ["curl", "--schema", join(repoRoot, "proto"), ...args], { timeout: 60_000 }, (err, stdout, stderr) => {
      resolve({ code: err === null ? 0 : typeof err.code === "number" ? err.code : -1, out: stdout, err: stderr });
    });
  });
}

async function fastServed(s: TestServer): Promise<number> {
  const m = await s.metrics.registry.getSingleMetric("rollgate_connect_fast_path_requests_total")?.get();
  return (m?.values ?? []).reduce((n, v) => n + v.value, 0);
}

let fast: TestServer;
let slow: TestServer;
beforeAll(async () => {
  [fast, slow] = await Promise.all([startTestServer({ connectFastPath: true }), startTestServer({ connectFastPath: false })]);
  for (const s of [fast, slow]) {
    const r = await fetch(`${s.url}/rollgate.v1.RolloutService/CreateRollout`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ rollout: { name: "cc", stableVersion: "v1", canaryVersion: "v2" }, reason: "test" }),
    });
    expect(r.status).toBe(200);
  }
});
afterAll(async () => {
  await fast?.stop();
  await slow?.stop();
});

/** Runs one client call against both servers; returns both results and how many calls the fast path served. */
async function both<T>(call: (url: string) => Promise<T>): Promise<{ onFast: T; onConnect: T; served: number }> {
  const before = await fastServed(fast);
  const onFast = await call(fast.url);
  const served = (await fastServed(fast)) - before;
  return { onFast, onConnect: await call(slow.url), served };
}

const message = JSON.stringify({ rollout: "cc", key: "user-12345" });

describe("curl", () => {
  for (const http of [[], ["--http2-prior-knowledge"]]) {
    const v = http.length === 0 ? "HTTP/1.1" : "HTTP/2";
    it(`POST application/json over ${v}`, async () => {
      const r = await both((url) => curl([...http, "-X", "POST", `${url}/${ROUTE}`, "-H", "content-type: application/json", "-d", message]));
      expect(r.onFast.status).toBe(200);
      expect(r.onFast.json).toMatchObject({ version: expect.stringMatching(/^v[12]$/), rolloutVersion: "1" });
      expect(r.onFast).toEqual(r.onConnect);
      expect(r.served).toBe(1);
    });

    it(`GET ?connect=v1&encoding=json over ${v}`, async () => {
      const query = new URLSearchParams({ connect: "v1", encoding: "json", message }).toString();
      const r = await both((url) => curl([...http, `${url}/${ROUTE}?${query}`]));
      expect(r.onFast.status).toBe(200);
      expect(r.onFast).toEqual(r.onConnect);
      expect(r.served).toBe(1);
    });

    it(`--compressed RouteBatch over ${v} (gzip answer, decoded by curl)`, async () => {
      const keys = Array.from({ length: 300 }, (_, i) => `user-${i}`);
      const r = await both((url) =>
        curl([...http, "--compressed", "-X", "POST", `${url}/${BATCH}`, "-H", "content-type: application/json", "-d", JSON.stringify({ rollout: "cc", keys }), "-w", "\n%{size_download}\n%{http_code}"]),
      );
      expect(r.onFast.status).toBe(200);
      const [fastBody, fastSize] = splitSize(r.onFast.body);
      const [connectBody, connectSize] = splitSize(r.onConnect.body);
      expect(JSON.parse(fastBody)).toEqual(JSON.parse(connectBody));
      expect((JSON.parse(fastBody) as { results: unknown[] }).results).toHaveLength(300);
      // Compressed on the wire: fewer bytes came than the JSON has.
      expect(fastSize).toBeLessThan(fastBody.length / 2);
      expect(fastSize).toBe(connectSize);
      expect(r.served).toBe(1);
    });
  }
});

/** Splits curl's body from the `\n%{size_download}` the call appended. */
function splitSize(body: string): [string, number] {
  const cut = body.lastIndexOf("\n");
  return [body.slice(0, cut), Number(body.slice(cut + 1))];
}

describe("buf curl --protocol connect", () => {
  for (const http of [[], ["--http2-prior-knowledge"]]) {
    const v = http.length === 0 ? "HTTP/1.1" : "HTTP/2";
    it(`Route over ${v} (binary, gzip accepted)`, async () => {
      const r = await both((url) => bufCurl([...http, "--protocol", "connect", "--data", message, `${url}/${ROUTE}`]));
      expect(r.onFast.code).toBe(0);
      expect(JSON.parse(r.onFast.out)).toMatchObject({ reason: "ROUTE_REASON_WEIGHT", rolloutVersion: "1" });
      expect(r.onFast.out).toBe(r.onConnect.out);
      expect(r.served).toBe(1);
    });

    it(`an error over ${v}: the code and message connect-node gives`, async () => {
      const r = await both((url) => bufCurl([...http, "--protocol", "connect", "--data", JSON.stringify({ rollout: "absent", key: "k" }), `${url}/${ROUTE}`]));
      expect(r.onFast.code).not.toBe(0);
      expect(r.onFast.err).toContain("not_found");
      expect(r.onFast.err).toContain('rollout \\"absent\\" not found');
      expect(r.onFast.err).toBe(r.onConnect.err);
      expect(r.served).toBe(1);
    });
  }
});

describe("connect-timeout-ms", () => {
  it("a deadline that passes while the body is still coming answers deadline_exceeded (fast path)", async () => {
    const before = await fastServed(fast);
    const url = new URL(`/${ROUTE}`, fast.url);
    const answer = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = request(url, { method: "POST", headers: { "content-type": "application/json", "content-length": String(message.length), "connect-timeout-ms": "200" } }, (res) => {
        let body = "";
        res.on("data", (c: Buffer) => (body += c.toString()));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
      });
      req.on("error", reject);
      // Half the body, and then nothing: only the deadline can end this call.
      req.write(message.slice(0, 10));
    });
    expect(answer.status).toBe(504);
    expect(JSON.parse(answer.body)).toEqual({ code: "deadline_exceeded", message: "the operation timed out" });
    expect((await fastServed(fast)) - before).toBe(1);
  });
});
