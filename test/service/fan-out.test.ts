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

/** A sink that records what it is given and takes items while `open` is true. */
function recorder<T>() {
  const r = {
    items: [] as T[],
    ended: [] as (Error | undefined)[],
    open: true,
    sink: {
      write(item: T) {
        r.items.push(item);
        return r.open;
      },
      end(e: Error | undefined) {
        r.ended.push(e);
      },
    },
  };
  return r;
}

describe("fan-out in push mode", () => {
  type Item = { k: string; v: number };
  const latest = () => createFanOut<Item>({ kind: "latest", key: (x) => x.k }, (x) => x.k);

  it("writes each item in the publisher's turn while the sink takes them", () => {
    const f = latest();
    const r = recorder<Item>();
    f.subscribe(() => true).push(r.sink);
    f.publish({ k: "a", v: 1 }, { k: "b", v: 1 });
    expect(r.items).toEqual([
      { k: "a", v: 1 },
      { k: "b", v: 1 },
    ]);
  });

  it("holds the latest per key while the sink is full, and gives them on resume, in arrival order", () => {
    const f = latest();
    const r = recorder<Item>();
    const sub = f.subscribe(() => true);
    sub.push(r.sink);
    r.open = false;
    f.publish({ k: "a", v: 1 }); // written; the sink is now full
    f.publish({ k: "a", v: 2 }, { k: "b", v: 1 }, { k: "a", v: 3 }, { k: "b", v: 2 }, { k: "c", v: 1 });
    expect(r.items).toEqual([{ k: "a", v: 1 }]);
    r.open = true;
    sub.resume();
    expect(r.items.slice(1)).toEqual([
      { k: "a", v: 3 },
      { k: "b", v: 2 },
      { k: "c", v: 1 },
    ]);
    // Resumed and empty: the next item goes straight through.
    f.publish({ k: "a", v: 4 });
    expect(r.items.at(-1)).toEqual({ k: "a", v: 4 });
  });

  it("a key filter gets only its key's items; subscribers of every key and of others are unaffected", () => {
    const f = latest();
    const a = recorder<Item>();
    const all = recorder<Item>();
    f.subscribe({ key: "a" }).push(a.sink);
    f.subscribe(() => true).push(all.sink);
    f.publish({ k: "a", v: 1 }, { k: "b", v: 1 }, { k: "a", v: 2 });
    expect(a.items.map((x) => x.v)).toEqual([1, 2]);
    expect(all.items).toHaveLength(3);
    expect(f.size()).toBe(2);
  });

  it("holds what comes before a sink is attached, then gives it at once", () => {
    const f = latest();
    const sub = f.subscribe({ key: "a" });
    f.publish({ k: "a", v: 1 }, { k: "a", v: 2 });
    const r = recorder<Item>();
    sub.push(r.sink);
    expect(r.items).toEqual([{ k: "a", v: 2 }]);
  });

  it("closed while full: the held items go out on resume, then end; closed while ready: ends at once", () => {
    const f = latest();
    const full = recorder<Item>();
    const ready = recorder<Item>();
    const s1 = f.subscribe(() => true);
    s1.push(full.sink);
    f.subscribe(() => true).push(ready.sink);
    full.open = false;
    f.publish({ k: "a", v: 1 }, { k: "b", v: 1 });
    f.closeAll();
    expect(ready.ended).toEqual([undefined]);
    expect(full.ended).toEqual([]);
    expect(f.size()).toBe(0);
    f.publish({ k: "c", v: 1 }); // after the close: not given
    full.open = true;
    s1.resume();
    expect(full.items.map((x) => x.k)).toEqual(["a", "b"]);
    expect(full.ended).toEqual([undefined]);
  });

  it("queue: a sink too far behind gets what was held, then RESOURCE_EXHAUSTED", () => {
    const f = createFanOut<number>({ kind: "queue", max: 2 });
    const r = recorder<number>();
    const sub = f.subscribe(() => true);
    sub.push(r.sink);
    r.open = false;
    f.publish(1, 2, 3, 4);
    expect(f.size()).toBe(0);
    r.open = true;
    sub.resume();
    expect(r.items).toEqual([1, 2, 3]);
    expect(r.ended).toHaveLength(1);
    expect((r.ended[0] as DomainError).kind).toBe("resource_exhausted");
  });

  it("a sink that closes its subscription while writing ends after that write; one that throws ends alone", () => {
    const f = latest();
    const sub = f.subscribe(() => true);
    const ended: (Error | undefined)[] = [];
    sub.push({
      write(x) {
        if (x.v === 2) sub.close();
        return true;
      },
      end: (e) => ended.push(e),
    });
    const bad = f.subscribe(() => true);
    const badEnd: (Error | undefined)[] = [];
    bad.push({
      write() {
        throw new Error("boom");
      },
      end: (e) => badEnd.push(e),
    });
    const other = recorder<Item>();
    f.subscribe(() => true).push(other.sink);
    f.publish({ k: "a", v: 1 }, { k: "a", v: 2 }, { k: "a", v: 3 });
    expect(ended).toEqual([undefined]);
    expect(badEnd.map((e) => e?.message)).toEqual(["boom"]);
    expect(other.items.map((x) => x.v)).toEqual([1, 2, 3]);
    expect(f.size()).toBe(1);
  });
});
