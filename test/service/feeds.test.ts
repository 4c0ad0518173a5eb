import { describe, expect, it } from "vitest";
import type { AuditEvent } from "../../src/domain/audit-chain.js";
import { createFeeds } from "../../src/service/engine/feeds.js";

function event(seq: number): AuditEvent {
  return { seq, timeNs: 0n, rollout: "r", type: "CREATED", actor: "t", reason: "", fingerprint: "", snapshot: "", prevHash: "", hash: String(seq) } as unknown as AuditEvent;
}

describe("feeds: own events held for catchUp", () => {
  it("a single writer's contiguous events leave nothing remembered", () => {
    const feeds = createFeeds({});
    feeds.setWatermark(7);
    for (let seq = 8; seq < 20_008; seq++) feeds.publishEvents([event(seq)]);
    expect(feeds.ownPending()).toBe(0);
  });

  it("events after another writer's gap wait for catchUp, which publishes the other's first", async () => {
    let gaps = 0;
    const feeds = createFeeds({}, () => gaps++);
    feeds.setWatermark(1);
    feeds.publishEvents([event(2)]);
    // seq 3 is another replica's; 4 and 5 are ours.
    feeds.publishEvents([event(4), event(5)]);
    expect(feeds.ownPending()).toBe(2);
    expect(gaps).toBe(1);
    const sub = feeds.subscribeEvents(undefined);
    const published = await feeds.catchUp(async (after) => [2, 3, 4, 5].filter((s) => s > after).map(event));
    expect(published).toBe(1);
    expect(feeds.ownPending()).toBe(0);
    const it = sub[Symbol.asyncIterator]();
    expect((await it.next()).value.seq).toBe(3);
    expect((await it.next()).value.seq).toBe(4);
    expect((await it.next()).value.seq).toBe(5);
    // Later own events move the watermark again.
    feeds.publishEvents([event(6)]);
    expect(feeds.ownPending()).toBe(0);
  });
});
