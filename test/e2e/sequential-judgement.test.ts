import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DecisionService } from "../../gen/rollgate/v1/decision_service_pb.js";
import { EventType } from "../../gen/rollgate/v1/event_pb.js";
import { Stage, Variant } from "../../gen/rollgate/v1/rollout_pb.js";
import { RolloutService } from "../../gen/rollgate/v1/rollout_service_pb.js";
import { manualClock } from "../../src/domain/clock.js";
import { mulberry32 } from "../domain/fixtures.js";
import { startTestServer, type TestServer } from "../helpers/servers.js";
import { runCli } from "../cli/run-cli.js";

/**
 * Sequential judgement through a real server on a real port (issue 18): many rollouts at once,
 * a 2 s interval, one batch of 100 canary + 900 stable outcomes per rollout per interval, sent
 * over gRPC. The clock is the server's manual clock: the test sends a batch, moves the clock one
 * interval and runs the evaluator round, so it counts batches, never seconds.
 */

const INTERVAL_MS = 2_000;
const BAD = 100;
const HEALTHY = 100;
const BATCHES = 20;
const STABLE_RATE = 0.01;

describe("sequential error-rate gate end to end (2 s interval, manual clock)", () => {
  const clock = manualClock(Date.UTC(2026, 0, 1) + 500);
  let server: TestServer;
  beforeAll(async () => {
    // The evaluator's own timer never fires: the test runs each round after moving the clock.
    server = await startTestServer({}, { clock, evaluationTickMs: 3_600_000 });
  });
  afterAll(async () => {
    await server.stop();
  });

  it("rolls back ≥ 80% of 3× canaries within 6 batches and almost no healthy one in 20", { timeout: 300_000 }, async () => {
    const transport = createGrpcTransport({ baseUrl: server.url });
    const rollouts = createClient(RolloutService, transport);
    const decisions = createClient(DecisionService, transport);
    const names = [...Array.from({ length: BAD }, (_, i) => `bad-${i}`), ...Array.from({ length: HEALTHY }, (_, i) => `ok-${i}`)];
    for (const name of names) {
      await rollouts.createRollout({
        rollout: {
          name,
          stableVersion: "v1",
          canaryVersion: "v2",
          gates: [{ name: "errors", minSamples: 100n, kind: { case: "errorRate", value: { maxRatio: 1, confidence: 0.99 } } }],
          analysis: { interval: { seconds: 2n }, window: { seconds: 20n } },
        },
        reason: "sequential e2e",
      });
    }
    const rnd = new Map(names.map((n, i) => [n, mulberry32(18_000 + i)]));
    const rolledBackAt = new Map<string, number>();
    const batch = (name: string) => {
      const r = rnd.get(name)!;
      const canaryRate = name.startsWith("bad") ? 3 * STABLE_RATE : STABLE_RATE;
      const outcomes = [];
      for (let i = 0; i < 100; i++) outcomes.push({ variant: Variant.CANARY, success: r() >= canaryRate, latencyMs: 20 });
      for (let i = 0; i < 900; i++) outcomes.push({ variant: Variant.STABLE, success: r() >= STABLE_RATE, latencyMs: 20 });
      return decisions.recordOutcome({ rollout: name, outcomes });
    };
    for (let b = 1; b <= BATCHES; b++) {
      const live = names.filter((n) => !rolledBackAt.has(n));
      for (let i = 0; i < live.length; i += 20) await Promise.all(live.slice(i, i + 20).map(batch));
      clock.advance(INTERVAL_MS);
      await server.engine.tick();
      for (const r of (await rollouts.listRollouts({})).rollouts) {
        if (r.stage === Stage.ROLLED_BACK && !rolledBackAt.has(r.name)) rolledBackAt.set(r.name, b);
      }
    }
    const bad = names.filter((n) => n.startsWith("bad")).map((n) => rolledBackAt.get(n) ?? 0);
    const healthyRolledBack = names.filter((n) => n.startsWith("ok") && rolledBackAt.has(n)).length;
    const within = (k: number) => bad.filter((x) => x > 0 && x <= k).length / BAD;
    const caught = bad.filter((x) => x > 0);
    console.log(
      `sequential e2e: ${BAD} 3× canaries: rolled back within 3 batches ${within(3) * 100}%, within 6 ${within(6) * 100}%, within ${BATCHES} ${within(BATCHES) * 100}%, mean ${(caught.reduce((a, x) => a + x, 0) / caught.length).toFixed(2)} batches; ${healthyRolledBack} of ${HEALTHY} healthy canaries rolled back in ${BATCHES} batches`,
    );
    expect(within(6)).toBeGreaterThanOrEqual(0.8);
    expect(healthyRolledBack).toBeLessThanOrEqual(3);

    // The rollback's audit event says which look crossed and with what numbers.
    const first = names.find((n) => rolledBackAt.has(n) && n.startsWith("bad"))!;
    const ev = (await rollouts.listEvents({ name: first })).events.find((e) => e.type === EventType.ROLLED_BACK)!;
    expect(ev.reason).toMatch(/^errors: canary error rate [\d.]+ > stable [\d.]+ × 1 = [\d.]+ over \d+ canary outcomes since the canary started, worse with 99% confidence: sequential test look (\d+) of 20: canary errors (\d+) >= boundary (\d+)/);
    const [, lookNo, errors, boundary] = /look (\d+) of 20: canary errors (\d+) >= boundary (\d+)/.exec(ev.reason)!;
    expect(Number(lookNo)).toBe(rolledBackAt.get(first));
    expect(Number(errors)).toBeGreaterThanOrEqual(Number(boundary));
    // The same numbers as structured data in the event's snapshot: the look, the statistic against
    // the boundary at that look, its p-value, the budget and how much of it is spent, the rate variation used.
    const snap = (JSON.parse(ev.snapshot) as { gates: { name: string; verdict: string; sequential: Record<string, unknown> }[] }).gates.find((x) => x.name === "errors")!;
    expect(snap.verdict).toBe("fail");
    expect(snap.sequential).toMatchObject({ bound: "max_ratio", look: Number(lookNo), planned_looks: 20, crossed: true, statistic: Number(errors), boundary: Number(boundary), alpha: 0.01 });
    const q = snap.sequential as { p_value: number; alpha_spent: number; spent_share: number; rate_variation: number; expected: number };
    // Crossing means the look's p-value is within what the look may spend: at most the budget spent by then.
    expect(q.p_value).toBeGreaterThan(0);
    expect(q.p_value).toBeLessThanOrEqual(q.alpha_spent);
    expect(q.alpha_spent).toBeLessThanOrEqual(0.01);
    expect(q.spent_share).toBeCloseTo(q.alpha_spent / 0.01, 5);
    expect(q.rate_variation).toBeGreaterThanOrEqual(0);
    expect(q.expected).toBeLessThan(Number(errors));
    // `rollgate events` shows it under the rollback's line.
    const cli = await runCli(["--server", server.url, "events", first]);
    expect(cli.code).toBe(0);
    const lines = cli.stdout.trimEnd().split("\n");
    const at = lines.findIndex((l) => /\srolled_back\s/.test(l));
    expect(lines[at + 1]).toMatch(new RegExp(`^\\s+errors: sequential look ${lookNo} of 20 crossed: canary errors ${errors} >= boundary ${boundary}, p [\\d.e-]+, alpha spent [\\d.e-]+ of 0\\.01, (no rate variation|rate variation [\\d.e-]+)$`));

    // Health shows a live gate's evidence: statistic, the boundary at this look, the budget spent.
    const live = names.find((n) => n.startsWith("ok") && !rolledBackAt.has(n))!;
    const g = (await decisions.health({ rollout: live })).health!.gates[0]!;
    expect(g.sequential).toMatchObject({ bound: "max_ratio", plannedLooks: 20, crossed: false });
    expect(g.sequential!.alpha).toBeCloseTo(0.01, 12);
    expect(g.sequential!.look).toBeGreaterThanOrEqual(15);
    expect(g.sequential!.boundary).toBeGreaterThan(g.sequential!.statistic);
    expect(g.sequential!.spentShare).toBeGreaterThan(0.5);
    expect(g.sequential!.spentShare).toBeLessThanOrEqual(1);
    // The p-value of the last look is above what that look could spend (else it would have crossed), and the rate variation used is shown (steady traffic: ~0).
    expect(g.sequential!.pValue).toBeGreaterThan(0);
    expect(g.sequential!.pValue).toBeLessThanOrEqual(1);
    expect(g.sequential!.rateVariation).toBeGreaterThanOrEqual(0);
    expect(g.sequential!.rateVariation).toBeLessThan(0.2);
  });
});
