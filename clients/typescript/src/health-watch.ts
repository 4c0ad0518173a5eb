import { create, equals } from "@bufbuild/protobuf";
import type { Timestamp } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import { HealthUpdateSchema, type HealthUpdate } from "./gen/rollgate/v1/decision_service_pb.js";
import { RolloutHealthSchema } from "./gen/rollgate/v1/health_pb.js";
import { backoffMs, sleep, type RetryPolicy } from "./retry.js";

/** Opens one WatchHealth stream. */
export type OpenHealthStream = (signal: AbortSignal) => AsyncIterable<HealthUpdate>;

/** Options of a health watch. */
export interface WatchHealthOptions {
  /** Ends the watch: the loop over it simply finishes. */
  readonly signal?: AbortSignal;
  /** Backoff between reconnects. Default 250 ms doubling up to 10 s, reset by every update. */
  readonly reconnect?: Partial<Omit<RetryPolicy, "maxAttempts">>;
  /** Told before each reconnect, with the error that ended the stream (undefined for a clean end). */
  readonly onReconnect?: (error: ConnectError | undefined, attempt: number) => void;
}

/**
 * Codes that a reconnect cannot cure: the watch ends with the error. Everything else (the
 * server restarting, a proxy cutting the stream, a network blip) is reconnected after a backoff.
 */
const FINAL_CODES = new Set([
  Code.InvalidArgument,
  Code.NotFound,
  Code.PermissionDenied,
  Code.Unauthenticated,
  Code.Unimplemented,
  Code.FailedPrecondition,
  Code.AlreadyExists,
  Code.OutOfRange,
]);

/** Returns true when a watch ended by this error is worth reconnecting. */
export function isReconnectable(error: ConnectError): boolean {
  return !FINAL_CODES.has(error.code);
}

/**
 * Returns a WatchHealth stream that survives disconnects.
 *
 * When a stream ends (cleanly, e.g. on a server restart, or with a transient error) it is
 * reopened after a backoff. WatchHealth starts each stream with the current health, so the
 * watch resumes where it was. An update that is not newer than the last one delivered for its
 * rollout is dropped (see `isNewer`): an older one (a stream that lagged behind, a server that
 * restarted from an earlier state) or a repeat. `seq` is renumbered to stay strictly increasing
 * across reconnects. The Go and Python clients drop the same updates.
 */
export async function* watchHealthStream(open: OpenHealthStream, options: WatchHealthOptions = {}): AsyncGenerator<HealthUpdate> {
  const policy: RetryPolicy = {
    maxAttempts: Number.POSITIVE_INFINITY,
    initialBackoffMs: options.reconnect?.initialBackoffMs ?? 250,
    maxBackoffMs: options.reconnect?.maxBackoffMs ?? 10_000,
    multiplier: options.reconnect?.multiplier ?? 2,
  };
  const stop = new AbortController();
  const signal = options.signal === undefined ? stop.signal : AbortSignal.any([options.signal, stop.signal]);
  const last = new Map<string, HealthUpdate>();
  let seq = 0n;
  let failures = 0;
  try {
    while (!signal.aborted) {
      let ended: ConnectError | undefined;
      try {
        for await (const update of open(signal)) {
          failures = 0;
          const name = update.health?.rollout ?? "";
          const previous = last.get(name);
          if (!isNewer(previous, update)) continue;
          last.set(name, update);
          seq++;
          yield create(HealthUpdateSchema, { seq, deleted: update.deleted, ...(update.health === undefined ? {} : { health: update.health }) });
        }
      } catch (e) {
        if (signal.aborted) return;
        ended = ConnectError.from(e);
        if (!isReconnectable(ended)) throw ended;
      }
      failures++;
      options.onReconnect?.(ended, failures);
      try {
        await sleep(backoffMs(policy, failures), signal);
      } catch {
        return;
      }
    }
  } finally {
    // A consumer that breaks out of its loop lands here: cancel the stream on the wire.
    stop.abort();
  }
}

/**
 * Returns whether `next` should be delivered after `previous`, the last update delivered for its
 * rollout: always when there is none or the deleted flag changed; otherwise when
 * `health.evaluated_at` is later, or the same with different content (a state change, such as a
 * promotion, without a new evaluation).
 */
export function isNewer(previous: HealthUpdate | undefined, next: HealthUpdate): boolean {
  if (previous === undefined || previous.deleted !== next.deleted) return true;
  const order = compareTimestamps(previous.health?.evaluatedAt, next.health?.evaluatedAt);
  if (order !== 0) return order < 0;
  if (previous.health === undefined || next.health === undefined) return previous.health !== next.health;
  return !equals(RolloutHealthSchema, previous.health, next.health);
}

/** Returns a negative number when `a` is earlier than `b`, positive when later, 0 when equal (unset is the epoch). */
function compareTimestamps(a: Timestamp | undefined, b: Timestamp | undefined): number {
  const as = a?.seconds ?? 0n;
  const bs = b?.seconds ?? 0n;
  if (as !== bs) return as < bs ? -1 : 1;
  return (a?.nanos ?? 0) - (b?.nanos ?? 0);
}
