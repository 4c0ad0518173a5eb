import { describe, expect, it } from "vitest";
import { BUCKETS, bucket, bucketAsync, isCanaryBucket } from "../src/index.js";
import { bucketAsync as webBucketAsync } from "../src/web.js";
import { VECTOR_FILES, readVectors } from "./vectors.js";

describe.each(VECTOR_FILES)("bucketing spec v1 against %s", (file) => {
  const vectors = readVectors(file);

  it("bucket(salt, key) reproduces every row, and bucket < weight_bp gives its variant", () => {
    for (const v of vectors) {
      const b = bucket(v.salt, v.key);
      expect({ salt: v.salt, key: v.key, bucket: b }).toEqual({ salt: v.salt, key: v.key, bucket: v.bucket });
      expect(isCanaryBucket(b, v.weight_bp) ? "VARIANT_CANARY" : "VARIANT_STABLE").toBe(v.variant);
    }
  });

  it("bucketAsync (WebCrypto, the browser entry) agrees with every row", async () => {
    for (const v of vectors) {
      expect(await bucketAsync(v.salt, v.key)).toBe(v.bucket);
      expect(await webBucketAsync(v.salt, v.key)).toBe(v.bucket);
    }
  });
});

describe("bucket", () => {
  it("stays within 0..9999 and depends on the salt", () => {
    const seen = new Set<number>();
    for (let i = 0; i < 2000; i++) {
      const b = bucket("range", `key-${i}`);
      expect(Number.isInteger(b) && b >= 0 && b < BUCKETS).toBe(true);
      seen.add(b);
    }
    expect(seen.size).toBeGreaterThan(1500);
    const moved = Array.from({ length: 50 }, (_, i) => `k${i}`).filter((k) => bucket("salt-a", k) !== bucket("salt-b", k));
    expect(moved.length).toBeGreaterThan(40);
  });
});
