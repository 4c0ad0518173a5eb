import { Histogram, Registry } from "prom-client";
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

describe("per-call counters (plain totals copied into prom-client at scrape time)", () => {
  it("read exactly the totals, both variants of a routed rollout included, and forget a deleted rollout", async () => {
    const m = createMetrics(() => []);
    m.routed("checkout", "canary", 1);
    m.routed("checkout", "canary", 1000);
    m.routed("search", "stable", 3);
    expect(await series(m, "rollgate_routes_total", 'rollout="checkout",variant="canary"')).toBe(1001);
    // The other variant of a routed rollout is a zero series, as prom-client's label child made it.
    expect(await series(m, "rollgate_routes_total", 'rollout="checkout",variant="stable"')).toBe(0);
    expect(await series(m, "rollgate_routes_total", 'rollout="search",variant="stable"')).toBe(3);
    // A second scrape reads the same totals (not twice them), and later calls add to them.
    expect(await series(m, "rollgate_routes_total", 'rollout="checkout",variant="canary"')).toBe(1001);
    m.routed("checkout", "stable", 2);
    expect(await series(m, "rollgate_routes_total", 'rollout="checkout",variant="stable"')).toBe(2);
    m.engine.deleted?.("checkout");
    expect(await series(m, "rollgate_routes_total", 'rollout="checkout",variant="canary"')).toBeUndefined();
    expect(await series(m, "rollgate_routes_total", 'rollout="search",variant="stable"')).toBe(3);
    m.routed("checkout", "stable", 1);
    expect(await series(m, "rollgate_routes_total", 'rollout="checkout",variant="stable"')).toBe(1);
    expect(await series(m, "rollgate_routes_total", 'rollout="checkout",variant="canary"')).toBe(0);
  });

  it("count RPCs by method and code, and fast-path calls by method", async () => {
    const m = createMetrics(() => []);
    for (let i = 0; i < 3; i++) m.rpcDone("rollgate.v1.DecisionService/Route", "ok", 0.0002);
    m.rpcDone("rollgate.v1.DecisionService/Route", "not_found", 0.003);
    m.fastPathServed("rollgate.v1.DecisionService/Route");
    m.connectFastPathServed("rollgate.v1.DecisionService/RouteBatch");
    m.connectFastPathServed("rollgate.v1.DecisionService/RouteBatch");
    expect(await series(m, "rollgate_rpc_requests_total", 'method="rollgate.v1.DecisionService/Route",code="ok"')).toBe(3);
    expect(await series(m, "rollgate_rpc_requests_total", 'method="rollgate.v1.DecisionService/Route",code="not_found"')).toBe(1);
    expect(await series(m, "rollgate_rpc_duration_seconds_count", 'method="rollgate.v1.DecisionService/Route"')).toBe(4);
    expect(await series(m, "rollgate_rpc_duration_seconds_bucket", 'le="0.00025",method="rollgate.v1.DecisionService/Route"')).toBe(3);
    expect(await series(m, "rollgate_grpc_fast_path_requests_total", 'method="rollgate.v1.DecisionService/Route"')).toBe(1);
    expect(await series(m, "rollgate_connect_fast_path_requests_total", 'method="rollgate.v1.DecisionService/RouteBatch"')).toBe(2);
    expect(await series(m, "rollgate_rpc_requests_total", 'method="rollgate.v1.DecisionService/Route",code="ok"')).toBe(3);
  });
});

describe("rollgate_rpc_duration_seconds (plain buckets copied into prom-client at scrape time)", () => {
  it("reads exactly what a prom-client Histogram fed the same durations writes", async () => {
    const m = createMetrics(() => []);
    const reference = new Registry();
    const real = new Histogram({
      name: "rollgate_rpc_duration_seconds",
      help: "RPC latency in seconds, by method (streams: until the stream ends).",
      labelNames: ["method"] as const,
      buckets: [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5],
      registers: [reference],
    });
    const text = async (r: Registry) => (await r.metrics()).split("\n").filter((l) => l.includes("rollgate_rpc_duration_seconds")).join("\n");
    expect(await text(m.registry)).toBe(await text(reference));
    // Every bucket, both edges of one, above the last, and several methods in first-seen order.
    const seen = [0, 0.0001, 0.00010001, 0.0003, 0.004, 0.004, 0.3, 1, 4.99, 5, 7, 120, 0.00002];
    for (const [i, s] of seen.entries()) {
      const method = ["rollgate.v1.DecisionService/Route", "rollgate.v1.RolloutService/SetWeight", "ofrep/EvaluateFlag"][i % 3]!;
      m.rpcDone(method, "ok", s);
      real.labels(method).observe(s);
      expect(await text(m.registry)).toBe(await text(reference));
    }
    expect(await text(m.registry)).toContain('rollgate_rpc_duration_seconds_count{method="rollgate.v1.DecisionService/Route"} 5');
  });
});
