#!/usr/bin/env node
// Writes vectors/bucketing-v1.json: the project's bucketing test vectors, shared by the server's
// and every client's tests. Computed here with BigInt arithmetic on the hex digest, a code path
// independent of src/domain/bucketing.ts (which reduces two 32-bit halves instead).
import { createHash } from "node:crypto";
import { writeFileSync } from "node:fs";

const bucket = (salt, key) => {
  const hex = createHash("sha256").update(Buffer.concat([Buffer.from(salt, "utf8"), Buffer.from([0]), Buffer.from(key, "utf8")])).digest("hex");
  return Number(BigInt("0x" + hex.slice(0, 16)) % 10000n);
};

const salts = ["checkout-v2", "search", "payments.api", "a", "ünïcødé-salt", "tenant_rollout-9", "feature.flag:v3", "sälz-ß-🧂", "long-" + "s".repeat(250)];
const keys = [
  "user-1", "user-2", "user-12345", "tenant-42", "x", "0", " ", "\t", "~",
  "ключ-🚀", "日本語キー", "مفتاح", "emoji-👩‍💻-zwj", "e\u0301-combining", "𝔘𝔫𝔦𝔠𝔬𝔡𝔢", "key with spaces",
  "a".repeat(1024), "é".repeat(512), "€".repeat(341) + "a", "🚀".repeat(256),
  "request-9f8e7d6c", "00000000-0000-0000-0000-000000000000", "UPPER-lower-123",
];
const weights = [0, 1, 500, 2500, 5000, 9999, 10000];
const vectors = [];
let i = 0;
for (const salt of salts) {
  for (const key of keys) {
    const b = bucket(salt, key);
    // Cycle through the fixed weights, and put every third row right on the bucket boundary
    // (weight == bucket is stable, weight == bucket + 1 is canary).
    const w = i % 3 === 2 ? Math.min(b + (i % 2), 10000) : weights[i % weights.length];
    vectors.push({ salt, key, bucket: b, weight_bp: w, variant: b < w ? "VARIANT_CANARY" : "VARIANT_STABLE" });
    i++;
  }
}
for (const w of [0, 1, 9999, 10000]) {
  for (const key of ["user-1", "a".repeat(1024), "🚀".repeat(256), "z"]) {
    const b = bucket("edge-weights", key);
    vectors.push({ salt: "edge-weights", key, bucket: b, weight_bp: w, variant: b < w ? "VARIANT_CANARY" : "VARIANT_STABLE" });
  }
}
const out = {
  spec: "rollgate bucketing v1: bucket = uint64_be(SHA-256(utf8(salt) || 0x00 || utf8(key))[0..8]) mod 10000; canary iff bucket < weight_bp",
  vectors,
};
writeFileSync(new URL("../vectors/bucketing-v1.json", import.meta.url), JSON.stringify(out, null, 1) + "\n");
console.log(`wrote ${vectors.length} vectors`);
