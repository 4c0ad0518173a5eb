import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { bucketOf } from "../../src/domain/bucketing.js";
import { compileRoutes, route } from "../../src/domain/routing.js";

interface Generator {
  rolloutOfState(s: unknown): Parameters<typeof compileRoutes>[0];
  responseOfDecision(d: unknown): unknown;
  buildRoutingVectors(fns: { compileRoutes: typeof compileRoutes; route: typeof route; bucketOf: typeof bucketOf }): unknown;
  renderRoutingVectors(content: unknown): string;
}
interface Vector {
  state: { stage: string; weightBp: number; salt: string; features: Record<string, boolean>; overrides: Record<string, string> };
  key: string;
  want: { variant: string; reason: string; weightBp: number; features: string[] };
}

const root = new URL("../../", import.meta.url);
const text = readFileSync(new URL("vectors/routing-v1.json", root), "utf8");
const vectors = (JSON.parse(text) as { vectors: Vector[] }).vectors;
const generatorPath = new URL("scripts/gen-routing-vectors.mjs", root).href;
const gen = (await import(generatorPath)) as Generator;

describe("routing spec v1 vectors", () => {
  it("agree with src/domain/routing.ts for every vector", () => {
    expect(vectors.length).toBeGreaterThanOrEqual(500);
    for (const v of vectors) {
      const got = gen.responseOfDecision(route(compileRoutes(gen.rolloutOfState(v.state)), v.key));
      expect({ rollout: v.state, key: v.key, got }).toEqual({ rollout: v.state, key: v.key, got: v.want });
    }
  });

  it("are fresh: regenerating them with src/domain/routing.ts gives the committed file", () => {
    const content = gen.buildRoutingVectors({ compileRoutes, route, bucketOf });
    // Run `npx tsc -b && node scripts/gen-routing-vectors.mjs` and commit when this fails.
    expect(gen.renderRoutingVectors(content) === text).toBe(true);
  });

  it("cover every stage, overrides in each, weights 0 and 10000, features on and off, edge keys, custom salts", () => {
    const stages = ["STAGE_CANARY", "STAGE_STAGING", "STAGE_PRODUCTION", "STAGE_ROLLED_BACK", "STAGE_HALTED"];
    for (const stage of stages) {
      const of = vectors.filter((v) => v.state.stage === stage);
      expect(of.length, stage).toBeGreaterThan(50);
      expect(of.some((v) => Object.keys(v.state.overrides).includes(v.key)), stage).toBe(true);
      expect(of.some((v) => v.state.salt !== (v.state as unknown as { rollout: string }).rollout), stage).toBe(true);
    }
    const reasons = new Set(vectors.map((v) => v.want.reason));
    for (const r of ["WEIGHT", "OVERRIDE", "STAGE", "ROLLED_BACK", "HALTED"]) expect(reasons.has(`ROUTE_REASON_${r}`)).toBe(true);
    for (const w of [0, 10000]) expect(vectors.some((v) => v.state.stage === "STAGE_CANARY" && v.state.weightBp === w)).toBe(true);
    expect(vectors.some((v) => v.want.features.length > 0)).toBe(true);
    expect(vectors.some((v) => v.want.variant === "VARIANT_CANARY" && v.want.features.length === 0)).toBe(true);
    expect(vectors.some((v) => Object.values(v.state.features).includes(false))).toBe(true);
    const bytes = vectors.map((v) => Buffer.byteLength(v.key));
    expect(Math.max(...bytes)).toBe(1024);
    expect(Math.min(...bytes)).toBe(1);
    expect(vectors.some((v) => /[^\u0000-\u007f]/.test(v.key))).toBe(true);
  });
});
