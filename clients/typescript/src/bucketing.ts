import { createHash } from "node:crypto";
import { BUCKETS } from "./buckets.js";

/**
 * Returns the bucket 0..9999 of a key under a salt (bucketing spec v1), synchronously.
 *
 * h = SHA-256(utf8(salt) || 0x00 || utf8(key)); bucket = uint64_be(h[0..8]) mod 10000.
 * Uses node:crypto; in a browser use `bucketAsync` from `rollgate-client/web` (WebCrypto is async).
 */
export function bucket(salt: string, key: string): number {
  const h = createHash("sha256").update(salt, "utf8").update(new Uint8Array([0])).update(key, "utf8").digest();
  return Number(h.readBigUInt64BE(0) % BigInt(BUCKETS));
}
