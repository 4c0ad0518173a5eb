import { existsSync, readFileSync } from "node:fs";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { BUCKETS, bucketOf, isCanaryBucket, keyProblem, utf8Length } from "../../src/domain/bucketing.js";

interface Vector {
  salt: string;
  key: string;
  bucket: number;
  weight_bp: number;
  variant: "VARIANT_STABLE" | "VARIANT_CANARY";
}
const load = (path: string): Vector[] => (JSON.parse(readFileSync(path, "utf8")) as { vectors: Vector[] }).vectors;
const root = new URL("../../", import.meta.url).pathname;
const reference = load(`${root}vectors/reference/bucketing-v1-vectors.json`);
const project = load(`${root}vectors/bucketing-v1.json`);

describe("bucketing spec v1", () => {
  it.each([
    ["reference", reference],
    ["project", project],
  ])("agrees with every %s vector", (_name, vectors) => {
    expect(vectors.length).toBeGreaterThanOrEqual(200);
    for (const v of vectors) {
      const b = bucketOf(v.salt, v.key);
      expect({ key: v.key, bucket: b }).toEqual({ key: v.key, bucket: v.bucket });
      expect(isCanaryBucket(b, v.weight_bp) ? "VARIANT_CANARY" : "VARIANT_STABLE").toBe(v.variant);
    }
  });

  it("ships a copy of the reference identical to ../shared when it is present", () => {
    const shared = `${root}../shared/bucketing-v1-vectors.json`;
    if (!existsSync(shared)) return;
    expect(load(shared)).toEqual(reference);
  });

  it("project vectors cover the edge cases clients must handle", () => {
    const bytes = project.map((v) => Buffer.byteLength(v.key));
    expect(Math.min(...bytes)).toBe(1);
    expect(Math.max(...bytes)).toBe(1024);
    expect(project.some((v) => /[^\u0000-\u007f]/.test(v.key))).toBe(true);
    for (const w of [0, 1, 9999, 10000]) expect(project.some((v) => v.weight_bp === w)).toBe(true);
  });

  it("is in range and deterministic for any salt and key", () => {
    fc.assert(
      fc.property(fc.string({ unit: "grapheme" }), fc.string({ unit: "grapheme", minLength: 1 }), (salt, key) => {
        const b = bucketOf(salt, key);
        expect(Number.isInteger(b)).toBe(true);
        expect(b).toBeGreaterThanOrEqual(0);
        expect(b).toBeLessThan(BUCKETS);
        expect(bucketOf(salt, key)).toBe(b);
      }),
      { numRuns: 2000 },
    );
  });

  it("matches a BigInt reduction of the digest for random inputs", async () => {
    const { createHash } = await import("node:crypto");
    fc.assert(
      fc.property(fc.string(), fc.string({ minLength: 1 }), (salt, key) => {
        const hex = createHash("sha256").update(`${salt}\0${key}`, "utf8").digest("hex");
        expect(bucketOf(salt, key)).toBe(Number(BigInt(`0x${hex.slice(0, 16)}`) % 10000n));
      }),
      { numRuns: 2000 },
    );
  });

  it("is monotonic: raising the weight only moves keys from stable to canary", () => {
    fc.assert(
      fc.property(
        fc.string({ minLength: 1 }),
        fc.integer({ min: 0, max: 10000 }),
        fc.integer({ min: 0, max: 10000 }),
        (key, a, b) => {
          const [lo, hi] = a <= b ? [a, b] : [b, a];
          const bucket = bucketOf("monotonic", key);
          if (isCanaryBucket(bucket, lo)) expect(isCanaryBucket(bucket, hi)).toBe(true);
          if (!isCanaryBucket(bucket, hi)) expect(isCanaryBucket(bucket, lo)).toBe(false);
        },
      ),
    );
  });

  it("sends nobody to the canary at weight 0 and everybody at 10000", () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: BUCKETS - 1 }), (b) => {
        expect(isCanaryBucket(b, 0)).toBe(false);
        expect(isCanaryBucket(b, 10000)).toBe(true);
      }),
    );
  });

  it("spreads keys evenly over buckets", () => {
    const counts = new Array(10).fill(0) as number[];
    for (let i = 0; i < 20000; i++) counts[Math.floor(bucketOf("spread", `k${i}`) / 1000)]! += 1;
    for (const c of counts) {
      expect(c).toBeGreaterThan(1800);
      expect(c).toBeLessThan(2200);
    }
  });
});

describe("keys", () => {
  it("counts UTF-8 bytes like Buffer.byteLength", () => {
    fc.assert(
      fc.property(fc.string({ unit: "binary" }), (s) => {
        expect(utf8Length(s)).toBe(Buffer.byteLength(s, "utf8"));
      }),
    );
  });

  it.each([
    ["empty", "", "must not be empty"],
    ["1025 ASCII bytes", "a".repeat(1025), "must be at most 1024 bytes of UTF-8"],
    ["1026 bytes of 2-byte characters", "é".repeat(513), "must be at most 1024 bytes of UTF-8"],
    ["1028 bytes of emoji", "🚀".repeat(257), "must be at most 1024 bytes of UTF-8"],
  ])("rejects a key: %s", (_what, key, problem) => {
    expect(keyProblem(key)).toBe(problem);
  });

  it.each([
    ["1 byte", "a"],
    ["1024 ASCII bytes", "a".repeat(1024)],
    ["1024 bytes of 2-byte characters", "é".repeat(512)],
    ["1024 bytes of emoji", "🚀".repeat(256)],
    ["1024 bytes of 3-byte characters and one ASCII", "€".repeat(341) + "a"],
  ])("accepts a key: %s", (_what, key) => {
    expect(keyProblem(key)).toBeUndefined();
  });
});
