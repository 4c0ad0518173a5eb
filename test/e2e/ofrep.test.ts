import * as http2 from "node:http2";
import { OFREPProvider } from "@openfeature/ofrep-provider";
import { OpenFeature, type Client } from "@openfeature/server-sdk";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TEST_TOKENS, startTestServer, type TestServer } from "../helpers/servers.js";

const OPERATOR = "operator-token-0123456789";
const READER = "reader-token-01234567890";

/** Reason and variant names as Connect JSON spells them, to OFREP's. */
const REASONS: Record<string, string> = {
  ROUTE_REASON_WEIGHT: "SPLIT",
  ROUTE_REASON_OVERRIDE: "TARGETING_MATCH",
  ROUTE_REASON_STAGE: "STATIC",
  ROUTE_REASON_ROLLED_BACK: "DISABLED",
  ROUTE_REASON_HALTED: "DISABLED",
};
const VARIANTS: Record<string, string> = { VARIANT_STABLE: "stable", VARIANT_CANARY: "canary" };

interface RouteJson {
  variant: string;
  version: string;
  bucket?: number;
  weightBp?: number;
  features?: string[];
  reason: string;
  rolloutVersion?: string;
}

describe("OFREP", () => {
  let server: TestServer;

  /** Calls a rollgate RPC with Connect JSON over HTTP/1.1. */
  async function rpc<T>(method: string, body: unknown, token = OPERATOR): Promise<T> {
    const res = await fetch(`${server.url}/rollgate.v1.${method}`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
      body: JSON.stringify(body),
    });
    const json = (await res.json()) as T;
    if (!res.ok) throw new Error(`${method}: ${res.status} ${JSON.stringify(json)}`);
    return json;
  }

  /** POSTs to an OFREP path. */
  function ofrep(path: string, body: string, headers: Record<string, string> = { authorization: `Bearer ${READER}` }) {
    return fetch(`${server.url}/ofrep/v1/evaluate/flags${path}`, {
      method: "POST",
      headers: { "content-type": "application/json", ...headers },
      body,
    });
  }

  /** Route's answers for many keys, through RouteBatch (the same answers as Route). */
  async function routeAll(rollout: string, keys: string[]): Promise<RouteJson[]> {
    const out: RouteJson[] = [];
    for (let i = 0; i < keys.length; i += 1000) {
      const got = await rpc<{ results: RouteJson[] }>("DecisionService/RouteBatch", { rollout, keys: keys.slice(i, i + 1000) }, READER);
      out.push(...got.results);
    }
    return out;
  }

  beforeAll(async () => {
    server = await startTestServer({}, { tokens: TEST_TOKENS });
    await rpc("RolloutService/CreateRollout", {
      rollout: { name: "checkout", stableVersion: "v1", canaryVersion: "v2", features: { "new-ui": true, legacy: false } },
    });
    await rpc("RolloutService/SetWeight", { name: "checkout", weightBp: 3300, reason: "test" });
    await rpc("RolloutService/SetOverride", { name: "checkout", key: "vip", variant: "VARIANT_CANARY" });
    await rpc("RolloutService/CreateRollout", { rollout: { name: "frozen", stableVersion: "f1", canaryVersion: "f2" } });
    await rpc("RolloutService/Halt", { name: "frozen", reason: "test" });
  });
  afterAll(async () => {
    await OpenFeature.close();
    await server?.stop();
  });

  describe("the protocol", () => {
    it("evaluates a rollout as a string flag with Route's answer, reason and metadata", async () => {
      const res = await ofrep("/checkout", JSON.stringify({ context: { targetingKey: "user-1" } }));
      expect(res.status).toBe(200);
      const got = (await res.json()) as Record<string, unknown>;
      const [want] = await routeAll("checkout", ["user-1"]);
      expect(got).toEqual({
        key: "checkout",
        value: want!.version,
        variant: VARIANTS[want!.variant],
        reason: "SPLIT",
        metadata: {
          rollout: "checkout",
          bucket: want!.bucket ?? 0,
          weightBp: 3300,
          rolloutVersion: Number(want!.rolloutVersion),
          stage: "canary",
          rolloutVariant: VARIANTS[want!.variant],
        },
      });
    });

    it("answers TARGETING_MATCH for an override, DISABLED for a halted rollout, booleans for features", async () => {
      const vip = (await (await ofrep("/checkout", JSON.stringify({ context: { targetingKey: "vip" } }))).json()) as Record<string, unknown>;
      expect(vip).toMatchObject({ value: "v2", variant: "canary", reason: "TARGETING_MATCH" });
      const frozen = (await (await ofrep("/frozen", JSON.stringify({ context: { targetingKey: "vip" } }))).json()) as Record<string, unknown>;
      expect(frozen).toMatchObject({ value: "f1", variant: "stable", reason: "DISABLED", metadata: { stage: "halted" } });
      const on = (await (await ofrep("/checkout%2Fnew-ui", JSON.stringify({ context: { targetingKey: "vip" } }))).json()) as Record<string, unknown>;
      expect(on).toMatchObject({ key: "checkout/new-ui", value: true, variant: "on", reason: "TARGETING_MATCH" });
      // Unencoded slash too; a disabled feature is off even on the canary.
      const off = (await (await ofrep("/checkout/legacy", JSON.stringify({ context: { targetingKey: "vip" } }))).json()) as Record<string, unknown>;
      expect(off).toMatchObject({ key: "checkout/legacy", value: false, variant: "off" });
    });

    it("answers OFREP's errors", async () => {
      const ctx = JSON.stringify({ context: { targetingKey: "k" } });
      const cases: [string, string, number, string | undefined][] = [
        ["/nope", ctx, 404, "FLAG_NOT_FOUND"],
        ["/checkout/no-such-feature", ctx, 404, "FLAG_NOT_FOUND"],
        ["/Not_A_Name", ctx, 404, "FLAG_NOT_FOUND"],
        ["/checkout", JSON.stringify({ context: {} }), 400, "TARGETING_KEY_MISSING"],
        ["/checkout", JSON.stringify({}), 400, "TARGETING_KEY_MISSING"],
        ["/checkout", "", 400, "TARGETING_KEY_MISSING"],
        ["/checkout", JSON.stringify({ context: "k" }), 400, "INVALID_CONTEXT"],
        ["/checkout", JSON.stringify({ context: { targetingKey: 7 } }), 400, "INVALID_CONTEXT"],
        ["/checkout", JSON.stringify({ context: { targetingKey: "x".repeat(1025) } }), 400, "INVALID_CONTEXT"],
        ["/checkout", "{not json", 400, "INVALID_CONTEXT"],
        ["", JSON.stringify({ context: {} }), 400, "TARGETING_KEY_MISSING"],
      ];
      for (const [path, body, status, code] of cases) {
        const res = await ofrep(path, body);
        const json = (await res.json()) as { errorCode?: string; errorDetails?: string; key?: string };
        expect([path, body.slice(0, 40), res.status, json.errorCode]).toEqual([path, body.slice(0, 40), status, code]);
        expect(json.errorDetails).toBeTypeOf("string");
        if (path !== "") expect(json.key).toBe(decodeURIComponent(path.slice(1)));
      }
    });

    it("takes Bearer and X-API-Key with the server's tokens; 401 otherwise", async () => {
      const ctx = JSON.stringify({ context: { targetingKey: "k" } });
      expect((await ofrep("/checkout", ctx, {})).status).toBe(401);
      expect((await ofrep("/checkout", ctx, { authorization: "Bearer wrong-token" })).status).toBe(401);
      expect((await ofrep("/checkout", ctx, { "x-api-key": "wrong-token" })).status).toBe(401);
      expect((await ofrep("/checkout", ctx, { "x-api-key": READER })).status).toBe(200);
      expect((await ofrep("/checkout", ctx, { authorization: `Bearer ${OPERATOR}` })).status).toBe(200);
      expect((await ofrep("", ctx, { "x-api-key": READER })).status).toBe(200);
    });

    it("answers over HTTP/2 (h2c) too, on the port the gRPC fast path serves", async () => {
      const session = http2.connect(server.url);
      try {
        const { status, body } = await new Promise<{ status: number; body: string }>((resolve, reject) => {
          const req = session.request({ ":method": "POST", ":path": "/ofrep/v1/evaluate/flags/checkout", "content-type": "application/json", authorization: `Bearer ${READER}` });
          let body = "";
          let status = 0;
          req.on("response", (h) => (status = Number(h[":status"])));
          req.setEncoding("utf8").on("data", (d: string) => (body += d));
          req.on("end", () => resolve({ status, body }));
          req.on("error", reject);
          req.end(JSON.stringify({ context: { targetingKey: "vip" } }));
        });
        expect(status).toBe(200);
        expect(JSON.parse(body)).toMatchObject({ key: "checkout", value: "v2", variant: "canary", reason: "TARGETING_MATCH" });
      } finally {
        session.close();
      }
    });

    it("bounds the body and takes POST only", async () => {
      const big = JSON.stringify({ context: { targetingKey: "k", pad: "x".repeat(70 * 1024) } });
      const res = await ofrep("/checkout", big);
      expect(res.status).toBe(413);
      const get = await fetch(`${server.url}/ofrep/v1/evaluate/flags/checkout`, { headers: { authorization: `Bearer ${READER}` } });
      expect(get.status).toBe(405);
    });

    it("bulk: every rollout and feature, with an ETag that answers 304 until something changes", async () => {
      const ctx = JSON.stringify({ context: { targetingKey: "user-9" } });
      const res = await ofrep("", ctx);
      expect(res.status).toBe(200);
      const etag = res.headers.get("etag")!;
      expect(etag).toMatch(/^".+"$/);
      const { flags } = (await res.json()) as { flags: { key: string; value: unknown }[] };
      expect(flags.map((f) => f.key)).toEqual(["checkout", "checkout/legacy", "checkout/new-ui", "frozen"]);
      for (const f of flags) {
        const one = (await (await ofrep(`/${encodeURIComponent(f.key)}`, ctx)).json()) as unknown;
        expect(one).toEqual(f);
      }
      expect((await ofrep("", ctx, { authorization: `Bearer ${READER}`, "if-none-match": etag })).status).toBe(304);
      expect((await ofrep("", ctx, { authorization: `Bearer ${READER}`, "if-none-match": `"other", ${etag}` })).status).toBe(304);
      expect((await ofrep("", ctx, { authorization: `Bearer ${READER}`, "if-none-match": '"other"' })).status).toBe(200);
      // Another key is another answer.
      const other = await ofrep("", JSON.stringify({ context: { targetingKey: "vip" } }), { authorization: `Bearer ${READER}`, "if-none-match": etag });
      expect(other.status).toBe(200);
      await rpc("RolloutService/SetWeight", { name: "checkout", weightBp: 3400, reason: "test" });
      const changed = await ofrep("", ctx, { authorization: `Bearer ${READER}`, "if-none-match": etag });
      expect(changed.status).toBe(200);
      expect(changed.headers.get("etag")).not.toBe(etag);
      await rpc("RolloutService/SetWeight", { name: "checkout", weightBp: 3300, reason: "test" });
    });
  });

  describe("the stock @openfeature/ofrep-provider with @openfeature/server-sdk", () => {
    let client: Client;
    beforeAll(async () => {
      await OpenFeature.setProviderAndWait(
        "ofrep",
        new OFREPProvider({ baseUrl: server.url, headers: [["Authorization", `Bearer ${READER}`]] }),
      );
      client = OpenFeature.getClient("ofrep");
    });

    it("agrees with Route for 3,000 keys: version, variant, reason, features", async () => {
      const keys = Array.from({ length: 3000 }, (_, i) => `user-${i}`);
      keys[17] = "vip";
      const want = await routeAll("checkout", keys);
      let canary = 0;
      for (let i = 0; i < keys.length; i += 50) {
        const chunk = keys.slice(i, i + 50);
        const got = await Promise.all(
          chunk.map(async (targetingKey) => ({
            version: await client.getStringDetails("checkout", "default", { targetingKey }),
            feature: await client.getBooleanDetails("checkout/new-ui", false, { targetingKey }),
          })),
        );
        got.forEach((g, j) => {
          const w = want[i + j]!;
          expect(g.version).toMatchObject({ value: w.version, variant: VARIANTS[w.variant], reason: REASONS[w.reason] });
          expect(g.version.errorCode).toBeUndefined();
          expect(g.version.flagMetadata).toMatchObject({ bucket: w.bucket ?? 0, stage: "canary" });
          expect(g.feature.value).toBe((w.features ?? []).includes("new-ui"));
        });
        canary += want.slice(i, i + 50).filter((w) => w.variant === "VARIANT_CANARY").length;
      }
      // Both variants were exercised.
      expect(canary).toBeGreaterThan(500);
      expect(canary).toBeLessThan(2500);
    }, 300_000);

    it("sees a halted rollout as DISABLED and an unknown flag as FLAG_NOT_FOUND with the default", async () => {
      expect(await client.getStringDetails("frozen", "default", { targetingKey: "k" })).toMatchObject({ value: "f1", reason: "DISABLED" });
      expect(await client.getStringDetails("missing", "default", { targetingKey: "k" })).toMatchObject({
        value: "default",
        errorCode: "FLAG_NOT_FOUND",
      });
      expect(await client.getStringDetails("checkout", "default", {})).toMatchObject({ value: "default", errorCode: "TARGETING_KEY_MISSING" });
    });
  });
});
