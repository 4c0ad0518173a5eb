import { describe, expect, it } from "vitest";
import { DomainError } from "../../src/domain/errors.js";
import { createFanOut } from "../../src/service/fan-out.js";

async function take<T>(it: AsyncIterator<T>, n: number): Promise<T[]> {
  const out: T[] = [];
  for (let i = 0; i < n; i++) out.push((await it.next()).value as T);
  return out;
}

describe("fan-out", () => {
  it("queue: delivers every accepted item in order to each subscriber", async () => {
    const f = createFanOut<number>({ kind: "queue", max: 100 });
    const evens = f.subscribe((n) => n % 2 === 0)[Symbol.asyncIterator]();
    const all = f.subscribe(() => true)[Symbol.asyncIterator]();
    f.publish(1, 2, 3, 4);
    expect(await take(evens, 2)).toEqual([2, 4]);
    expect(await take(all, 4)).toEqual([1, 2, 3, 4]);
  });

  it("queue: ends a subscriber that falls more than max behind with RESOURCE_EXHAUSTED, sparing the others", async () => {
    const f = createFanOut<number>({ kind: "queue", max: 3 });
    const slow = f.subscribe(() => true)[Symbol.asyncIterator]();
    const fast = f.subscribe(() => true)[Symbol.asyncIterator]();
    f.publish(1, 2, 3);
    expect(await take(fast, 3)).toEqual([1, 2, 3]);
    f.publish(4);
    expect(await take(fast, 1)).toEqual([4]);
    expect(await take(slow, 3)).toEqual([1, 2, 3]);
    const err = await slow.next().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DomainError);
    expect((err as DomainError).kind).toBe("resource_exhausted");
    expect(f.size()).toBe(1);
  });

  it("queue: keeps order through a large backlog, interleaved reads, ring growth and wrap-around", async () => {
    const max = 40_000;
    const f = createFanOut<number>({ kind: "queue", max });
    const it = f.subscribe(() => true)[Symbol.asyncIterator]();
    const expected: number[] = [];
    let next = 0;
    const publish = (n: number) => {
      for (let i = 0; i < n; i++) {
        f.publish(next);
        expected.push(next++);
      }
    };
    const got: number[] = [];
    // Grow from empty to 30,000 pending, read some, refill past the ring's old end, drain.
    publish(30_000);
    got.push(...(await take(it, 7_777)));
    publish(10_000);
    got.push(...(await take(it, 20_000)));
    publish(max - (next - got.length)); // exactly full again
    got.push(...(await take(it, next - got.length)));
    expect(got).toEqual(expected);
    // Full means full: one more than max pending ends the subscriber, as before.
    publish(max);
    f.publish(-1);
    got.length = 0;
    got.push(...(await take(it, max)));
    expect(got).toEqual(expected.slice(-max));
    const err = await it.next().catch((e: unknown) => e);
    expect((err as DomainError).kind).toBe("resource_exhausted");
  });

  it("latest: keeps one pending item per key, the newest, in arrival order", async () => {
    const f = createFanOut<{ k: string; v: number }>({ kind: "latest", key: (x) => x.k });
    const it = f.subscribe(() => true)[Symbol.asyncIterator]();
    f.publish({ k: "a", v: 1 }, { k: "b", v: 1 }, { k: "a", v: 2 }, { k: "a", v: 3 });
    expect(await take(it, 2)).toEqual([
      { k: "b", v: 1 },
      { k: "a", v: 3 },
    ]);
  });

  it("removes a subscriber whose signal aborts, and closeAll ends every iterator normally", async () => {
    const f = createFanOut<number>({ kind: "queue", max: 10 });
    const abort = new AbortController();
    f.subscribe(() => true, abort.signal);
    const other = f.subscribe(() => true)[Symbol.asyncIterator]();
    expect(f.size()).toBe(2);
    abort.abort();
    expect(f.size()).toBe(1);
    const pending = other.next();
    f.closeAll();
    expect(await pending).toEqual({ done: true, value: undefined });
    expect(f.size()).toBe(0);
  });
});
