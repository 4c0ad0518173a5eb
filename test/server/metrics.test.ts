import { describe, expect, it } from "vitest";
import type { GateHealth, RolloutHealth } from "../../src/domain/health.js";
import { createMetrics } from "../../src/server/metrics.js";

const gate = (name: string, verdict: GateHealth["verdict"], observed: number): GateHealth => ({
  name,
  kind: "error_rate",
  observed,
  threshold: 0.05,
  samples: 100,
  minSamples: 50,
  verdict,
  message: "",
  onBreach: "rollback",
  consecutiveBreaches: 0,
});
const health = (rollout: string, score: number, gates: GateHealth[]): RolloutHealth =>
  ({ rollout, score, gates }) as unknown as RolloutHealth;

/** The value of one series in the registry's text exposition, or undefined when absent. */
async function series(m: ReturnType<typeof createMetrics>, name: string, labels: string): Promise<number | undefined> {
  const line = (await m.registry.metrics()).split("\n").find((l) => l.startsWith(`${name}{${labels}} `));
  return line === undefined ? undefined : Number(line.slice(line.lastIndexOf(" ") + 1));
}

describe("health metrics", () => {
  it("report the score, each gate's verdict and observed value, following every change", async () => {
    const m = createMetrics(() => []);
    m.engine.health(health("checkout", 1, [gate("errors", "pass", 0.01), gate("p99", "inconclusive", 0)]));
    expect(await series(m, "rollgate_health_score", 'rollout="checkout"')).toBe(1);
    expect(await series(m, "rollgate_gate_verdict", 'rollout="checkout",gate="errors",verdict="pass"')).toBe(1);
    expect(await series(m, "rollgate_gate_verdict", 'rollout="checkout",gate="errors",verdict="fail"')).toBe(0);
    expect(await series(m, "rollgate_gate_verdict", 'rollout="checkout",gate="p99",verdict="inconclusive"')).toBe(1);
    expect(await series(m, "rollgate_gate_observed", 'rollout="checkout",gate="errors"')).toBe(0.01);

    // The same health again, then a change: the series follow the change.
    m.engine.health(health("checkout", 1, [gate("errors", "pass", 0.01), gate("p99", "inconclusive", 0)]));
    m.engine.health(health("checkout", 0.4, [gate("errors", "fail", 0.31), gate("p99", "pass", 120)]));
    expect(await series(m, "rollgate_health_score", 'rollout="checkout"')).toBe(0.4);
    expect(await series(m, "rollgate_gate_verdict", 'rollout="checkout",gate="errors",verdict="pass"')).toBe(0);
    expect(await series(m, "rollgate_gate_verdict", 'rollout="checkout",gate="errors",verdict="fail"')).toBe(1);
    expect(await series(m, "rollgate_gate_observed", 'rollout="checkout",gate="errors"')).toBe(0.31);
    expect(await series(m, "rollgate_gate_observed", 'rollout="checkout",gate="p99"')).toBe(120);

    // A gate removed by an update stops being reported.
    m.engine.health(health("checkout", 0.4, [gate("errors", "fail", 0.31)]));
    expect(await series(m, "rollgate_gate_observed", 'rollout="checkout",gate="p99"')).toBeUndefined();
    expect(await series(m, "rollgate_gate_verdict", 'rollout="checkout",gate="p99",verdict="pass"')).toBeUndefined();
  });

  it("forget a deleted rollout, and report it afresh when one of the same name comes back", async () => {
    const m = createMetrics(() => []);
    m.engine.health(health("checkout", 0.5, [gate("errors", "fail", 0.2)]));
    m.engine.deleted?.("checkout");
    expect(await series(m, "rollgate_health_score", 'rollout="checkout"')).toBeUndefined();
    expect(await series(m, "rollgate_gate_observed", 'rollout="checkout",gate="errors"')).toBeUndefined();
    m.engine.health(health("checkout", 0.5, [gate("errors", "fail", 0.2)]));
    expect(await series(m, "rollgate_health_score", 'rollout="checkout"')).toBe(0.5);
    expect(await series(m, "rollgate_gate_observed", 'rollout="checkout",gate="errors"')).toBe(0.2);
    expect(await series(m, "rollgate_gate_verdict", 'rollout="checkout",gate="errors",verdict="fail"')).toBe(1);
  });
});
