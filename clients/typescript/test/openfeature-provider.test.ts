import { OpenFeature, ProviderEvents, type Client, type EventDetails } from "@openfeature/server-sdk";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestServer, type TestServer } from "../../../test/helpers/servers.js";
import { createLocalRollgateClient, createRollgateClient, type RollgateClient } from "../src/index.js";
import { createRollgateProvider } from "../src/openfeature-provider.js";
import { Variant } from "../src/gen/rollgate/v1/rollout_pb.js";
import { startTcpProxy, type TcpProxy } from "./tcp-proxy.js";

const quiet = { warn: () => undefined };
const REASONS: Record<string, string> = { weight: "SPLIT", override: "TARGETING_MATCH", stage: "STATIC", rolled_back: "DISABLED", halted: "DISABLED" };

describe("the in-process OpenFeature provider through @openfeature/server-sdk", () => {
  let server: TestServer;
  let admin: RollgateClient;
  let proxy: TcpProxy;
  let client: Client;
  let local: ReturnType<typeof createLocalRollgateClient>;
  const changes: string[][] = [];
  const events: string[] = [];

  beforeAll(async () => {
    server = await startTestServer();
    admin = createRollgateClient({ baseUrl: server.url });
    await admin.rollouts.createRollout({
      rollout: { name: "checkout", stableVersion: "v1", canaryVersion: "v2", features: { "new-ui": true, legacy: false } },
      reason: "test",
    });
    await admin.rollouts.setWeight({ name: "checkout", weightBp: 4000 });
    await admin.rollouts.setOverride({ name: "checkout", key: "vip", variant: Variant.CANARY });
    await admin.rollouts.createRollout({ rollout: { name: "search", stableVersion: "s1", canaryVersion: "s2" }, reason: "test" });
    proxy = await startTcpProxy("127.0.0.1", server.port);
    local = createLocalRollgateClient({
      baseUrl: proxy.url,
      outcomes: { flushIntervalMs: 50 },
      local: { logger: quiet, reconnect: { initialBackoffMs: 50, maxBackoffMs: 200 } },
    });
    const provider = createRollgateProvider(local);
    provider.events!.addHandler(ProviderEvents.ConfigurationChanged, (d?: EventDetails) => changes.push([...((d as { flagsChanged?: string[] } | undefined)?.flagsChanged ?? [])].sort()));
    for (const e of [ProviderEvents.Ready, ProviderEvents.Stale]) provider.events!.addHandler(e, () => events.push(e));
    await OpenFeature.setProviderAndWait("rollgate", provider);
    client = OpenFeature.getClient("rollgate");
  });
  afterAll(async () => {
    await OpenFeature.close();
    await proxy?.close();
    await admin?.close();
    await server?.stop();
  });

  it("is READY after the first state and agrees with Route for 5,000 keys", async () => {
    expect(client.providerStatus).toBe("READY");
    const keys = Array.from({ length: 5000 }, (_, i) => (i === 3 ? "vip" : `user-${i}`));
    let canary = 0;
    for (let i = 0; i < keys.length; i += 1000) {
      const batch = keys.slice(i, i + 1000);
      const want = await admin.routeBatch("checkout", batch);
      for (let j = 0; j < batch.length; j++) {
        const w = want[j]!;
        const got = await client.getStringDetails("checkout", "none", { targetingKey: batch[j]! });
        expect(got).toMatchObject({
          value: w.version,
          variant: w.variant,
          reason: REASONS[w.reason],
          flagMetadata: { bucket: w.bucket, weightBp: 4000, stage: "canary", rolloutVersion: Number(w.rolloutVersion) },
        });
        expect(got.errorCode).toBeUndefined();
        const feature = await client.getBooleanValue("checkout/new-ui", false, { targetingKey: batch[j]! });
        expect(feature).toBe(w.features.includes("new-ui"));
        if (w.variant === "canary") canary++;
      }
    }
    expect(canary).toBeGreaterThan(1000);
    expect(canary).toBeLessThan(4000);
  }, 300_000);

  it("answers OpenFeature's errors with the default", async () => {
    expect(await client.getStringDetails("nope", "d", { targetingKey: "k" })).toMatchObject({ value: "d", errorCode: "FLAG_NOT_FOUND" });
    expect(await client.getBooleanDetails("checkout/nope", true, { targetingKey: "k" })).toMatchObject({ value: true, errorCode: "FLAG_NOT_FOUND" });
    expect(await client.getStringDetails("checkout", "d", {})).toMatchObject({ value: "d", errorCode: "TARGETING_KEY_MISSING" });
    expect(await client.getStringDetails("checkout", "d", { targetingKey: "x".repeat(1025) })).toMatchObject({ value: "d", errorCode: "INVALID_CONTEXT" });
    expect(await client.getBooleanDetails("checkout", false, { targetingKey: "k" })).toMatchObject({ value: false, errorCode: "TYPE_MISMATCH" });
    expect(await client.getNumberDetails("checkout", 1, { targetingKey: "k" })).toMatchObject({ value: 1, errorCode: "TYPE_MISMATCH" });
  });

  it("emits CONFIGURATION_CHANGED with the changed flag keys; a rollback reads as DISABLED", async () => {
    changes.length = 0;
    await admin.rollouts.rollback({ name: "checkout", reason: "test" });
    await expect.poll(() => changes.length, { timeout: 10_000 }).toBeGreaterThan(0);
    expect(changes[0]).toEqual(["checkout", "checkout/legacy", "checkout/new-ui"]);
    expect(await client.getStringDetails("checkout", "none", { targetingKey: "vip" })).toMatchObject({
      value: "v1",
      variant: "stable",
      reason: "DISABLED",
      flagMetadata: { stage: "rolled_back" },
    });
    expect(await client.getBooleanValue("checkout/new-ui", true, { targetingKey: "vip" })).toBe(false);
  });

  it("track records an outcome for the routed variant, which moves the rollout's health", async () => {
    const before = await admin.health("search");
    const keys = Array.from({ length: 40 }, (_, i) => `t-${i}`);
    let canary = 0;
    for (const targetingKey of keys) {
      if ((await client.getStringDetails("search", "", { targetingKey })).variant === "canary") canary++;
      client.track("search", { targetingKey }, { success: true, latencyMs: 12 });
    }
    const want = { stable: before.samples!.stable + BigInt(keys.length - canary), canary: before.samples!.canary + BigInt(canary) };
    await expect.poll(async () => (await admin.health("search")).samples, { timeout: 15_000 }).toMatchObject(want);
  });

  it("track's latency is the latencyMs attribute when given, else value: the order of every rollgate provider", () => {
    const recorded: number[] = [];
    const real = local.recordOutcome.bind(local);
    local.recordOutcome = (rollout, outcome) => {
      recorded.push(outcome.latencyMs ?? Number.NaN);
      return real(rollout, outcome);
    };
    try {
      client.track("search", { targetingKey: "k-1" }, { value: 99, latencyMs: 12.5 });
      client.track("search", { targetingKey: "k-1" }, { value: 7 });
      client.track("search", { targetingKey: "k-1" }, { latencyMs: 3 });
      expect(recorded).toEqual([12.5, 7, 3]);
    } finally {
      local.recordOutcome = real;
    }
  });

    it("emits STALE when the stream drops and READY when it answers again", async () => {
    events.length = 0;
    proxy.cut();
    await expect.poll(() => events, { timeout: 10_000 }).toEqual([ProviderEvents.Stale, ProviderEvents.Ready]);
    // Routing kept answering all along, from the last state.
    expect(await client.getStringValue("search", "", { targetingKey: "k" })).toMatch(/^s[12]$/);
  });
});
