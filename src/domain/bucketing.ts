import { hash } from "node:crypto";

/** Number of buckets in bucketing spec v1: weights are in basis points of 10,000. */
export const BUCKETS = 10_000;

/** Maximum key length in UTF-8 bytes. */
export const MAX_KEY_BYTES = 1024;

// 2^32 mod 10000: lets us reduce the 64-bit prefix with two 32-bit halves and no BigInt.
const TWO_POW_32_MOD = 4_294_967_296 % BUCKETS;

/**
 * Returns the bucket 0..9999 of a key under a salt (bucketing spec v1).
 *
 * h = SHA-256(utf8(salt) || 0x00 || utf8(key)); bucket = uint64_be(h[0..8]) mod 10000.
 * (hi·2³² + lo) mod n = ((hi mod n)·(2³² mod n) + lo) mod n keeps every intermediate below 2⁵³.
 */
export function bucketOf(salt: string, key: string): number {
  // A "binary" (latin1) string, one char per digest byte, spares the fresh Buffer that "buffer" output
  // allocates on every call: ~0.35 µs instead of ~0.9 µs per key.
  const h = hash("sha256", salt + "\0" + key, "binary");
  const hi = ((h.charCodeAt(0) << 24) | (h.charCodeAt(1) << 16) | (h.charCodeAt(2) << 8) | h.charCodeAt(3)) >>> 0;
  const lo = ((h.charCodeAt(4) << 24) | (h.charCodeAt(5) << 16) | (h.charCodeAt(6) << 8) | h.charCodeAt(7)) >>> 0;
  return ((hi % BUCKETS) * TWO_POW_32_MOD + lo) % BUCKETS;
}

/** Returns true when a bucket is routed to the canary at a weight in basis points. */
export function isCanaryBucket(bucket: number, weightBp: number): boolean {
  return bucket < weightBp;
}

/** Returns the UTF-8 length of a string without encoding it. */
export function utf8Length(s: string): number {
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) n += 1;
    else if (c < 0x800) n += 2;
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length) {
      const d = s.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) {
        n += 4;
        i++;
      } else n += 3;
    } else n += 3;
  }
  return n;
}

/**
 * Returns the problem with a routing key, or undefined when it is a valid 1..1024-byte key.
 * Short keys are accepted without counting bytes: k UTF-16 units encode to at most 3k bytes.
 */
export function keyProblem(key: string): string | undefined {
  if (key.length === 0) return "must not be empty";
  if (key.length * 3 <= MAX_KEY_BYTES) return undefined;
  if (key.length > MAX_KEY_BYTES || utf8Length(key) > MAX_KEY_BYTES) {
    return `must be at most ${MAX_KEY_BYTES} bytes of UTF-8`;
  }
  return undefined;
}
