import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { bucketOf } from "../../src/domain/bucketing.js";
import { halt, promote, rollback, setFeature, setOverride, setWeight } from "../../src/domain/rollout-machine.js";
import type { Rollout } from "../../src/domain/rollout.js";
import { compileRoutes, route } from "../../src/domain/routing.js";
import { rolloutFixture } from "../helpers/rollouts.js";

const actor = { name: "op", now: Date.UTC(2026, 0, 2) };
const at = (r: Rollout, key: string) => route(compileRoutes(r), key);

describe("route", () => {
  it("routes by bucket against the step weight in CANARY", () => {
    const r = rolloutFixture();
    for (let i = 0; i < 500; i++) {
      const key = `user-${i}`;
      const d = at(r, key);
      const bucket = bucketOf("checkout", key);
      expect(d.bucket).toBe(bucket);
      expect(d.variant).toBe(bucket < 500 ? "canary" : "stable");
      expect(d.version).toBe(d.variant === "canary" ? "v2" : "v1");
      expect(d.reason).toBe("weight");
      expect(d.weightBp).toBe(500);
      expect(d.rolloutVersion).toBe(1);
    }
  });

  it("uses the salt, not the name, when they differ", () => {
    const r = rolloutFixture({ salt: "other-salt" });
    expect(at(r, "k").bucket).toBe(bucketOf("other-salt", "k"));
  });

  it("checks overrides first in CANARY and STAGING", () => {
    let r = rolloutFixture();
    const key = [...Array(1000).keys()].map((i) => `k${i}`).find((k) => bucketOf("checkout", k) >= 500)!;
    expect(at(r, key).variant).toBe("stable");
    r = setOverride(r, key, "canary", actor).rollout;
    expect(at(r, key)).toMatchObject({ variant: "canary", version: "v2", reason: "override" });
    r = setOverride(promote(r, "staging", actor).rollout, key, "stable", actor).rollout;
    expect(at(r, key)).toMatchObject({ variant: "stable", version: "v1", reason: "override" });
    expect(at(r, "someone-else")).toMatchObject({ variant: "canary", reason: "stage", weightBp: 10000 });
  });

  it("sends everyone to the canary with every feature in STAGING", () => {
    let r = setFeature(rolloutFixture(), "new-ui", false, actor).rollout;
    r = setFeature(r, "fast-cart", true, actor).rollout;
    r = promote(r, "staging", actor).rollout;
    const d = at(r, "anyone");
    expect(d).toMatchObject({ variant: "canary", version: "v2", reason: "stage" });
    expect(d.features).toEqual(["fast-cart", "new-ui"]);
  });

  it("sends everyone to the new stable in PRODUCTION, overrides ignored", () => {
    let r = setFeature(rolloutFixture(), "fast-cart", true, actor).rollout;
    r = setOverride(r, "pinned", "canary", actor).rollout;
    r = promote(r, "production", actor).rollout;
    for (const key of ["pinned", "a", "b"]) {
      expect(at(r, key)).toMatchObject({ variant: "stable", version: "v2", reason: "stage", weightBp: 0, features: ["fast-cart"] });
    }
  });

  it("kill switch: a halted or rolled-back rollout routes everyone to stable with no features, overrides included", () => {
    let r = setFeature(rolloutFixture(), "fast-cart", true, actor).rollout;
    r = setOverride(setWeight(r, 10000, actor).rollout, "pinned", "canary", actor).rollout;
    const halted = halt(r, actor).rollout;
    const rolledBack = rollback(r, actor).rollout;
    for (const key of ["pinned", "x", "y"]) {
      expect(at(halted, key)).toMatchObject({ variant: "stable", version: "v1", reason: "halted", weightBp: 0, features: [] });
      expect(at(rolledBack, key)).toMatchObject({ variant: "stable", reason: "rolled_back", features: [] });
    }
  });

  it("gives canary keys the enabled features and stable keys none; disabling reverts everyone", () => {
    let r = setWeight(rolloutFixture(), 10000, actor).rollout;
    r = setFeature(r, "b", true, actor).rollout;
    r = setFeature(r, "a", true, actor).rollout;
    expect(at(r, "k").features).toEqual(["a", "b"]);
    r = setFeature(r, "a", false, actor).rollout;
    expect(at(r, "k").features).toEqual(["b"]);
    r = setWeight(r, 0, actor).rollout;
    expect(at(r, "k").features).toEqual([]);
  });

  it("is sticky and monotonic as the weight ramps up", () => {
    fc.assert(
      fc.property(fc.array(fc.string({ minLength: 1, maxLength: 40 }), { minLength: 1, maxLength: 50 }), fc.integer({ min: 0, max: 9999 }), (keys, w) => {
        const lo = setWeight(rolloutFixture(), w, actor).rollout;
        const hi = setWeight(lo, Math.min(10000, w + 1 + (w % 977)), actor).rollout;
        for (const k of keys) {
          if (at(lo, k).variant === "canary") expect(at(hi, k).variant).toBe("canary");
          expect(at(lo, k).variant).toBe(at(lo, k).variant);
        }
      }),
    );
  });
});
