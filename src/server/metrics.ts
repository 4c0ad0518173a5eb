import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";
import type { RolloutHealth } from "../domain/health.js";
import type { Stage, Variant } from "../domain/rollout.js";
import type { EngineObserver } from "../service/engine.js";

/** Every stage, so that the rollouts gauge reports zeros too. */
const STAGES: readonly Stage[] = ["canary", "staging", "production", "rolled_back", "halted"];

/**
 * Returns rollgate's Prometheus metrics on a registry of its own (several servers can share a
 * process in tests). `stages` is read at scrape time for the rollouts-by-stage gauge.
 */
export function createMetrics(stages: () => Iterable<Stage>) {
  const registry = new Registry();
  // Event-loop delay sampled every 5 ms (prom-client's default is 10): its p99 gauge resets at
  // each scrape, so it is the p99 since the last one.
  collectDefaultMetrics({ register: registry, eventLoopMonitoringPrecision: 5 });
  // Open streams and HTTP/2 sessions, read at scrape time from what the server hands to `live`.
  let live: LiveCounts | undefined;
  new Gauge({
    name: "rollgate_stream_subscribers",
    help: "Open subscriptions by feed: health (WatchHealth), events (WatchEvents), routes (WatchRoutes).",
    labelNames: ["feed"] as const,
    registers: [registry],
    collect() {
      if (live === undefined) return;
      for (const [feed, n] of Object.entries(live.subscribers())) this.set({ feed }, n);
    },
  });
  new Gauge({
    name: "rollgate_http2_sessions",
    help: "Open HTTP/2 connections.",
    registers: [registry],
    collect() {
      if (live !== undefined) this.set(live.sessions());
    },
  });

  // The per-call counters are plain numbers, copied into prom-client when it is scraped
  // (collect): a prom-client label child hashes its labels on every inc, 3–5% of a Route call.
  // A scrape resets each counter and sets every series from the totals, so the values read are
  // exactly the totals; a removed rollout's series go with its totals.
  const rpcTotals = new Map<string, Map<string, number>>();
  const fastTotals = new Map<string, number>();
  const connectFastTotals = new Map<string, number>();
  const routeTotals = new Map<string, { stable: number; canary: number }>();

  new Counter({
    name: "rollgate_rpc_requests_total",
    help: "RPCs handled, by method and status code.",
    labelNames: ["method", "code"] as const,
    registers: [registry],
    collect() {
      this.reset();
      for (const [method, byCode] of rpcTotals) for (const [code, n] of byCode) this.inc({ method, code }, n);
    },
  });
  // The same for the duration histogram: per method, the count in each bucket (the first bound
  // at or above the value, as prom-client's observe finds it; above the last only in `count`),
  // the sum and the count. prom-client has no API to set a histogram's state, so collect writes
  // its series in the shape observe() leaves them (prom-client's own code formats them; a test
  // holds the text equal to a real Histogram's fed the same values).
  const RPC_BUCKETS = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5];
  const durations = new Map<string, { readonly counts: number[]; sum: number; count: number }>();
  new Histogram({
    name: "rollgate_rpc_duration_seconds",
    help: "RPC latency in seconds, by method (streams: until the stream ends).",
    labelNames: ["method"] as const,
    buckets: RPC_BUCKETS,
    registers: [registry],
    collect() {
      const series: Record<string, { labels: { method: string }; bucketValues: Record<number, number>; sum: number; count: number }> = {};
      for (const [method, d] of durations) {
        const bucketValues: Record<number, number> = {};
        RPC_BUCKETS.forEach((b, i) => (bucketValues[b] = d.counts[i]!));
        series[`method:${method}`] = { labels: { method }, bucketValues, sum: d.sum, count: d.count };
      }
      (this as unknown as { hashMap: typeof series }).hashMap = series;
    },
  });
  new Counter({
    name: "rollgate_grpc_fast_path_requests_total",
    help: "gRPC calls served by the raw HTTP/2 fast path instead of connect-node, by method.",
    labelNames: ["method"] as const,
    registers: [registry],
    collect() {
      this.reset();
      for (const [method, n] of fastTotals) this.inc({ method }, n);
    },
  });
  new Counter({
    name: "rollgate_connect_fast_path_requests_total",
    help: "Connect-protocol calls served by the fast path instead of connect-node, by method.",
    labelNames: ["method"] as const,
    registers: [registry],
    collect() {
      this.reset();
      for (const [method, n] of connectFastTotals) this.inc({ method }, n);
    },
  });
  new Counter({
    name: "rollgate_routes_total",
    help: "Keys routed, by rollout and variant.",
    labelNames: ["rollout", "variant"] as const,
    registers: [registry],
    collect() {
      this.reset();
      for (const [rollout, t] of routeTotals) {
        this.inc({ rollout, variant: "stable" }, t.stable);
        this.inc({ rollout, variant: "canary" }, t.canary);
      }
    },
  });
  new Gauge({
    name: "rollgate_rollouts",
    help: "Rollouts by stage.",
    labelNames: ["stage"] as const,
    registers: [registry],
    collect() {
      const counts = new Map<Stage, number>(STAGES.map((s) => [s, 0]));
      for (const s of stages()) counts.set(s, (counts.get(s) ?? 0) + 1);
      for (const [stage, n] of counts) this.set({ stage }, n);
    },
  });

  const outcomes = new Counter({
    name: "rollgate_outcomes_total",
    help: "Outcomes accepted into the sliding windows, by rollout and variant.",
    labelNames: ["rollout", "variant"] as const,
    registers: [registry],
  });
  const ignored = new Counter({
    name: "rollgate_outcomes_ignored_total",
    help: "Outcomes ignored because their time fell outside the window, by rollout and variant.",
    labelNames: ["rollout", "variant"] as const,
    registers: [registry],
  });
  const score = new Gauge({
    name: "rollgate_health_score",
    help: "Health score 0..1 of a rollout at its last evaluation or change.",
    labelNames: ["rollout"] as const,
    registers: [registry],
  });
  const verdicts = new Gauge({
    name: "rollgate_gate_verdict",
    help: "1 for each gate's current verdict (pass, warn, fail, inconclusive), 0 for the others.",
    labelNames: ["rollout", "gate", "verdict"] as const,
    registers: [registry],
  });
  const observed = new Gauge({
    name: "rollgate_gate_observed",
    help: "The value each gate last measured on the canary.",
    labelNames: ["rollout", "gate"] as const,
    registers: [registry],
  });
  const decisions = new Counter({
    name: "rollgate_decisions_total",
    help: "Automatic decisions taken by the evaluator, by rollout, decision and whether it was a dry run.",
    labelNames: ["rollout", "decision", "dry_run"] as const,
    registers: [registry],
  });
  const rounds = new Histogram({
    name: "rollgate_evaluation_round_seconds",
    help: "Evaluator rounds that evaluated at least one rollout: seconds from the round's start to its last rollout's health published.",
    buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    registers: [registry],
  });
  const VERDICTS = ["pass", "warn", "fail", "inconclusive"] as const;
  // Label children kept per rollout and gate, with the last value set: prom-client hashes the
  // labels and allocates on every set, and an idle rollout's evaluations change nothing.
  const healthChildren = new Map<
    string,
    {
      score: Gauge.Internal<"rollout">;
      scoreValue: number | undefined;
      gates: Map<string, { verdict: string | undefined; observed: Gauge.Internal<"rollout" | "gate">; observedValue: number | undefined }>;
    }
  >();


  return {
    registry,
    /** Gives the gauges of open streams and sessions their sources (once the server has them). */
    observeLive(counts: LiveCounts): void {
      live = counts;
    },
    /** Counts keys routed to a variant. */
    routed(rollout: string, variant: Variant, count: number): void {
      let t = routeTotals.get(rollout);
      if (t === undefined) routeTotals.set(rollout, (t = { stable: 0, canary: 0 }));
      t[variant] += count;
    },
    /** Records one finished RPC. */
    rpcDone(method: string, code: string, seconds: number): void {
      let byCode = rpcTotals.get(method);
      if (byCode === undefined) rpcTotals.set(method, (byCode = new Map()));
      byCode.set(code, (byCode.get(code) ?? 0) + 1);
      let d = durations.get(method);
      if (d === undefined) durations.set(method, (d = { counts: RPC_BUCKETS.map(() => 0), sum: 0, count: 0 }));
      for (let i = 0; i < RPC_BUCKETS.length; i++) {
        if (seconds <= RPC_BUCKETS[i]!) {
          d.counts[i]! += 1;
          break;
        }
      }
      d.sum += seconds;
      d.count += 1;
    },
    /** Counts one call served by the gRPC fast path. */
    fastPathServed(method: string): void {
      fastTotals.set(method, (fastTotals.get(method) ?? 0) + 1);
    },
    /** Counts one call served by the Connect fast path. */
    connectFastPathServed(method: string): void {
      connectFastTotals.set(method, (connectFastTotals.get(method) ?? 0) + 1);
    },
    /** The engine's hooks: outcomes, health, decisions, deletions. */
    engine: {
      outcomes(rollout, variant, accepted, dropped) {
        if (accepted > 0) outcomes.labels(rollout, variant).inc(accepted);
        if (dropped > 0) ignored.labels(rollout, variant).inc(dropped);
      },
      health(h: RolloutHealth) {
        let c = healthChildren.get(h.rollout);
        if (c === undefined) {
          c = { score: score.labels(h.rollout), scoreValue: undefined, gates: new Map() };
          healthChildren.set(h.rollout, c);
        }
        if (!Object.is(c.scoreValue, h.score)) {
          c.score.set(h.score);
          c.scoreValue = h.score;
        }
        for (const g of h.gates) {
          let gc = c.gates.get(g.name);
          if (gc === undefined) {
            gc = { verdict: undefined, observed: observed.labels(h.rollout, g.name), observedValue: undefined };
            c.gates.set(g.name, gc);
          }
          // The four verdict series change only when the verdict does.
          if (gc.verdict !== g.verdict) {
            for (const v of VERDICTS) verdicts.labels(h.rollout, g.name, v).set(g.verdict === v ? 1 : 0);
            gc.verdict = g.verdict;
          }
          if (!Object.is(gc.observedValue, g.observed)) {
            gc.observed.set(g.observed);
            gc.observedValue = g.observed;
          }
        }
        // Gates removed by an update stop being reported (gate names are unique in a rollout).
        if (c.gates.size !== h.gates.length) {
          const names = new Set(h.gates.map((g) => g.name));
          for (const old of [...c.gates.keys()]) {
            if (names.has(old)) continue;
            for (const v of VERDICTS) verdicts.remove(h.rollout, old, v);
            observed.remove(h.rollout, old);
            c.gates.delete(old);
          }
        }
      },
      decided(rollout, decision, dryRun) {
        decisions.labels(rollout, decision, String(dryRun)).inc();
      },
      round(seconds) {
        rounds.observe(seconds);
      },
      deleted(rollout) {
        routeTotals.delete(rollout);
        for (const v of ["stable", "canary"]) {
          outcomes.remove(rollout, v);
          ignored.remove(rollout, v);
        }
        score.remove(rollout);
        for (const g of healthChildren.get(rollout)?.gates.keys() ?? []) {
          for (const v of VERDICTS) verdicts.remove(rollout, g, v);
          observed.remove(rollout, g);
        }
        healthChildren.delete(rollout);
      },
    } satisfies EngineObserver,
  };
}

/** What the open-streams gauges read at scrape time. */
export interface LiveCounts {
  subscribers(): Record<string, number>;
  sessions(): number;
}

/** The metrics type. */
export type Metrics = ReturnType<typeof createMetrics>;
