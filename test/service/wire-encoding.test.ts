import { toBinary } from "@bufbuild/protobuf";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import * as m from "../../src/domain/rollout-machine.js";
import type { Rollout } from "../../src/domain/rollout.js";
import { compileRoutes, route } from "../../src/domain/routing.js";
import { routeToProto } from "../../src/service/convert.js";
import { encodeHealthUpdate, encodeRouteBatch, encodeRouteResponse, encodeRouteResponseJson } from "../../src/service/wire-encoding.js";
import { RouteBatchResponseSchema, RouteResponseSchema } from "../../gen/rollgate/v1/decision_service_pb.js";
import { create, toJsonString } from "@bufbuild/protobuf";
import { rolloutFixture } from "../helpers/rollouts.js";

const actor = { name: "t", now: Date.UTC(2026, 0, 2) };

/** Rollouts in every stage, with features, overrides, versions and weights drawn at random. */
const rollouts = fc
  .record({
    stage: fc.constantFrom("canary", "staging", "production", "rolled_back", "halted"),
    weight: fc.integer({ min: 0, max: 10000 }),
    features: fc.array(fc.tuple(fc.stringMatching(/^[a-z][a-z0-9-]{0,20}$/), fc.boolean()), { maxLength: 4 }),
    overrides: fc.array(fc.tuple(fc.string({ minLength: 1, maxLength: 20 }), fc.constantFrom("stable" as const, "canary" as const)), { maxLength: 3 }),
    stable: fc.string({ minLength: 1, maxLength: 200 }),
    canary: fc.string({ minLength: 1, maxLength: 40 }),
    bumps: fc.integer({ min: 0, max: 300 }),
  })
  .map((x) => {
    let r: Rollout = rolloutFixture({ stableVersion: x.stable, canaryVersion: x.canary });
    r = m.setWeight(r, x.weight, actor).rollout;
    for (const [f, on] of x.features) r = m.setFeature(r, f, on, actor).rollout;
    for (const [k, v] of x.overrides) r = m.setOverride(r, k, v, actor).rollout;
    if (x.stage === "staging") r = m.promote(r, "staging", actor).rollout;
    if (x.stage === "production") r = m.promote(r, "production", actor).rollout;
    if (x.stage === "rolled_back") r = m.rollback(r, actor).rollout;
    if (x.stage === "halted") r = m.halt(r, actor).rollout;
    return { ...r, version: r.version + x.bumps * 1000 };
  });

describe("hand-written Route wire encoding", () => {
  it("writes exactly what protobuf-es toBinary writes, for Route and RouteBatch", () => {
    fc.assert(
      fc.property(rollouts, fc.array(fc.string({ minLength: 1, maxLength: 30 }), { minLength: 1, maxLength: 50 }), (r, keys) => {
        const table = compileRoutes(r);
        const all = [...keys, ...r.overrides.keys()];
        for (const k of all) {
          expect(encodeRouteResponse(table, route(table, k))).toEqual(toBinary(RouteResponseSchema, routeToProto(route(table, k))));
        }
        const counts = { stable: 0, canary: 0 };
        const batch = encodeRouteBatch(table, all, counts);
        const expected = toBinary(RouteBatchResponseSchema, create(RouteBatchResponseSchema, { results: all.map((k) => routeToProto(route(table, k))) }));
        expect(batch).toEqual(expected);
        expect(counts.stable + counts.canary).toBe(all.length);
        expect(counts.canary).toBe(all.filter((k) => route(table, k).variant === "canary").length);
      }),
      { numRuns: 300 },
    );
  });
});

describe("hand-written Route JSON", () => {
  it("writes exactly what protobuf-es toJsonString writes, bucket 0 included", () => {
    fc.assert(
      fc.property(rollouts, fc.array(fc.string({ minLength: 1, maxLength: 30 }), { minLength: 1, maxLength: 50 }), (r, keys) => {
        const table = compileRoutes(r);
        for (const k of [...keys, ...r.overrides.keys()]) {
          const d = route(table, k);
          expect(encodeRouteResponseJson(table, d)).toBe(toJsonString(RouteResponseSchema, routeToProto(d)));
          const zero = { ...d, bucket: 0 };
          expect(encodeRouteResponseJson(table, zero)).toBe(toJsonString(RouteResponseSchema, routeToProto(zero)));
        }
      }),
      { numRuns: 300 },
    );
  });
});

describe("hand-written HealthUpdate encoding", () => {
  it("writes exactly what toBinary writes", async () => {
    const { HealthUpdateSchema } = await import("../../gen/rollgate/v1/decision_service_pb.js");
    const { RolloutHealthSchema } = await import("../../gen/rollgate/v1/health_pb.js");
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 2 ** 40 }), fc.boolean(), fc.string(), fc.double({ min: 0, max: 1, noNaN: true }), (seq, deleted, name, score) => {
        const health = create(RolloutHealthSchema, { rollout: name, score });
        const bytes = encodeHealthUpdate(seq, toBinary(RolloutHealthSchema, health), deleted);
        expect(bytes).toEqual(toBinary(HealthUpdateSchema, create(HealthUpdateSchema, { seq: BigInt(seq), health, deleted })));
      }),
    );
  });

  it("leaves the headroom asked for before the same bytes (the gRPC path writes its frame header there)", async () => {
    const { HealthUpdateSchema } = await import("../../gen/rollgate/v1/decision_service_pb.js");
    const { RolloutHealthSchema } = await import("../../gen/rollgate/v1/health_pb.js");
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 2 ** 53 - 1 }), fc.boolean(), fc.string(), fc.integer({ min: 0, max: 8 }), (seq, deleted, name, headroom) => {
        const health = create(RolloutHealthSchema, { rollout: name });
        const bytes = encodeHealthUpdate(seq, toBinary(RolloutHealthSchema, health), deleted, headroom);
        expect(bytes.subarray(headroom)).toEqual(toBinary(HealthUpdateSchema, create(HealthUpdateSchema, { seq: BigInt(seq), health, deleted })));
      }),
    );
  });
});
