import { join } from "node:path";
import * as grpc from "@grpc/grpc-js";
import Database from "better-sqlite3";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { DecisionService, type HealthUpdate } from "../../gen/rollgate/v1/decision_service_pb.js";
import { Stage } from "../../gen/rollgate/v1/rollout_pb.js";
import { connectJson, curl } from "../helpers/curl.js";
import { grpcJsClient } from "../helpers/grpc-js.js";
import { grpcurl } from "../helpers/grpcurl.js";
import { spawnServer, startTestServer, tempDir, type ServerProcess, type TestServer } from "../helpers/servers.js";

const canary = (n: number, errorRate: number) =>
  Array.from({ length: n }, (_, i) => ({ variant: "VARIANT_CANARY", success: i >= n * errorRate, latencyMs: 20 + (i % 10) }));
const stable = (n: number) => Array.from({ length: n }, (_, i) => ({ variant: "VARIANT_STABLE", success: true, latencyMs: 18 + (i % 10) }));
const create = (name: string, extra: object = {}) => ({
  rollout: {
    name,
    stableVersion: "v1",
    canaryVersion: "v2",
    gates: [{ name: "errors", minSamples: "50", errorRate: { max: 0.05 } }],
    analysis: { interval: "1s", window: "30s", consecutiveBreaches: 2 },
    ...extra,
  },
});

describe("judgement end to end (1 s interval)", () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer();
  });
  afterAll(async () => {
    await server.stop();
  });

  it("WatchHealth streams a bad canary being rolled back as it happens (grpc-js)", async () => {
    await connectJson(server.url, "rollgate.v1.RolloutService/CreateRollout", create("live"));
    const client = grpcJsClient(DecisionService, server.address);
    const call = (client.watchHealth as (req: unknown) => grpc.ClientReadableStream<HealthUpdate>)({ rollout: "live" });
    const updates: HealthUpdate[] = [];
    const done = new Promise<void>((resolve, reject) => {
      call.on("data", (u: HealthUpdate) => {
        updates.push(u);
        if (updates.length === 1) {
          // The current health first; then the bad canary starts reporting.
          void connectJson(server.url, "rollgate.v1.DecisionService/RecordOutcome", { rollout: "live", outcomes: [...canary(200, 0.3), ...stable(200)] });
        }
        if (u.health?.stage === Stage.ROLLED_BACK) resolve();
      });
      call.on("error", (e: grpc.ServiceError) => (e.code === grpc.status.CANCELLED ? undefined : reject(e)));
    });
    await done;
    call.cancel();
    client.close();
    expect(updates[0]!.seq).toBe(1n);
    expect(updates.map((u) => u.seq)).toEqual(updates.map((_, i) => BigInt(i + 1)));
    expect(updates[0]!.health!.stage).toBe(Stage.CANARY);
    const failing = updates.filter((u) => u.health!.gates[0]?.verdict === 3 /* FAIL */);
    expect(failing.length).toBeGreaterThanOrEqual(1);
    const last = updates.at(-1)!.health!;
    expect(last.stage).toBe(Stage.ROLLED_BACK);
    expect(last.message).toMatch(/^rollback: errors: canary error rate 0\.3 > max 0\.05 for 2 consecutive evaluations/);
    const route = await connectJson(server.url, "rollgate.v1.DecisionService/Route", { rollout: "live", key: "u" });
    expect(route.json).toMatchObject({ variant: "VARIANT_STABLE", reason: "ROUTE_REASON_ROLLED_BACK" });

    // Prometheus sees the same: the decision, the score, and each gate's verdict (one series of four at 1).
    const m = (await curl([`${server.url}/metrics`])).body;
    expect(m).toContain('rollgate_decisions_total{rollout="live",decision="rollback",dry_run="false"} 1');
    expect(m).toMatch(/^rollgate_health_score\{rollout="live"\} [\d.]+$/m);
    const verdicts = [...m.matchAll(/^rollgate_gate_verdict\{rollout="live",gate="errors",verdict="(\w+)"\} (\d)$/gm)];
    expect(verdicts.map((v) => v[1]).sort()).toEqual(["fail", "inconclusive", "pass", "warn"]);
    expect(verdicts.filter((v) => v[2] === "1")).toHaveLength(1);
    // The rounds that judged it (two failing evaluations at least) are timed.
    expect(Number(/^rollgate_evaluation_round_seconds_count (\d+)$/m.exec(m)?.[1])).toBeGreaterThanOrEqual(2);
  });

  it("grpcurl: RecordOutcome, Health and a WatchHealth update", async () => {
    await connectJson(server.url, "rollgate.v1.RolloutService/CreateRollout", create("cli"));
    const rec = await grpcurl(["-plaintext", "-d", JSON.stringify({ rollout: "cli", outcomes: [...canary(60, 0), ...stable(60)] }), server.address, "rollgate.v1.DecisionService/RecordOutcome"]);
    expect(JSON.parse(rec.stdout)).toEqual({ accepted: 120 });
    const h = await grpcurl(["-plaintext", "-d", '{"rollout":"cli"}', server.address, "rollgate.v1.DecisionService/Health"]);
    const health = JSON.parse(h.stdout) as { health: { samples: unknown; gates: { verdict: string }[]; recommendation: string } };
    expect(health.health.samples).toEqual({ stable: "60", canary: "60" });
    expect(health.health.gates[0]!.verdict).toBe("VERDICT_PASS");
    expect(health.health.recommendation).toBe("RECOMMENDATION_HEALTHY");
    // The watch of one rollout ends after its deletion: delete it once grpcurl is subscribed,
    // rather than cutting the stream after a guessed time.
    await expect.poll(() => server.engine.subscribers().health, { timeout: 20_000 }).toBe(0);
    const watching = grpcurl(["-plaintext", "-d", '{"rollout":"cli"}', server.address, "rollgate.v1.DecisionService/WatchHealth"]);
    await expect.poll(() => server.engine.subscribers().health, { timeout: 20_000 }).toBe(1);
    await connectJson(server.url, "rollgate.v1.RolloutService/DeleteRollout", { name: "cli", reason: "watched" });
    const w = await watching;
    expect(w.code).toBe(0);
    const seqs = [...w.stdout.matchAll(/"seq": "(\d+)"/g)].map((m) => Number(m[1]));
    expect(seqs.slice(0, 2)).toEqual([1, 2]);
  });

  it("curl: a bad batch is refused whole with the field path, and nothing is recorded", async () => {
    await connectJson(server.url, "rollgate.v1.RolloutService/CreateRollout", create("strict"));
    const batch = [...canary(5, 0), { variant: "VARIANT_CANARY", success: true, latencyMs: -3 }];
    const r = await connectJson(server.url, "rollgate.v1.DecisionService/RecordOutcome", { rollout: "strict", outcomes: batch });
    expect(r.json).toMatchObject({ code: "invalid_argument", message: "outcomes[5].latency_ms: must be finite and >= 0" });
    const h = await connectJson(server.url, "rollgate.v1.DecisionService/Health", { rollout: "strict" });
    expect((h.json as { health: { samples?: unknown } }).health.samples ?? {}).toEqual({});
  });

  it("Promote is refused while a gate lacks samples, with the gates in the message", async () => {
    await connectJson(server.url, "rollgate.v1.RolloutService/CreateRollout", create("early"));
    const r = await connectJson(server.url, "rollgate.v1.RolloutService/Promote", { name: "early", target: "PROMOTE_TARGET_NEXT_STEP" });
    expect(r.json).toMatchObject({ code: "failed_precondition" });
    expect((r.json as { message: string }).message).toContain("errors INCONCLUSIVE");
  });
});

/**
 * Resolves once a flush has written a rollout's window buckets, both variants, to the database
 * file: the server's own durable state, read as the next server will read it.
 */
async function flushedToDisk(dbPath: string, rollout: string): Promise<void> {
  const db = new Database(dbPath, { readonly: true, fileMustExist: true });
  try {
    const variants = db.prepare<[string], { n: number }>("SELECT COUNT(DISTINCT variant) AS n FROM window_buckets WHERE rollout = ?");
    await expect.poll(() => variants.get(rollout)?.n, { timeout: 30_000, interval: 50 }).toBe(2);
  } finally {
    db.close();
  }
}

describe("a restart keeps the window", () => {
  const tmp = tempDir();
  const running: ServerProcess[] = [];
  afterEach(() => {
    for (const p of running.splice(0)) p.child.kill("SIGKILL");
  });
  afterAll(() => tmp.cleanup());

  it("even after kill -9, minus at most the last second", async () => {
    const db = join(tmp.dir, "rollgate.db");
    const first = await spawnServer(["--listen", "127.0.0.1:0", "--db", db]);
    running.push(first);
    const url = `http://127.0.0.1:${first.port}`;
    await connectJson(url, "rollgate.v1.RolloutService/CreateRollout", create("kept", { analysis: { interval: "10s", window: "300s" } }));
    await connectJson(url, "rollgate.v1.DecisionService/RecordOutcome", { rollout: "kept", outcomes: [...canary(300, 0.1), ...stable(500)] });
    // One flush writes every dirty bucket in one transaction; wait for it rather than for a second.
    await flushedToDisk(db, "kept");
    first.child.kill("SIGKILL");
    await first.exited;
    const second = await spawnServer(["--listen", "127.0.0.1:0", "--db", db]);
    running.push(second);
    const h = await connectJson(`http://127.0.0.1:${second.port}`, "rollgate.v1.DecisionService/Health", { rollout: "kept" });
    const health = (h.json as { health: { samples: unknown; gates: { observed: number }[] } }).health;
    expect(health.samples).toEqual({ stable: "500", canary: "300" });
    expect(health.gates[0]!.observed).toBeCloseTo(0.1, 6);
  });
});
