// The audit log's hash chain, checked in the browser exactly as `rollgate events --verify` checks
// it (src/domain/audit-chain.ts): each event's SHA-256 over the JSON array
// [seq, time_ns, rollout, type, actor, reason, fingerprint, snapshot, prev_hash] (seq and time_ns
// as decimal strings), and each prev_hash equal to the hash of the rollout's previous event.

const TIME = /^(\d{4,}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?Z$/;

/** Returns nanoseconds since the epoch, as decimal text, of a protobuf JSON Timestamp ("" or absent: "0"). */
export function timestampNs(text) {
  if (text === undefined || text === "") return "0";
  const m = TIME.exec(text);
  if (m === null) throw new Error(`time "${text}" is not an RFC 3339 timestamp`);
  const ms = Date.parse(`${m[1]}Z`);
  if (Number.isNaN(ms)) throw new Error(`time "${text}" is not a valid date`);
  const nanos = BigInt((m[2] ?? "").padEnd(9, "0"));
  return (BigInt(ms / 1000) * 1_000_000_000n + nanos).toString();
}

/**
 * Returns the domain form of an event as ListEvents and WatchEvents give it in protobuf JSON
 * (fields at their default omitted): what the hash is computed over.
 */
export function chainFields(e) {
  const type = e.type ?? "EVENT_TYPE_UNSPECIFIED";
  return {
    seq: String(e.seq ?? "0"),
    timeNs: timestampNs(e.time),
    rollout: e.rollout ?? "",
    type: type.startsWith("EVENT_TYPE_") ? type.slice("EVENT_TYPE_".length).toLowerCase() : type,
    actor: e.actor ?? "",
    reason: e.reason ?? "",
    fingerprint: e.fingerprint ?? "",
    snapshot: e.snapshot ?? "",
    prevHash: e.prevHash ?? "",
    hash: e.hash ?? "",
  };
}

function hex(buffer) {
  return Array.from(new Uint8Array(buffer), (b) => b.toString(16).padStart(2, "0")).join("");
}

/** Returns true when this page can compute SHA-256 (WebCrypto is only there in a secure context). */
export function canVerify() {
  return globalThis.crypto?.subtle !== undefined;
}

/** Returns the lowercase hex SHA-256 of an event in the form chainFields returns. */
export async function eventHash(f) {
  const input = JSON.stringify([f.seq, f.timeNs, f.rollout, f.type, f.actor, f.reason, f.fingerprint, f.snapshot, f.prevHash]);
  return hex(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(input)));
}

/**
 * Returns a verifier that checks events in sequence order as they come — the whole history
 * first (from after_seq 0), then each live event — one chain per rollout. `verdict()` is
 * `{ ok: true, checked }` or, from the first broken link on, `{ ok: false, checked, seq, problem }`
 * with the same words as the CLI's.
 */
export function createChainVerifier() {
  const last = new Map();
  let lastSeq = 0n;
  let checked = 0;
  let broken;
  // Hashing is asynchronous: events are checked one after another, in the order added.
  let queue = Promise.resolve();

  async function check(e) {
    if (broken !== undefined) return;
    let f;
    try {
      f = chainFields(e);
    } catch (err) {
      broken = { seq: Number(e.seq ?? 0), problem: err.message };
      return;
    }
    const seq = BigInt(f.seq);
    if (seq <= lastSeq) {
      broken = { seq: Number(seq), problem: `sequence ${seq} does not follow ${lastSeq}` };
      return;
    }
    lastSeq = seq;
    const expectedPrev = last.get(f.rollout) ?? "";
    if (f.prevHash !== expectedPrev) {
      broken = {
        seq: Number(seq),
        problem: `prev_hash ${f.prevHash || '""'} does not match the previous event's hash ${expectedPrev || '""'}`,
      };
      return;
    }
    const recomputed = await eventHash(f);
    if (recomputed !== f.hash) {
      broken = { seq: Number(seq), problem: `hash ${f.hash} does not match its content (recomputed ${recomputed})` };
      return;
    }
    last.set(f.rollout, f.hash);
    checked++;
  }

  return {
    /** Checks events after those already added; resolves with the verdict once they are checked. */
    add(events) {
      for (const e of events) queue = queue.then(() => check(e));
      return queue.then(() => this.verdict());
    },
    verdict() {
      return broken === undefined ? { ok: true, checked } : { ok: false, checked, ...broken };
    },
  };
}

/** Returns the verdict on a complete list of events (see createChainVerifier). */
export function verifyChain(events) {
  return createChainVerifier().add(events);
}
