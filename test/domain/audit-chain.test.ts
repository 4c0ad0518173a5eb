import { describe, expect, it } from "vitest";
import { chainEvent, eventHash, verifyChain, type AuditEvent, type NewEvent } from "../../src/domain/audit-chain.js";
import { canonicalJson } from "../../src/domain/canonical-json.js";

const base = (rollout: string, reason: string): NewEvent => ({
  timeNs: 1_767_225_600_000_000_000n,
  rollout,
  type: "created",
  actor: "op",
  reason,
  fingerprint: "ab".repeat(32),
  snapshot: '{"stage":"canary"}',
});

function log(): AuditEvent[] {
  const out: AuditEvent[] = [];
  const last = new Map<string, string>();
  ["a", "b", "a", "a", "b"].forEach((r, i) => {
    const e = chainEvent(base(r, `change ${i}`), i + 1, last.get(r) ?? "");
    last.set(r, e.hash);
    out.push(e);
  });
  return out;
}

describe("audit hash chain", () => {
  it("chains each rollout's events and verifies", () => {
    const events = log();
    expect(events[0]!.prevHash).toBe("");
    expect(events[2]!.prevHash).toBe(events[0]!.hash);
    expect(events[4]!.prevHash).toBe(events[1]!.hash);
    expect(verifyChain(events)).toEqual({ ok: true, checked: 5 });
    expect(verifyChain(events.filter((e) => e.rollout === "a"))).toEqual({ ok: true, checked: 3 });
  });

  it("hashes a documented JSON array of the fields", async () => {
    const e = log()[2]!;
    const { createHash } = await import("node:crypto");
    const input = JSON.stringify(["3", e.timeNs.toString(), "a", "created", "op", "change 2", e.fingerprint, e.snapshot, e.prevHash]);
    expect(e.hash).toBe(createHash("sha256").update(input).digest("hex"));
    expect(eventHash(e)).toBe(e.hash);
  });

  it.each([
    ["a changed reason", (es: AuditEvent[]) => (es[2] = { ...es[2]!, reason: "nothing to see" }), 3],
    ["a removed event", (es: AuditEvent[]) => es.splice(2, 1), 4],
    ["a re-hashed edit", (es: AuditEvent[]) => (es[0] = chainEvent({ ...base("a", "forged") }, 1, "")), 3],
    ["swapped events", (es: AuditEvent[]) => ([es[2], es[3]] = [es[3]!, es[2]!]), 4],
  ])("detects %s and names the first broken link", (_what, tamper, seq) => {
    const events = log();
    tamper(events);
    const v = verifyChain(events);
    expect(v.ok).toBe(false);
    if (!v.ok) expect(v.seq).toBe(seq);
  });
});

describe("canonicalJson", () => {
  it("sorts keys, encodes Maps and drops undefined", () => {
    expect(canonicalJson({ b: 1, a: new Map([["z", 1], ["y", 2]]), c: undefined, d: [{ y: 1, x: 2 }] })).toBe(
      '{"a":{"y":2,"z":1},"b":1,"d":[{"x":2,"y":1}]}',
    );
  });
});
