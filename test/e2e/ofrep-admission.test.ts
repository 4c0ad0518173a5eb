import { createServer, type Server } from "node:http";
import { Writable } from "node:stream";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createAdmit, type ServingState } from "../../src/server/admit.js";
import { createAuthenticator } from "../../src/server/auth.js";
import { createMetrics } from "../../src/server/metrics.js";
import { createCallReporter } from "../../src/server/observe.js";
import { withOfrep } from "../../src/server/ofrep.js";
import type { Engine } from "../../src/service/engine.js";
import { TEST_TOKENS, startTestServer, type TestServer } from "../helpers/servers.js";

const OPERATOR = "operator-token-0123456789";
const READER = "reader-token-01234567890";
const CTX = JSON.stringify({ context: { targetingKey: "user-1" } });

/** Returns the value of one sample of a Prometheus text exposition (0 when absent). */
function sample(text: string, name: string, labels: Record<string, string>): number {
  for (const line of text.split("\n")) {
    if (!line.startsWith(`${name}{`)) continue;
    const inner = line.slice(name.length + 1, line.indexOf("}"));
    const got = Object.fromEntries(inner.split(",").map((kv) => [kv.slice(0, kv.indexOf("=")), JSON.parse(kv.slice(kv.indexOf("=") + 1)) as string]));
    if (Object.entries(labels).every(([k, v]) => got[k] === v)) return Number(line.slice(line.lastIndexOf(" ") + 1));
  }
  return 0;
}

describe("OFREP goes through admission and the call reporter", () => {
  let server: TestServer;

  function ofrep(path: string, headers: Record<string, string> = { authorization: `Bearer ${READER}` }) {
    return fetch(`${server.url}/ofrep/v1/evaluate/flags${path}`, { method: "POST", headers: { "content-type": "application/json", ...headers }, body: CTX });
  }
  async function metrics(): Promise<string> {
    return (await fetch(`${server.url}/metrics`)).text();
  }

  beforeAll(async () => {
    server = await startTestServer({}, { tokens: TEST_TOKENS });
    for (const name of ["checkout", "search", "cart"]) {
      const res = await fetch(`${server.url}/rollgate.v1.RolloutService/CreateRollout`, {
        method: "POST",
        headers: { "content-type": "application/json", authorization: `Bearer ${OPERATOR}` },
        body: JSON.stringify({ rollout: { name, stableVersion: "v1", canaryVersion: "v2" } }),
      });
      expect(res.status).toBe(200);
    }
  });
  afterAll(async () => {
    await server?.stop();
  });

  it("answers an x-request-id: the caller's when well-formed, a new one otherwise, on success and refusal", async () => {
    const mine = await ofrep("/checkout", { authorization: `Bearer ${READER}`, "x-request-id": "req-ofrep-1" });
    expect(mine.status).toBe(200);
    expect(mine.headers.get("x-request-id")).toBe("req-ofrep-1");
    const fresh = await ofrep("");
    expect(fresh.status).toBe(200);
    expect(fresh.headers.get("x-request-id")).toMatch(/^[0-9a-f-]{36}$/);
    const refused = await ofrep("/checkout", { "x-request-id": "req-ofrep-2" });
    expect(refused.status).toBe(401);
    expect(refused.headers.get("x-request-id")).toBe("req-ofrep-2");
    // The same wording as an RPC refused for the same reason.
    const rpc = await fetch(`${server.url}/rollgate.v1.DecisionService/Route`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ rollout: "checkout", key: "user-1" }),
    });
    expect(rpc.status).toBe(401);
    expect(((await refused.json()) as { errorDetails: string }).errorDetails).toBe(((await rpc.json()) as { message: string }).message);
  });

  it("counts each endpoint under its own procedure in the RPC metrics, by outcome", async () => {
    const before = await metrics();
    expect((await ofrep("/checkout")).status).toBe(200);
    expect((await ofrep("/nope")).status).toBe(404);
    expect((await ofrep("/checkout", {})).status).toBe(401);
    expect((await ofrep("")).status).toBe(200);
    const after = await metrics();
    const delta = (method: string, code: string) =>
      sample(after, "rollgate_rpc_requests_total", { method, code }) - sample(before, "rollgate_rpc_requests_total", { method, code });
    expect(delta("ofrep/EvaluateFlag", "ok")).toBe(1);
    expect(delta("ofrep/EvaluateFlag", "not_found")).toBe(1);
    expect(delta("ofrep/EvaluateFlag", "unauthenticated")).toBe(1);
    expect(delta("ofrep/EvaluateFlags", "ok")).toBe(1);
    expect(sample(after, "rollgate_rpc_duration_seconds_count", { method: "ofrep/EvaluateFlags" })).toBeGreaterThan(0);
  });

  it("counts a routed key per single evaluation, none for a bulk evaluation (docs/design.md §9)", async () => {
    const routed = (text: string) =>
      ["checkout", "search", "cart"].reduce(
        (n, rollout) => n + sample(text, "rollgate_routes_total", { rollout, variant: "stable" }) + sample(text, "rollgate_routes_total", { rollout, variant: "canary" }),
        0,
      );
    const before = routed(await metrics());
    expect((await ofrep("")).status).toBe(200);
    expect(routed(await metrics())).toBe(before);
    expect((await ofrep("/search")).status).toBe(200);
    expect(routed(await metrics())).toBe(before + 1);
  });
});

describe("OFREP admission order and unexpected errors (a handler on its own port)", () => {
  let http: Server;
  let url: string;
  let state: ServingState = "starting";
  const lines: Record<string, unknown>[] = [];

  beforeAll(async () => {
    const logger = pino(
      { level: "info" },
      new Writable({
        write(chunk: Buffer, _enc, done) {
          lines.push(JSON.parse(chunk.toString("utf8")) as Record<string, unknown>);
          done();
        },
      }),
    );
    // An engine whose route table fails as a bug would: the handler must answer 500 and log why.
    const broken = {
      list: () => [],
      routeTable: () => {
        throw new Error("route table corrupted (injected)");
      },
    } as unknown as Engine;
    const handler = withOfrep(
      {
        engine: broken,
        admit: createAdmit({ state: () => state, auth: createAuthenticator(TEST_TOKENS) }),
        report: createCallReporter(logger, createMetrics(() => [])),
      },
      (_req, res) => {
        res.writeHead(404);
        res.end();
      },
    );
    http = createServer((req, res) => handler(req, res));
    await new Promise<void>((resolve) => http.listen(0, "127.0.0.1", resolve));
    url = `http://127.0.0.1:${(http.address() as { port: number }).port}`;
  });
  afterAll(async () => {
    await new Promise<void>((resolve) => http.close(() => resolve()));
  });

  it("answers 503 before checking credentials while starting, as the RPCs do", async () => {
    state = "starting";
    const res = await fetch(`${url}/ofrep/v1/evaluate/flags/checkout`, { method: "POST", body: CTX });
    expect(res.status).toBe(503);
    expect(((await res.json()) as { errorDetails: string }).errorDetails).toBe("starting: state is loading");
  });

  it("answers 500 with the request id only, and logs the cause", async () => {
    state = "ready";
    const res = await fetch(`${url}/ofrep/v1/evaluate/flags/checkout`, {
      method: "POST",
      headers: { authorization: `Bearer ${READER}`, "x-request-id": "req-boom" },
      body: CTX,
    });
    expect(res.status).toBe(500);
    const body = (await res.json()) as { errorDetails: string };
    expect(body.errorDetails).not.toContain("corrupted");
    expect(body.errorDetails).toContain("req-boom");
    const logged = lines.find((l) => l.msg === "internal error" && l.requestId === "req-boom");
    expect(logged).toBeDefined();
    expect(JSON.stringify(logged)).toContain("route table corrupted (injected)");
    expect(logged!.method).toBe("ofrep/EvaluateFlag");
  });

  it("logs nothing for a successful call", async () => {
    state = "ready";
    const n = lines.length;
    // The bulk endpoint over an engine with no rollouts succeeds with no flags.
    const res = await fetch(`${url}/ofrep/v1/evaluate/flags`, { method: "POST", headers: { authorization: `Bearer ${READER}` }, body: CTX });
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ flags: [] });
    expect(lines.length).toBe(n);
  });
});
