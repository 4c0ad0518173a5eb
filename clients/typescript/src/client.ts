import { createClient, type CallOptions, type Client, type Transport } from "@connectrpc/connect";
import { DecisionService, type HealthUpdate } from "./gen/rollgate/v1/decision_service_pb.js";
import type { RolloutHealth } from "./gen/rollgate/v1/health_pb.js";
import { RolloutService } from "./gen/rollgate/v1/rollout_service_pb.js";
import { watchHealthStream, type WatchHealthOptions } from "./health-watch.js";
import { createOutcomeBuffer, type OutcomeBufferOptions, type OutcomeStats } from "./outcome-buffer.js";
import { outcomeToProto, type OutcomeInput } from "./outcome-input.js";
import { routeResultOf, type RouteResult } from "./route-result.js";

/** Per-call options of the wrapper methods. */
export interface CallOpts {
  /** Deadline of this call in ms (overrides the client's `timeoutMs`). */
  readonly timeoutMs?: number;
  readonly signal?: AbortSignal;
  readonly headers?: Record<string, string>;
}

/** A rollgate client: the idiomatic wrapper, plus the generated clients underneath. */
export interface RollgateClient {
  /** Asks where a key goes: stable or canary, and which version that is. */
  route(rollout: string, key: string, opts?: CallOpts): Promise<RouteResult>;
  /** Routes up to 1,000 keys of one rollout in one call, in order. */
  routeBatch(rollout: string, keys: readonly string[], opts?: CallOpts): Promise<RouteResult[]>;
  /**
   * Buffers one outcome; never waits for the network. Batches go out every second or every 500
   * outcomes of a rollout, whichever comes first. Throws a RangeError on an invalid outcome.
   */
  recordOutcome(rollout: string, outcome: OutcomeInput): void;
  /** Sends every buffered outcome now and waits for it; rejects if a batch could not be delivered. */
  flush(): Promise<void>;
  /** Returns a rollout's current judgement (gates, score, recommendation, next action). */
  health(rollout: string, opts?: CallOpts): Promise<RolloutHealth>;
  /**
   * Streams a rollout's health ("" for every rollout): the current health first, then one update
   * per evaluation or state change; reconnects with backoff and resumes on its own.
   */
  watchHealth(rollout: string, opts?: WatchHealthOptions): AsyncGenerator<HealthUpdate>;
  /** Counters of the outcome buffer. */
  outcomeStats(): OutcomeStats;
  /** Flushes every outcome, ends every watch, then closes the connection. */
  close(): Promise<void>;
  /** The generated DecisionService client, for anything the wrapper doesn't cover. */
  readonly decisions: Client<typeof DecisionService>;
  /** The generated RolloutService client: the control plane. */
  readonly rollouts: Client<typeof RolloutService>;
}

/** What the transport-independent core needs. */
export interface CoreOptions {
  readonly transport: Transport;
  readonly outcomes?: OutcomeBufferOptions;
  /** Reconnect settings every watchHealth uses unless it passes its own. */
  readonly watch?: Omit<WatchHealthOptions, "signal">;
  /** Closes the underlying connection (e.g. the HTTP/2 session). */
  readonly closeTransport?: () => void;
}

function callOptions(opts: CallOpts | undefined): CallOptions {
  if (opts === undefined) return {};
  return {
    ...(opts.timeoutMs === undefined ? {} : { timeoutMs: opts.timeoutMs }),
    ...(opts.signal === undefined ? {} : { signal: opts.signal }),
    ...(opts.headers === undefined ? {} : { headers: opts.headers }),
  };
}

/** Returns a rollgate client over any Connect transport (gRPC, Connect, gRPC-Web). */
export function createClientFromTransport(options: CoreOptions): RollgateClient {
  const decisions = createClient(DecisionService, options.transport);
  const rollouts = createClient(RolloutService, options.transport);
  const closing = new AbortController();
  const buffer = createOutcomeBuffer(async (rollout, outcomes) => {
    const r = await decisions.recordOutcome({ rollout, outcomes });
    return { accepted: r.accepted, ignored: r.ignored };
  }, options.outcomes);
  let closed: Promise<void> | undefined;

  return {
    decisions,
    rollouts,
    async route(rollout, key, opts) {
      return routeResultOf(await decisions.route({ rollout, key }, callOptions(opts)));
    },
    async routeBatch(rollout, keys, opts) {
      const r = await decisions.routeBatch({ rollout, keys: [...keys] }, callOptions(opts));
      return r.results.map(routeResultOf);
    },
    recordOutcome(rollout, outcome) {
      buffer.add(rollout, outcomeToProto(outcome));
    },
    flush: () => buffer.flush(),
    async health(rollout, opts) {
      const r = await decisions.health({ rollout }, callOptions(opts));
      if (r.health === undefined) throw new Error(`Health(${rollout}) answered without a health`);
      return r.health;
    },
    watchHealth(rollout, opts = {}) {
      const signal = opts.signal === undefined ? closing.signal : AbortSignal.any([opts.signal, closing.signal]);
      return watchHealthStream((s) => decisions.watchHealth({ rollout }, { signal: s, timeoutMs: 0 }), {
        ...options.watch,
        ...opts,
        signal,
      });
    },
    outcomeStats: () => buffer.stats(),
    close() {
      closed ??= (async () => {
        try {
          await buffer.close();
        } finally {
          closing.abort();
          options.closeTransport?.();
        }
      })();
      return closed;
    },
  };
}
