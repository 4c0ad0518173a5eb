/**
 * Returns a canonical JSON encoding of a plain value: object keys sorted, Maps encoded as
 * objects with sorted keys, undefined members dropped, no whitespace.
 *
 * Two equal configurations always encode to the same bytes, so their SHA-256 can serve as a
 * fingerprint and as hash-chain input.
 */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(normalise(value));
}

function normalise(value: unknown): unknown {
  if (value instanceof Map) {
    return normalise(Object.fromEntries([...value.entries()].map(([k, v]) => [String(k), v])));
  }
  if (Array.isArray(value)) return value.map(normalise);
  if (typeof value === "bigint") return value.toString();
  if (value !== null && typeof value === "object") {
    const out: Record<string, unknown> = {};
    for (const k of Object.keys(value).sort()) {
      const v = (value as Record<string, unknown>)[k];
      if (v !== undefined) out[k] = normalise(v);
    }
    return out;
  }
  return value;
}
