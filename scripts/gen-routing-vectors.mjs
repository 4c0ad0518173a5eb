#!/usr/bin/env node
// Writes vectors/routing-v1.json: the routing spec v1 vectors, shared by the server's and every
// client's tests. Each case is (RouteState in proto JSON, key) → the RouteResponse the server's
// Route gives, computed here by the server's own routing code (src/domain/routing.ts, built into
// dist/ by `npx tsc -b`). test/domain/routing-vectors.test.ts rebuilds the file from the same
// cases with src/domain/routing.ts and fails when it is stale.
//
//   npx tsc -b && node scripts/gen-routing-vectors.mjs
import { writeFileSync } from "node:fs";
import { pathToFileURL } from "node:url";

const STAGES = {
  STAGE_CANARY: "canary",
  STAGE_STAGING: "staging",
  STAGE_PRODUCTION: "production",
  STAGE_ROLLED_BACK: "rolled_back",
  STAGE_HALTED: "halted",
};
const VARIANTS = { VARIANT_STABLE: "stable", VARIANT_CANARY: "canary" };
const REASONS = {
  weight: "ROUTE_REASON_WEIGHT",
  override: "ROUTE_REASON_OVERRIDE",
  stage: "ROUTE_REASON_STAGE",
  rolled_back: "ROUTE_REASON_ROLLED_BACK",
  halted: "ROUTE_REASON_HALTED",
};

/** Returns the domain rollout (the fields routing reads) of a RouteState in proto JSON. */
export function rolloutOfState(s) {
  return {
    name: s.rollout,
    version: Number(s.rolloutVersion ?? 0),
    stage: STAGES[s.stage],
    weightBp: s.weightBp ?? 0,
    salt: s.salt ?? "",
    stableVersion: s.stableVersion ?? "",
    canaryVersion: s.canaryVersion ?? "",
    features: new Map(Object.entries(s.features ?? {})),
    overrides: new Map(Object.entries(s.overrides ?? {}).map(([k, v]) => [k, VARIANTS[v]])),
  };
}

/** Returns a RouteDecision of src/domain/routing.ts as RouteResponse proto JSON (defaults included). */
export function responseOfDecision(d) {
  return {
    variant: d.variant === "canary" ? "VARIANT_CANARY" : "VARIANT_STABLE",
    version: d.version,
    bucket: d.bucket,
    weightBp: d.weightBp,
    features: [...d.features],
    reason: REASONS[d.reason],
    rolloutVersion: d.rolloutVersion,
  };
}

const FEATURES_MIXED = { "new-checkout": true, "dark-mode": false, "beta-banner": true, "ünïcødé-flag": false };
const FEATURES_OFF = { "new-checkout": false, "dark-mode": false };
const OVERRIDES = {
  "override-canary": "VARIANT_CANARY",
  "override-stable": "VARIANT_STABLE",
  "ключ-override-🚀": "VARIANT_CANARY",
};
const KEYS = [
  "user-1", "user-2", "user-3", "user-12345", "tenant-42", "x", "0", " ", "~",
  "ключ-🚀", "日本語キー", "مفتاح", "emoji-👩‍💻-zwj", "e\u0301-combining", "key with spaces",
  "a".repeat(1024), "é".repeat(512), "€".repeat(341) + "a", "🚀".repeat(256),
  "00000000-0000-0000-0000-000000000000",
  ...Array.from({ length: 12 }, (_, i) => `req-${i * 7919}`),
  ...Object.keys(OVERRIDES),
];

const state = (name, stage, weightBp, extra = {}) => ({
  rollout: name,
  rolloutVersion: extra.rolloutVersion ?? 7,
  stage,
  weightBp,
  salt: extra.salt ?? name,
  stableVersion: extra.stableVersion ?? "v1.4.2",
  canaryVersion: extra.canaryVersion ?? "v1.5.0-rc.1",
  features: extra.features ?? FEATURES_MIXED,
  overrides: extra.overrides ?? OVERRIDES,
});

/** The route states of the vectors: every stage, with and without overrides and features. */
function states() {
  const out = [];
  for (const w of [0, 1, 500, 2500, 5000, 9999, 10000]) out.push(state(`checkout-w${w}`, "STAGE_CANARY", w, { rolloutVersion: 3 + w }));
  out.push(state("checkout-no-overrides", "STAGE_CANARY", 5000, { overrides: {} }));
  out.push(state("checkout-features-off", "STAGE_CANARY", 5000, { features: FEATURES_OFF }));
  out.push(state("checkout-no-features", "STAGE_CANARY", 2500, { features: {} }));
  out.push(state("checkout-salted", "STAGE_CANARY", 5000, { salt: "sälz-ß-🧂", rolloutVersion: 12 }));
  out.push(state("checkout-long-salt", "STAGE_CANARY", 2500, { salt: "long-" + "s".repeat(250) }));
  for (const [stage, tag] of [
    ["STAGE_STAGING", "staging"],
    ["STAGE_PRODUCTION", "production"],
    ["STAGE_ROLLED_BACK", "rolled-back"],
    ["STAGE_HALTED", "halted"],
  ]) {
    // The stored weight is not what routes outside CANARY: the stage decides.
    out.push(state(`search-${tag}`, stage, 2500, { rolloutVersion: 40 }));
    out.push(state(`search-${tag}-no-overrides`, stage, 10000, { overrides: {}, features: FEATURES_OFF }));
    out.push(state(`search-${tag}-salted`, stage, 0, { salt: "tenant_rollout-9", features: {} }));
  }
  return out;
}

/** Returns the cases (state, key) of the vectors, in file order. */
export function routingCases(bucketOf) {
  const cases = [];
  for (const s of states()) for (const key of KEYS) cases.push({ state: s, key });
  // Rows right on a bucket boundary: weight == bucket is stable, weight == bucket + 1 is canary.
  for (const key of ["user-1", "a".repeat(1024), "🚀".repeat(256), "tenant-42"]) {
    const b = bucketOf("boundary", key);
    for (const w of [b, b + 1]) {
      cases.push({ state: state(`boundary-${w}`, "STAGE_CANARY", Math.min(w, 10000), { salt: "boundary", overrides: {} }), key });
    }
  }
  return cases;
}

export const SPEC = [
  "rollgate routing spec v1 (docs: vectors/README.md). bucket = bucketing spec v1 of (salt, key).",
  "Overrides apply only in STAGE_CANARY and STAGE_STAGING, and beat the stage and the weight (reason OVERRIDE).",
  "STAGE_CANARY: canary iff bucket < weight_bp (reason WEIGHT); effective weight = weight_bp; canary keys get the enabled features, sorted; stable keys get none.",
  "STAGE_STAGING: everyone canary (reason STAGE), effective weight 10000; canary keys get every feature named (on or off), sorted; stable (overridden) keys none.",
  "STAGE_PRODUCTION: everyone stable (reason STAGE), effective weight 0, every key gets the enabled features, sorted; overrides ignored.",
  "STAGE_ROLLED_BACK / STAGE_HALTED: everyone stable (reason ROLLED_BACK / HALTED), effective weight 0, no features; overrides ignored.",
  "version = canary_version for canary, stable_version for stable; rollout_version = the state's rollout_version.",
].join(" ");

/** Returns the vectors file's content, computed with the given routing functions. */
export function buildRoutingVectors({ compileRoutes, route, bucketOf }) {
  const vectors = routingCases(bucketOf).map(({ state: s, key }) => ({
    state: s,
    key,
    want: responseOfDecision(route(compileRoutes(rolloutOfState(s)), key)),
  }));
  return {
    spec: SPEC,
    format:
      "{ spec, format, vectors: [{ state: RouteState (proto JSON names; enums by name; uint64 as a JSON number), key, want: RouteResponse (proto JSON names, every field present, features in order) }] }",
    vectors,
  };
}

/** The file's text, as written (one line per vector keeps diffs readable). */
export function renderRoutingVectors(content) {
  const rows = content.vectors.map((v) => "  " + JSON.stringify(v));
  return `{\n "spec": ${JSON.stringify(content.spec)},\n "format": ${JSON.stringify(content.format)},\n "vectors": [\n${rows.join(",\n")}\n ]\n}\n`;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  const routing = await import(new URL("../dist/src/domain/routing.js", import.meta.url).href);
  const bucketing = await import(new URL("../dist/src/domain/bucketing.js", import.meta.url).href);
  const content = buildRoutingVectors({ compileRoutes: routing.compileRoutes, route: routing.route, bucketOf: bucketing.bucketOf });
  writeFileSync(new URL("../vectors/routing-v1.json", import.meta.url), renderRoutingVectors(content));
  console.log(`wrote ${content.vectors.length} routing vectors`);
}
