import type { AuditEvent, NewEvent } from "../domain/audit-chain.js";
import type { DomainError } from "../domain/errors.js";
import type { Rollout, Variant } from "../domain/rollout.js";

/** A control-plane change, committed atomically and durably before the caller is answered. */
export interface Commit {
  /** The rollout's new state. */
  readonly put?: Rollout;
  /** A rollout to delete (its events stay in the log). */
  readonly remove?: string;
  /** Events to append, in order; the store gives them sequence numbers and chain hashes. */
  readonly events: readonly NewEvent[];
  /**
   * The version the stored rollout must be at for the change to apply (0: it must not exist),
   * checked by the store itself in the same transaction, so that two writers on one database
   * cannot both apply a change to the same version. Without it a `put` must still be newer than
   * what is stored (every change bumps the version by one, so of two writers starting from the
   * same version only the first succeeds), and a `remove` needs the rollout to exist. A mismatch
   * fails the commit whole with a DomainError: `already_exists`, `not_found`, or `aborted`
   * naming the stored version.
   */
  readonly expectedVersion?: number;
  /**
   * In a group commit (Store.commitMany): the index of an earlier change of the group that this
   * one was computed from. When that one is refused, so is this one (`aborted`): its version
   * might match another writer's, but the state it was built on never existed.
   */
  readonly dependsOn?: number;
}

/** One change's outcome in a group commit: its appended events, or the DomainError that refused it. */
export type CommitResult = { readonly events: AuditEvent[]; readonly error?: undefined } | { readonly error: DomainError; readonly events?: undefined };

/** Which events to read. */
export interface EventQuery {
  /** Only this rollout's events; undefined for all. */
  readonly rollout?: string;
  readonly afterSeq: number;
  readonly limit: number;
}

/** One persisted time bucket of a sliding window, in the window's own binary encoding. */
export interface WindowBucketRow {
  readonly rollout: string;
  readonly variant: Variant;
  readonly startMs: number;
  readonly data: Uint8Array;
}

/** Window state written by the periodic flush: changed buckets and evaluator state. */
export interface WindowFlush {
  readonly buckets: readonly WindowBucketRow[];
  /** Windows cleared since the last flush (e.g. the canary's after a rollback). */
  readonly cleared: readonly { readonly rollout: string; readonly variant: Variant }[];
  /** Evaluator state per rollout, as JSON text. */
  readonly analysis: readonly { readonly rollout: string; readonly state: string }[];
  /** Per window written: its buckets that started before `beforeMs` have left the window and may be dropped. */
  readonly expired?: readonly { readonly rollout: string; readonly variant: Variant; readonly beforeMs: number }[];
  /** Buckets that started before this instant are expired everywhere and may be dropped (a sweep for idle windows). */
  readonly expireBeforeMs?: number;
}

/** What the store holds for a rollout at start-up. */
export interface StoredRollout {
  readonly rollout: Rollout;
  /** Evaluator state as JSON text, if any was flushed. */
  readonly analysis?: string;
}

/**
 * Where rollgate keeps its state. Methods are async so that a networked store (PostgreSQL,
 * for several replicas) can stand beside the embedded SQLite one.
 */
export interface Store {
  /** Returns every rollout with its evaluator state. */
  loadRollouts(): Promise<StoredRollout[]>;
  /** Applies a change and appends its events in one durable transaction; returns the events. */
  commit(change: Commit): Promise<AuditEvent[]>;
  /**
   * Group commit: applies several changes, in order, in one durable transaction, each in its own
   * savepoint. A change refused with a DomainError (a version mismatch, see `Commit`) is rolled
   * back alone and reported in its slot; the others still apply, later ones seeing the earlier
   * ones (versions, event seqs and chain hashes continue from them). Any other failure (the
   * database, the disk, the final COMMIT) rejects the whole call and nothing is written.
   */
  commitMany(changes: readonly Commit[]): Promise<CommitResult[]>;
  /** Returns events after a sequence number, oldest first. */
  listEvents(query: EventQuery): Promise<AuditEvent[]>;
  /** Returns the highest sequence number in the log (0 when empty). */
  lastSeq(): Promise<number>;
  /** Returns every persisted window bucket. */
  loadWindowBuckets(): Promise<WindowBucketRow[]>;
  /** Persists window buckets and evaluator state. */
  flushWindows(flush: WindowFlush): Promise<void>;
  /** Closes the store; later calls fail. */
  close(): Promise<void>;
  /** Resolves when the database can be written now; rejects (unavailable, resource_exhausted) saying why. For /readyz. */
  ping?(): Promise<void>;
}
