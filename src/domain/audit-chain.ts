import { hash } from "node:crypto";

/** What an audit event records (docs/design.md §6). */
export type EventType =
  | "created"
  | "updated"
  | "deleted"
  | "step_changed"
  | "weight_changed"
  | "promoted"
  | "rolled_back"
  | "halted"
  | "resumed"
  | "paused"
  | "feature_changed"
  | "override_changed"
  | "gate_breach"
  | "decision";

/** An event before the log has given it a place: no sequence number and no hashes yet. */
export interface NewEvent {
  readonly timeNs: bigint;
  readonly rollout: string;
  readonly type: EventType;
  readonly actor: string;
  readonly reason: string;
  readonly fingerprint: string;
  /** JSON text: the rollout's state and every gate's values at that moment. */
  readonly snapshot: string;
}

/** An appended audit event, chained to the previous event of the same rollout. */
export interface AuditEvent extends NewEvent {
  readonly seq: number;
  /** Lowercase hex SHA-256 of the rollout's previous event; "" for its first. */
  readonly prevHash: string;
  readonly hash: string;
}

/**
 * Returns the lowercase hex SHA-256 of an event.
 *
 * The input is the JSON array [seq, time_ns, rollout, type, actor, reason, fingerprint, snapshot,
 * prev_hash] with seq and time_ns as decimal strings, so any client can recompute it from the
 * fields ListEvents returns.
 */
export function eventHash(e: Omit<AuditEvent, "hash">): string {
  const input = JSON.stringify([
    String(e.seq),
    e.timeNs.toString(),
    e.rollout,
    e.type,
    e.actor,
    e.reason,
    e.fingerprint,
    e.snapshot,
    e.prevHash,
  ]);
  return hash("sha256", input, "hex");
}

/** Returns the event with its chain link and hash filled in. */
export function chainEvent(e: NewEvent, seq: number, prevHash: string): AuditEvent {
  const linked = { ...e, seq, prevHash };
  return { ...linked, hash: eventHash(linked) };
}

/** The first broken link of a hash chain, if any. */
export type ChainVerdict =
  | { readonly ok: true; readonly checked: number }
  | { readonly ok: false; readonly checked: number; readonly seq: number; readonly problem: string };

/**
 * Checks the hash chains of a list of events in sequence order, one chain per rollout.
 *
 * Each event's hash must match its content and its prev_hash must be the hash of the same
 * rollout's previous event in the list. Pass a rollout's complete history (after_seq 0):
 * the first event of each rollout seen starts its chain and must have an empty prev_hash.
 */
export function verifyChain(events: readonly AuditEvent[]): ChainVerdict {
  const last = new Map<string, string>();
  let lastSeq = 0;
  let checked = 0;
  for (const e of events) {
    if (e.seq <= lastSeq) {
      return { ok: false, checked, seq: e.seq, problem: `sequence ${e.seq} does not follow ${lastSeq}` };
    }
    lastSeq = e.seq;
    const expectedPrev = last.get(e.rollout) ?? "";
    if (e.prevHash !== expectedPrev) {
      return {
        ok: false,
        checked,
        seq: e.seq,
        problem: `prev_hash ${e.prevHash || '""'} does not match the previous event's hash ${expectedPrev || '""'}`,
      };
    }
    const recomputed = eventHash(e);
    if (recomputed !== e.hash) {
      return { ok: false, checked, seq: e.seq, problem: `hash ${e.hash} does not match its content (recomputed ${recomputed})` };
    }
    last.set(e.rollout, e.hash);
    checked++;
  }
  return { ok: true, checked };
}
