import { create } from "@bufbuild/protobuf";
import { afterEach, describe, expect, it } from "vitest";
import { durationFromMs } from "../../src/service/convert.js";
import { FLUSH_CHUNK_BUCKETS } from "../../src/service/engine/windows.js";
import { openSqliteStore } from "../../src/store/sqlite-store.js";
import type { WindowFlush } from "../../src/store/store.js";
import type { OutcomeSample } from "../../src/domain/outcome.js";
import { AnalysisSchema, RolloutSchema } from "../../gen/rollgate/v1/rollout_pb.js";
import { serviceEnv, type ServiceEnv } from "../helpers/service-env.js";

/**
 * The engine's background work (the window flush, the evaluator round) shares the event loop
 * with Route and RecordOutcome: it is cut into pieces with a turn of the loop between two, so
 * that calls are served meanwhile (the soak's event-loop delay, issue 16). These tests check the
 * structure — what is written in which piece, and that other callbacks run between pieces —
 * never a duration.
 */

let env: ServiceEnv | undefined;
afterEach(async () => {
  await env?.close();
  env = undefined;
});

/** Window 60 s evaluated every second: 30 buckets of 2 s per variant. */
const rollout = (name: string) =>
  create(RolloutSchema, {
    name,
    stableVersion: "v1",
    canaryVersion: "v2",
    gates: [{ name: "errors", minSamples: 10n, kind: { case: "errorRate", value: { max: 0.5 } } }],
    analysis: create(AnalysisSchema, { interval: durationFromMs(1_000), window: durationFromMs(60_000) }),
  });
const outcome = (variant: "stable" | "canary"): OutcomeSample => ({ variant, success: true, latencyMs: 10, metrics: new Map(), invariantViolations: 0, key: "" });
const both = [outcome("stable"), outcome("canary")];

/** A `:memory:` store (no real I/O: nothing else gets a turn unless the engine yields) whose flushes are logged into `log`. */
function loggedStore(log: string[], flushes: WindowFlush[], fail?: (n: number) => boolean) {
  const base = openSqliteStore(":memory:");
  return {
    ...base,
    flushWindows(f: WindowFlush) {
      flushes.push(f);
      log.push(`write ${f.buckets.length}`);
      if (fail?.(flushes.length)) return Promise.reject(new Error("disk on fire"));
      return base.flushWindows(f);
    },
  } as typeof base;
}

/** Creates `n` rollouts, each with outcomes in every one of its windows' 30 buckets (60 dirty buckets a rollout). */
async function busyRollouts(e: ServiceEnv, n: number): Promise<string[]> {
  const names = Array.from({ length: n }, (_, i) => `r${String(i).padStart(2, "0")}`);
  for (const name of names) await e.rollouts.createRollout({ rollout: rollout(name) });
  await e.engine.flush(); // the creations' evaluator state, out of the way
  for (let b = 0; b < 30; b++) {
    for (const name of names) e.engine.recordOutcomes(name, both);
    e.clock.advance(2_000);
  }
  return names;
}

const PER_ROLLOUT = 60;

describe("window flush", () => {
  // Two full chunks of whole rollouts and a last one: ceil(256 / 60) = 5 rollouts a chunk.
  const perChunk = Math.ceil(FLUSH_CHUNK_BUCKETS / PER_ROLLOUT);
  const rollouts = perChunk * 2 + 1;

  it("writes many buckets in chunks, one rollout never split, with a turn of the event loop between two", async () => {
    const log: string[] = [];
    const flushes: WindowFlush[] = [];
    env = await serviceEnv({ store: loggedStore(log, flushes) });
    const names = await busyRollouts(env, rollouts);
    log.length = 0;
    flushes.length = 0;

    setImmediate(() => log.push("immediate 1"));
    const done = env.engine.flush();
    setImmediate(() => setImmediate(() => log.push("immediate 2")));
    await done;

    // Three writes; the callbacks queued meanwhile ran between them, not after the flush.
    expect(log.map((l) => l.split(" ")[0])).toEqual(["write", "immediate", "write", "immediate", "write"]);
    const written = flushes.flatMap((f) => f.buckets.map((b) => `${b.rollout}/${b.variant}`));
    expect(written).toHaveLength(names.length * PER_ROLLOUT);
    expect(flushes.map((f) => f.buckets.length)).toEqual([perChunk * PER_ROLLOUT, perChunk * PER_ROLLOUT, PER_ROLLOUT]);
    const seen = new Set<string>();
    for (const f of flushes) {
      // Each chunk writes all the buckets of each of its rollouts (none split), and the expiry of exactly those.
      const inChunk = new Set(f.buckets.map((b) => b.rollout));
      for (const r of inChunk) expect(seen.has(r)).toBe(false);
      for (const r of inChunk) seen.add(r);
      expect(f.buckets.length).toBe(inChunk.size * PER_ROLLOUT);
      expect(new Set(f.expired!.map((x) => x.rollout))).toEqual(inChunk);
    }
    // Everything is in the store.
    expect(await env.store.loadWindowBuckets()).toHaveLength(names.length * PER_ROLLOUT);
  });

  it("after a failed chunk, writes that chunk and the ones not reached at the next flush, and not the chunk already written", async () => {
    const log: string[] = [];
    const flushes: WindowFlush[] = [];
    let failing = true;
    env = await serviceEnv({ store: loggedStore(log, flushes, (n) => failing && n === 2) });
    const names = await busyRollouts(env, rollouts);
    flushes.length = 0;

    await expect(env.engine.flush()).rejects.toThrow("disk on fire");
    expect(flushes).toHaveLength(2); // the first written, the second failed, the third not tried
    const first = new Set(flushes[0]!.buckets.map((b) => b.rollout));
    expect(await env.store.loadWindowBuckets()).toHaveLength(first.size * PER_ROLLOUT);

    failing = false;
    flushes.length = 0;
    await env.engine.flush();
    const again = flushes.flatMap((f) => f.buckets.map((b) => b.rollout));
    expect(again.some((r) => first.has(r))).toBe(false);
    expect(new Set([...first, ...again])).toEqual(new Set(names));
    expect(await env.store.loadWindowBuckets()).toHaveLength(names.length * PER_ROLLOUT);
  });
});

describe("evaluator round", () => {
  it("lets other callbacks run between two rollouts' evaluations", async () => {
    const log: string[] = [];
    env = await serviceEnv({
      tracer: {
        round: (_due, fn) => fn(),
        evaluation: async (name, fn) => {
          log.push(`evaluate ${name}`);
          await fn(() => undefined);
          // Queued at the end of each evaluation: runs before the next one only if the round yields.
          setImmediate(() => log.push(`immediate after ${name}`));
        },
      },
    });
    const names = ["a", "b", "c"];
    for (const name of names) await env.rollouts.createRollout({ rollout: rollout(name) });
    env.clock.advance(1_000);
    await env.engine.tick();
    expect(log.slice(0, 5)).toEqual(["evaluate a", "immediate after a", "evaluate b", "immediate after b", "evaluate c"]);
  });

  it("judges each rollout at its own moment, and keeps each due an interval after the round's start", async () => {
    // Each evaluation takes 300 ms of the clock: the round spans 900 ms of a 1 s interval.
    env = await serviceEnv({
      tracer: {
        round: (_due, fn) => fn(),
        evaluation: async (_name, fn) => {
          await fn(() => undefined);
          env!.clock.advance(300);
        },
      },
    });
    const names = ["a", "b", "c"];
    for (const name of names) await env.rollouts.createRollout({ rollout: rollout(name) });
    // The health each evaluation published, by rollout (the last one).
    const published = new Map<string, number>();
    const sub = env.engine.subscribeHealth(undefined);
    sub.push({ write: (c) => (published.set(c.health.rollout, c.health.evaluatedAt), true), end: () => undefined });
    const evaluatedAt = () => names.map((n) => published.get(n));
    env.clock.advance(1_000);
    const round1 = env.clock.now();
    await env.engine.tick();
    expect(evaluatedAt()).toEqual([round1, round1 + 300, round1 + 600]);

    // The next round starts one interval after the first one began: every rollout is due again,
    // the last one too, though it was judged 600 ms into the first round.
    env.clock.set(round1 + 1_000);
    await env.engine.tick();
    expect(evaluatedAt()).toEqual([round1 + 1_000, round1 + 1_300, round1 + 1_600]);
    sub.close();
  });
});
