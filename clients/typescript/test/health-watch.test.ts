import { create } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { HealthUpdateSchema, type HealthUpdate } from "../src/gen/rollgate/v1/decision_service_pb.js";
import { RolloutHealthSchema } from "../src/gen/rollgate/v1/health_pb.js";
import { watchHealthStream } from "../src/health-watch.js";

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
});
