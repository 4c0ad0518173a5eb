import fc from "fast-check";
import { describe, expect, it } from "vitest";
import type { AuditEvent } from "../../src/domain/audit-chain.js";
import { globToRegExp, parseDuration, parseNotifyConfig } from "../../src/service/notify-config.js";
import { backoffMs, deliveryId, jsonBody, retryable, signature, slackBody, wants } from "../../src/service/notify.js";

const event = (over: Partial<AuditEvent> = {}): AuditEvent => ({
  seq: 7,
  timeNs: 1_767_225_600_123_456_789n,
  rollout: "cart-eu",
  type: "halted",
  actor: "alertmanager",
  reason: "p99 <1s> & rising",
  fingerprint: "f".repeat(64),
  snapshot: JSON.stringify({ summary: "halted", stage: "halted", weight_bp: 0, version: 3, gates: [] }),
  prevHash: "",
  hash: "0123456789abcdef".repeat(4),
  ...over,
});

describe("notification bodies", () => {
  it("carry the event, its snapshot, its version and the dashboard link", () => {
    expect(jsonBody(event(), "https://rg.example.com/")).toEqual({
      id: "7-0123456789abcdef",
      type: "halted",
      rollout: "cart-eu",
      seq: 7,
      time: "2026-01-01T00:00:00.123Z",
      actor: "alertmanager",
      reason: "p99 <1s> & rising",
      version: 3,
      snapshot: { summary: "halted", stage: "halted", weight_bp: 0, version: 3, gates: [] },
      hash: "0123456789abcdef".repeat(4),
      links: { dashboard: "https://rg.example.com/ui/rollouts/cart-eu" },
    });
    expect(deliveryId(event())).toBe("7-0123456789abcdef");
  });

  it("escape Slack's control characters in mrkdwn, not in the plain-text fallback", () => {
    const m = slackBody(event(), "https://rg.example.com");
    expect(m.text).toBe("cart-eu: halted by alertmanager — p99 <1s> & rising");
    expect(JSON.stringify(m.blocks)).toContain("p99 &lt;1s&gt; &amp; rising");
    expect(JSON.stringify(m.blocks)).not.toContain("<1s>");
  });

  it("are signed over the timestamp, a dot and the body", () => {
    // HMAC-SHA256("secret-0123456789", "1700000000.{}"), computed independently with openssl.
    expect(signature("secret-0123456789", "1700000000", "{}")).toBe("sha256=b7655868de19efd018ff7adc10c58afaa3b1647f9ba5875a5e89d7e846c59c68");
    expect(signature("secret-0123456789", "1700000000", "{}")).not.toBe(signature("secret-0123456789", "1700000001", "{}"));
  });
});

describe("delivery rules", () => {
  it("back off exponentially up to the cap, each wait between half and all of it", () => {
    const w = { backoffInitialMs: 1000, backoffMaxMs: 60_000 };
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 100 }), fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }), (n, r) => {
        const full = Math.min(60_000, 1000 * 2 ** (n - 1));
        const wait = backoffMs(w, n, () => r);
        return wait >= Math.floor(full / 2) && wait <= full;
      }),
    );
    expect([1, 2, 3, 4, 7, 8].map((n) => backoffMs(w, n, () => 0.999999))).toEqual([1000, 2000, 4000, 8000, 60_000, 60_000]);
  });

  it("retry 429 and 5xx only", () => {
    expect([200, 301, 400, 401, 404, 408, 429, 500, 502, 503].map(retryable)).toEqual([false, false, false, false, false, false, true, true, true, true]);
  });

  it("filter by event type and rollout glob", () => {
    const [w] = parseNotifyConfig(
      'webhooks: [{name: a, url: "http://x", events: [halted, rolled_back], rollouts: [checkout, "cart-*", "s?arch"], secret: "0123456789abcdef"}]',
      "f.yaml",
      {},
    );
    expect(wants(w!, event())).toBe(true);
    expect(wants(w!, event({ rollout: "cart" }))).toBe(false);
    expect(wants(w!, event({ rollout: "search" }))).toBe(true);
    expect(wants(w!, event({ rollout: "checkout", type: "paused" }))).toBe(false);
    expect(globToRegExp("a.b*").test("aXb")).toBe(false);
    expect(globToRegExp("a.b*").test("a.bcd")).toBe(true);
    const [all] = parseNotifyConfig('{"webhooks": [{"name": "a", "url": "https://x/y", "events": ["paused", "*"], "secret": "0123456789abcdef"}]}', "f.json", {});
    expect([all!.events, all!.rollouts, all!.format, all!.retryForMs, all!.timeoutMs, all!.queueSize]).toEqual([undefined, undefined, "json", 600_000, 5000, 1000]);
  });

  it("read durations in ms, s, m and h", () => {
    expect(["250ms", "1.5s", "10m", "1h", "10", "1d", "-1s"].map(parseDuration)).toEqual([250, 1500, 600_000, 3_600_000, undefined, undefined, undefined]);
  });
});
