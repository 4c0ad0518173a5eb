import { create } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { HealthUpdateSchema, type HealthUpdate } from "../src/gen/rollgate/v1/decision_service_pb.js";
import { RolloutHealthSchema } from "../src/gen/rollgate/v1/health_pb.js";
import { isNewer, watchHealthStream } from "../src/health-watch.js";

const update = (seq: number, score: number, rollout = "r"): HealthUpdate =>
  create(HealthUpdateSchema, { seq: BigInt(seq), health: create(RolloutHealthSchema, { rollout, score }) });

/** Streams scripted connection by connection: each entry yields its updates, then ends or throws. */
function scripted(connections: { updates: HealthUpdate[]; end?: ConnectError }[]) {
  let opened = 0;
  const open = (signal: AbortSignal) =>
    (async function* () {
      const c = connections[opened++];
      if (c === undefined) {
        // No more scripted connections: hang until the watch is stopped.
        await new Promise((resolve) => signal.addEventListener("abort", resolve, { once: true }));
        return;
      }
      yield* c.updates;
      if (c.end !== undefined) throw c.end;
    })();
  return { open, opened: () => opened };
}

/** An update of rollout "r" evaluated at `second` (since the epoch), in `stage` (1 canary, 4 rolled back). */
const at = (seq: number, second: number, score: number, stage = 1): HealthUpdate =>
  create(HealthUpdateSchema, {
    seq: BigInt(seq),
    health: create(RolloutHealthSchema, { rollout: "r", score, stage, evaluatedAt: { seconds: BigInt(second), nanos: 0 } }),
  });

const fast = { reconnect: { initialBackoffMs: 1, maxBackoffMs: 2 } };

describe("watchHealthStream", () => {
  it("reconnects after transient errors and clean ends, skips the repeated current health, renumbers seq", async () => {
    const s = scripted([
      { updates: [update(1, 1), update(2, 0.85)], end: new ConnectError("gone", Code.Unavailable) },
      { updates: [update(1, 0.85), update(2, 0.5)] }, // clean end (server restart)
      { updates: [update(1, 0.5), update(2, 1)], end: new ConnectError("reset", Code.Internal) },
    ]);
    const reconnects: (Code | undefined)[] = [];
    const got: [bigint, number][] = [];
    for await (const u of watchHealthStream(s.open, { ...fast, onReconnect: (e) => reconnects.push(e?.code) })) {
      got.push([u.seq, u.health!.score]);
      if (got.length === 4) break;
    }
    expect(got).toEqual([
      [1n, 1],
      [2n, 0.85],
      [3n, 0.5],
      [4n, 1],
    ]);
    expect(reconnects).toEqual([Code.Unavailable, undefined]);
    expect(s.opened()).toBe(3);
  });

  it("ends with the error when reconnecting cannot help", async () => {
    const s = scripted([{ updates: [], end: new ConnectError('rollout "x" not found', Code.NotFound) }]);
    const it = watchHealthStream(s.open, fast);
    await expect(it.next()).rejects.toMatchObject({ code: Code.NotFound });
  });

  it("finishes quietly when its signal is aborted", async () => {
    const s = scripted([{ updates: [update(1, 1)] }]);
    const stop = new AbortController();
    const got: number[] = [];
    for await (const u of watchHealthStream(s.open, { ...fast, signal: stop.signal })) {
      got.push(u.health!.score);
      stop.abort();
    }
    expect(got).toEqual([1]);
  });

  it("keeps the last state per rollout when watching every rollout", async () => {
    const s = scripted([{ updates: [update(1, 1, "a"), update(2, 1, "b")] }, { updates: [update(1, 1, "a"), update(2, 1, "b"), update(3, 0.2, "a")] }]);
    const got: string[] = [];
    for await (const u of watchHealthStream(s.open, fast)) {
      got.push(`${u.seq}:${u.health!.rollout}:${u.health!.score}`);
      if (got.length === 3) break;
    }
    expect(got).toEqual(["1:a:1", "2:b:1", "3:a:0.2"]);
  });

  it("drops updates older than the last one delivered, not only repeats (as the Go and Python clients do)", async () => {
    const s = scripted([
      { updates: [at(1, 100, 1), at(2, 110, 0.85)], end: new ConnectError("gone", Code.Unavailable) },
      // The next stream comes from a replica (or a restarted server) that is behind: its first
      // update was evaluated before the last one delivered, then it catches up.
      { updates: [at(1, 105, 1), at(2, 110, 0.85), at(3, 110, 0.85, 4), at(4, 120, 0.3, 4)] },
    ]);
    const got: string[] = [];
    for await (const u of watchHealthStream(s.open, fast)) {
      got.push(`${u.seq}:${u.health!.evaluatedAt!.seconds}:${u.health!.score}:${u.health!.stage}`);
      if (got.length === 4) break;
    }
    // 105 is older than 110: dropped; the second 110 is a repeat: dropped; the same time with
    // another state (rolled back without a new evaluation) and a later one come through.
    expect(got).toEqual(["1:100:1:1", "2:110:0.85:1", "3:110:0.85:4", "4:120:0.3:4"]);
  });

  it("isNewer orders by evaluated_at to the nanosecond, then by content; a change of the deleted flag always counts", () => {
    const u = (seconds: number, nanos: number, score = 1, deleted = false) =>
      create(HealthUpdateSchema, { deleted, health: create(RolloutHealthSchema, { rollout: "r", score, evaluatedAt: { seconds: BigInt(seconds), nanos } }) });
    expect(isNewer(undefined, u(5, 0))).toBe(true);
    expect(isNewer(u(5, 2), u(5, 1))).toBe(false);
    expect(isNewer(u(5, 1), u(5, 2))).toBe(true);
    expect(isNewer(u(6, 0), u(5, 999_999_999))).toBe(false);
    expect(isNewer(u(5, 1), u(5, 1))).toBe(false);
    expect(isNewer(u(5, 1), u(5, 1, 0.5))).toBe(true);
    expect(isNewer(u(6, 0), u(5, 0, 1, true))).toBe(true);
  });
});
