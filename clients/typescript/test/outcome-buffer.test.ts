import { create } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { OutcomeSchema, type Outcome } from "../src/gen/rollgate/v1/decision_service_pb.js";
import { Variant } from "../src/gen/rollgate/v1/rollout_pb.js";
import { createOutcomeBuffer, type FailedBatch, type SendBatch } from "../src/outcome-buffer.js";
import { outcomeToProto } from "../src/outcome-input.js";

const outcome = (latencyMs = 1): Outcome => create(OutcomeSchema, { variant: Variant.CANARY, success: true, latencyMs });

/** A batch sender that records what it was given and answers as told. */
function recorder(answer: (rollout: string, n: number, call: number) => Promise<void> = async () => undefined) {
  const calls: { rollout: string; latencies: number[] }[] = [];
  const send: SendBatch = async (rollout, outcomes) => {
    calls.push({ rollout, latencies: outcomes.map((o) => o.latencyMs) });
    await answer(rollout, outcomes.length, calls.length);
    return { accepted: outcomes.length, ignored: 0 };
  };
  return { calls, send };
}

describe("outcome buffer", () => {
  it("sends a rollout's batch as soon as 500 outcomes are buffered, without waiting for the timer", async () => {
    const r = recorder();
    const buffer = createOutcomeBuffer(r.send, { flushIntervalMs: 3_600_000 });
    for (let i = 0; i < 499; i++) buffer.add("a", outcome(i));
    expect(r.calls).toHaveLength(0);
    buffer.add("a", outcome(499));
    expect(r.calls).toHaveLength(1);
    expect(r.calls[0]!.latencies).toEqual(Array.from({ length: 500 }, (_, i) => i));
    buffer.add("b", outcome());
    await buffer.close();
    expect(r.calls.map((c) => [c.rollout, c.latencies.length])).toEqual([
      ["a", 500],
      ["b", 1],
    ]);
    expect(buffer.stats()).toMatchObject({ buffered: 0, inFlight: 0, sent: 501, accepted: 501, batches: 2, dropped: 0 });
  });

  it("flushes on its timer when fewer than a batch arrive", async () => {
    const r = recorder();
    const buffer = createOutcomeBuffer(r.send, { flushIntervalMs: 20 });
    buffer.add("a", outcome());
    buffer.add("a", outcome());
    await expect.poll(() => buffer.stats().sent, { timeout: 5000 }).toBe(2);
    expect(r.calls).toHaveLength(1);
    await buffer.close();
  });

  it("flush() splits a large backlog into batches of maxBatch, per rollout", async () => {
    const r = recorder();
    const buffer = createOutcomeBuffer(r.send, { flushIntervalMs: 3_600_000, maxBatch: 3 });
    for (let i = 0; i < 2; i++) buffer.add("x", outcome(i));
    for (let i = 0; i < 2; i++) buffer.add("y", outcome(i));
    await buffer.flush();
    expect(r.calls.map((c) => [c.rollout, c.latencies.length])).toEqual([
      ["x", 2],
      ["y", 2],
    ]);
    await buffer.close();
  });

  it("puts a batch back when the server is unavailable and delivers it on the next flush: nothing lost", async () => {
    let down = true;
    const r = recorder(async () => {
      if (down) throw new ConnectError("down", Code.Unavailable);
    });
    const errors: FailedBatch[] = [];
    const buffer = createOutcomeBuffer(r.send, { flushIntervalMs: 3_600_000, onError: (_e, b) => errors.push(b) });
    for (let i = 0; i < 5; i++) buffer.add("a", outcome(i));
    await expect(buffer.flush()).rejects.toMatchObject({ code: Code.Unavailable });
    expect(buffer.stats()).toMatchObject({ buffered: 5, sent: 0, dropped: 0 });
    buffer.add("a", outcome(5));
    down = false;
    await buffer.close();
    expect(r.calls.at(-1)!.latencies).toEqual([0, 1, 2, 3, 4, 5]);
    expect(buffer.stats()).toMatchObject({ buffered: 0, sent: 6, dropped: 0 });
    expect(errors).toEqual([]); // flush() reported by rejecting, not through onError
  });

  it("drops a batch the server refuses whole (INVALID_ARGUMENT) and reports background failures", async () => {
    const r = recorder(async () => {
      throw new ConnectError("outcomes[0].latency_ms: bad", Code.InvalidArgument);
    });
    const errors: { code: Code; batch: FailedBatch }[] = [];
    const buffer = createOutcomeBuffer(r.send, { flushIntervalMs: 3_600_000, maxBatch: 2, onError: (e, batch) => errors.push({ code: e.code, batch }) });
    buffer.add("a", outcome());
    buffer.add("a", outcome()); // a full batch: sent in the background
    await expect.poll(() => errors.length).toBe(1);
    expect(errors[0]).toEqual({ code: Code.InvalidArgument, batch: { rollout: "a", count: 2, requeued: false } });
    expect(buffer.stats()).toMatchObject({ buffered: 0, dropped: 2, sent: 0 });
    await buffer.close();
  });

  it.each([Code.DeadlineExceeded, Code.Unknown, Code.ResourceExhausted])(
    "does not resend a batch after %s: the server may have recorded it, or would refuse it again",
    async (code) => {
      const r = recorder(async () => {
        throw new ConnectError("failed", code);
      });
      const buffer = createOutcomeBuffer(r.send, { flushIntervalMs: 3_600_000 });
      for (let i = 0; i < 3; i++) buffer.add("a", outcome(i));
      await expect(buffer.flush()).rejects.toMatchObject({ code });
      expect(buffer.stats()).toMatchObject({ buffered: 0, dropped: 3 });
      await buffer.close();
      expect(r.calls.length).toBe(1);
    },
  );

  it("refuses outcomes after close, and bounds the buffer by dropping the oldest", async () => {
    const r = recorder(async () => {
      throw new ConnectError("down", Code.Unavailable);
    });
    const buffer = createOutcomeBuffer(r.send, { flushIntervalMs: 3_600_000, maxBuffered: 3 });
    for (let i = 0; i < 5; i++) buffer.add("a", outcome(i));
    expect(buffer.stats()).toMatchObject({ buffered: 3, dropped: 2 });
    await expect(buffer.close()).rejects.toMatchObject({ code: Code.Unavailable });
    expect(r.calls[0]!.latencies).toEqual([2, 3, 4]);
    expect(() => buffer.add("a", outcome())).toThrow(/closed/);
  });
});

describe("outcome input", () => {
  it("refuses what the server would reject the whole batch for, naming the field", () => {
    expect(() => outcomeToProto({ variant: "canary", success: true, latencyMs: Number.NaN })).toThrow("outcome.latencyMs: must be finite and >= 0");
    expect(() => outcomeToProto({ variant: "canary", success: true, latencyMs: -1 })).toThrow(RangeError);
    expect(() => outcomeToProto({ variant: Variant.UNSPECIFIED, success: true, latencyMs: 1 })).toThrow("outcome.variant");
    expect(() => outcomeToProto({ variant: "stable", success: true, latencyMs: 1, metrics: { m: Infinity } })).toThrow('outcome.metrics["m"]');
    const o = outcomeToProto({ variant: "stable", success: false, latencyMs: 12.5, metrics: { cart: 3 }, invariantViolations: 1, key: "u", time: new Date(1000) });
    expect(o).toMatchObject({ variant: Variant.STABLE, success: false, latencyMs: 12.5, metrics: { cart: 3 }, invariantViolations: 1, key: "u" });
    expect(o.time?.seconds).toBe(1n);
  });
});
