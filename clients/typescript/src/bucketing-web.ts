/**
 * Returns the bucket 0..9999 of a key under a salt (bucketing spec v1) with WebCrypto.
 *
 * The same function as `bucket` from `rollgate-client`, for browsers and other runtimes without
 * node:crypto; asynchronous because `crypto.subtle.digest` is.
 */
export async function bucketAsync(salt: string, key: string): Promise<number> {
  const encoder = new TextEncoder();
  const s = encoder.encode(salt);
  const k = encoder.encode(key);
  const input = new Uint8Array(s.length + 1 + k.length);
  input.set(s, 0);
  input.set(k, s.length + 1);
  const digest = await globalThis.crypto.subtle.digest("SHA-256", input);
  return Number(new DataView(digest).getBigUint64(0, false) % 10_000n);
}
