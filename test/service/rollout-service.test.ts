import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { durationFromMs } from "../../src/service/convert.js";
import { Code, ConnectError } from "@connectrpc/connect";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { verifyChain } from "../../src/domain/audit-chain.js";
import { eventFromProto } from "../../src/service/convert.js";
import { AllowedTransitionsSchema, FieldViolationsSchema } from "../../gen/rollgate/v1/errors_pb.js";
import { EventType } from "../../gen/rollgate/v1/event_pb.js";
import { RolloutSchema, Stage, Variant } from "../../gen/rollgate/v1/rollout_pb.js";
import { PromoteTarget } from "../../gen/rollgate/v1/rollout_service_pb.js";
import { RouteReason } from "../../gen/rollgate/v1/decision_service_pb.js";
import { serviceEnv, type ServiceEnv } from "../helpers/service-env.js";

let env: ServiceEnv;
beforeEach(async () => {
  env = await serviceEnv();
});
afterEach(async () => {
  await env.close();
});

const rollout = (init: MessageInitShape<typeof RolloutSchema> = {}) =>
  create(RolloutSchema, { name: "checkout", stableVersion: "v1", canaryVersion: "v2", ...init });

async function codeOf(p: Promise<unknown>): Promise<ConnectError> {
  try {
    await p;
  } catch (e) {
    return ConnectError.from(e);
  }
  throw new Error("expected the call to fail");
}

describe("CreateRollout / GetRollout / ListRollouts", () => {
  it("creates with defaults: 5/25/50/100, analysis 5m/10s, salt = name", async () => {
    const { rollout: r } = await env.rollouts.createRollout({ rollout: rollout(), reason: "ship v2" });
    expect(r!.steps.map((s) => s.weightBp)).toEqual([500, 2500, 5000, 10000]);
    expect(r!).toMatchObject({ stage: Stage.CANARY, currentStep: 0, weightBp: 500, salt: "checkout", version: 1n, createdBy: "local" });
    expect(r!.analysis!.window!.seconds).toBe(300n);
    expect(r!.analysis!.interval!.seconds).toBe(10n);
    expect(r!.analysis!.consecutiveBreaches).toBe(2);
    expect(r!.analysis!.autoRollback).toBe(true);
    expect(r!.fingerprint).toMatch(/^[0-9a-f]{64}$/);
    const got = await env.rollouts.getRollout({ name: "checkout" });
    expect(got.rollout).toEqual(r);
    expect((await env.rollouts.listRollouts({})).rollouts.map((x) => x.name)).toEqual(["checkout"]);
  });

  it("refuses a duplicate with ALREADY_EXISTS and an unknown name with NOT_FOUND", async () => {
    await env.rollouts.createRollout({ rollout: rollout() });
    expect((await codeOf(env.rollouts.createRollout({ rollout: rollout() }))).code).toBe(Code.AlreadyExists);
    expect((await codeOf(env.rollouts.getRollout({ name: "nope" }))).code).toBe(Code.NotFound);
  });

  it("pages through rollouts", async () => {
    for (const name of ["a", "b", "c"]) await env.rollouts.createRollout({ rollout: rollout({ name }) });
    const p1 = await env.rollouts.listRollouts({ pageSize: 2 });
    expect(p1.rollouts.map((r) => r.name)).toEqual(["a", "b"]);
    const p2 = await env.rollouts.listRollouts({ pageSize: 2, pageToken: p1.nextPageToken });
    expect(p2.rollouts.map((r) => r.name)).toEqual(["c"]);
    expect(p2.nextPageToken).toBe("");
  });
});

describe("validation: INVALID_ARGUMENT naming the field, and nothing changes", () => {
  const cases: [string, MessageInitShape<typeof RolloutSchema>, string][] = [
    ["bad name", { name: "Bad Name" }, "rollout.name"],
    ["empty stable version", { stableVersion: "" }, "rollout.stable_version"],
    ["empty canary version", { canaryVersion: " " }, "rollout.canary_version"],
    ["weight 0 step", { steps: [{ weightBp: 0 }] }, "rollout.steps[0].weight_bp"],
    ["weight over 10000", { steps: [{ weightBp: 10001 }] }, "rollout.steps[0].weight_bp"],
    ["steps not increasing", { steps: [{ weightBp: 500 }, { weightBp: 500 }] }, "rollout.steps[1].weight_bp"],
    ["interval under 1s", { analysis: { interval: durationFromMs(500) } }, "rollout.analysis.interval"],
    ["interval of 0s", { analysis: { interval: durationFromMs(0) } }, "rollout.analysis.interval"],
    ["window under one interval", { analysis: { interval: durationFromMs(10_000), window: durationFromMs(5000) } }, "rollout.analysis.window"],
    ["bad feature name", { features: { "no spaces": true } }, 'rollout.features["no spaces"]'],
  ];
  it.each(cases)("%s", async (_what, init, field) => {
    const e = await codeOf(env.rollouts.createRollout({ rollout: rollout(init) }));
    expect(e.code).toBe(Code.InvalidArgument);
    expect(e.rawMessage.startsWith(`${field}:`)).toBe(true);
    const [violations] = e.findDetails(FieldViolationsSchema);
    expect(violations!.violations[0]!.field).toBe(field);
    expect((await env.rollouts.listRollouts({})).rollouts).toEqual([]);
    expect(await env.store.lastSeq()).toBe(0);
  });

  it("takes the default interval when the analysis leaves it out, unlike an explicit 0s", async () => {
    const { rollout: r } = await env.rollouts.createRollout({ rollout: rollout({ analysis: { window: durationFromMs(60_000) } }) });
    expect(r!.analysis!.interval!.seconds).toBe(10n);
    expect(r!.analysis!.window!.seconds).toBe(60n);
  });

  it("refuses a missing rollout", async () => {
    expect((await codeOf(env.rollouts.createRollout({}))).rawMessage).toBe("rollout: is required");
  });

  it("refuses bad weights, keys and variants on the control plane", async () => {
    await env.rollouts.createRollout({ rollout: rollout() });
    expect((await codeOf(env.rollouts.setWeight({ name: "checkout", weightBp: 10001 }))).rawMessage).toContain("weight_bp");
    expect((await codeOf(env.rollouts.setOverride({ name: "checkout", key: "", variant: Variant.CANARY }))).rawMessage).toContain("key:");
    expect((await codeOf(env.rollouts.setOverride({ name: "checkout", key: "k", variant: Variant.UNSPECIFIED }))).rawMessage).toContain("variant:");
    expect((await env.rollouts.getRollout({ name: "checkout" })).rollout!.version).toBe(1n);
  });
});

describe("UpdateRollout", () => {
  it("uses expected_version: a stale one is ABORTED", async () => {
    await env.rollouts.createRollout({ rollout: rollout() });
    const u = await env.rollouts.updateRollout({ rollout: rollout({ stableVersion: "v1.1" }), expectedVersion: 1n, reason: "hotfix" });
    expect(u.rollout).toMatchObject({ stableVersion: "v1.1", version: 2n });
    const e = await codeOf(env.rollouts.updateRollout({ rollout: rollout({ stableVersion: "v1.2" }), expectedVersion: 1n }));
    expect(e.code).toBe(Code.Aborted);
    expect((await env.rollouts.getRollout({ name: "checkout" })).rollout!.stableVersion).toBe("v1.1");
  });

  it("changes only the masked fields", async () => {
    await env.rollouts.createRollout({ rollout: rollout({ salt: "s1" }) });
    const u = await env.rollouts.updateRollout({ rollout: rollout({ canaryVersion: "v3", salt: "ignored" }), updateMask: { paths: ["canary_version"] } });
    expect(u.rollout).toMatchObject({ canaryVersion: "v3", salt: "s1" });
    const e = await codeOf(env.rollouts.updateRollout({ rollout: rollout(), updateMask: { paths: ["stage"] } }));
    expect(e.rawMessage).toContain("update_mask.paths[0]");
  });

  it("merges the mask into the rollout as it stands when the update applies, losing no change queued before it", async () => {
    await env.rollouts.createRollout({ rollout: rollout() });
    // Sent together: the feature change is queued first, the masked update right behind it.
    await Promise.all([
      env.rollouts.setFeature({ name: "checkout", feature: "new-ui", enabled: true }),
      env.rollouts.updateRollout({ rollout: rollout({ canaryVersion: "v3" }), updateMask: { paths: ["canary_version"] } }),
    ]);
    const r = (await env.rollouts.getRollout({ name: "checkout" })).rollout!;
    expect(r.canaryVersion).toBe("v3");
    expect(r.features).toEqual({ "new-ui": true });
  });
});

describe("lifecycle through the API", () => {
  it("promotes step by step to PRODUCTION and routes accordingly", async () => {
    await env.rollouts.createRollout({ rollout: rollout() });
    for (const w of [2500, 5000, 10000]) {
      const p = await env.rollouts.promote({ name: "checkout", target: PromoteTarget.NEXT_STEP, reason: "looks good" });
      expect(p.rollout!.weightBp).toBe(w);
    }
    const done = await env.rollouts.promote({ name: "checkout", reason: "ship" });
    expect(done.rollout).toMatchObject({ stage: Stage.PRODUCTION, stableVersion: "v2", weightBp: 0 });
    const r = await env.decisions.route({ rollout: "checkout", key: "anyone" });
    expect(r).toMatchObject({ variant: Variant.STABLE, version: "v2", reason: RouteReason.STAGE });
  });

  it("refuses illegal transitions with FAILED_PRECONDITION and the allowed ones in details", async () => {
    await env.rollouts.createRollout({ rollout: rollout() });
    await env.rollouts.rollback({ name: "checkout", reason: "bad" });
    const e = await codeOf(env.rollouts.promote({ name: "checkout", target: PromoteTarget.STAGING }));
    expect(e.code).toBe(Code.FailedPrecondition);
    expect(e.rawMessage).toContain("allowed:");
    const [allowed] = e.findDetails(AllowedTransitionsSchema);
    expect(allowed!.allowed).toContain("HALTED");
  });

  it("halt is seen by the very next Route", async () => {
    await env.rollouts.createRollout({ rollout: rollout() });
    await env.rollouts.setWeight({ name: "checkout", weightBp: 10000, reason: "all in" });
    expect((await env.decisions.route({ rollout: "checkout", key: "k" })).variant).toBe(Variant.CANARY);
    await env.rollouts.halt({ name: "checkout", reason: "pager" });
    expect(await env.decisions.route({ rollout: "checkout", key: "k" })).toMatchObject({ variant: Variant.STABLE, reason: RouteReason.HALTED });
    const e = await codeOf(env.rollouts.resume({ name: "checkout" }));
    expect(e.code).toBe(Code.InvalidArgument);
    const resumed = await env.rollouts.resume({ name: "checkout", reason: "fixed" });
    expect(resumed.rollout).toMatchObject({ stage: Stage.CANARY, weightBp: 500 });
  });

  it("pauses, overrides and toggles features", async () => {
    await env.rollouts.createRollout({ rollout: rollout() });
    expect((await env.rollouts.pause({ name: "checkout", reason: "hold" })).rollout!.paused).toBe(true);
    await env.rollouts.setOverride({ name: "checkout", key: "qa-user", variant: Variant.CANARY, reason: "qa" });
    await env.rollouts.setFeature({ name: "checkout", feature: "new-ui", enabled: true, reason: "try" });
    expect(await env.decisions.route({ rollout: "checkout", key: "qa-user" })).toMatchObject({
      variant: Variant.CANARY,
      reason: RouteReason.OVERRIDE,
      features: ["new-ui"],
    });
    await env.rollouts.setFeature({ name: "checkout", feature: "new-ui", enabled: false });
    expect((await env.decisions.route({ rollout: "checkout", key: "qa-user" })).features).toEqual([]);
    await env.rollouts.clearOverride({ name: "checkout", key: "qa-user" });
    expect((await env.rollouts.getRollout({ name: "checkout" })).rollout!.overrides).toEqual({});
  });

  it("force needs a reason", async () => {
    await env.rollouts.createRollout({ rollout: rollout() });
    expect((await codeOf(env.rollouts.promote({ name: "checkout", force: true }))).rawMessage).toContain("reason");
  });

  it("deletes, keeping the events", async () => {
    await env.rollouts.createRollout({ rollout: rollout() });
    await env.rollouts.deleteRollout({ name: "checkout", reason: "done" });
    expect((await codeOf(env.rollouts.getRollout({ name: "checkout" }))).code).toBe(Code.NotFound);
    const { events } = await env.rollouts.listEvents({ name: "checkout" });
    expect(events.map((e) => e.type)).toEqual([EventType.CREATED, EventType.DELETED]);
  });
});

describe("audit log", () => {
  it("records actor, reason, fingerprint and a verifiable chain for every change", async () => {
    await env.rollouts.createRollout({ rollout: rollout(), reason: "ship v2" });
    await env.rollouts.setWeight({ name: "checkout", weightBp: 1000, reason: "more" });
    await env.rollouts.pause({ name: "checkout", reason: "lunch" });
    await env.rollouts.pause({ name: "checkout", reason: "no-op" });
    const { events } = await env.rollouts.listEvents({ name: "checkout" });
    expect(events.map((e) => [e.type, e.actor, e.reason])).toEqual([
      [EventType.CREATED, "local", "ship v2"],
      [EventType.WEIGHT_CHANGED, "local", "more"],
      [EventType.PAUSED, "local", "lunch"],
    ]);
    expect(JSON.parse(events[1]!.snapshot)).toMatchObject({ weight_bp: 1000, version: 2 });
    expect(events.every((e) => /^[0-9a-f]{64}$/.test(e.hash) && e.fingerprint.length === 64)).toBe(true);
    expect(verifyChain(events.map(eventFromProto))).toEqual({ ok: true, checked: 3 });
    const after = await env.rollouts.listEvents({ name: "checkout", afterSeq: 1n, limit: 1 });
    expect(after.events.map((e) => e.seq)).toEqual([2n]);
  });

  it("WatchEvents replays from after_seq, then streams live, with keep-alives", async () => {
    await env.close();
    env = await serviceEnv({ keepaliveMs: 50 });
    await env.rollouts.createRollout({ rollout: rollout() });
    await env.rollouts.setWeight({ name: "checkout", weightBp: 700 });
    const abort = new AbortController();
    const seen: string[] = [];
    const stream = env.rollouts.watchEvents({ name: "checkout", afterSeq: 1n }, { signal: abort.signal });
    let changed = false;
    try {
      for await (const m of stream) {
        if (m.keepalive) {
          seen.push("keepalive");
          if (!changed) {
            changed = true;
            await env.rollouts.pause({ name: "checkout" });
          }
          continue;
        }
        seen.push(`${m.event!.seq}:${EventType[m.event!.type]}`);
        if (m.event!.type === EventType.PAUSED) break;
      }
    } finally {
      abort.abort();
    }
    expect(seen).toEqual(["2:WEIGHT_CHANGED", "keepalive", "3:PAUSED"]);
  });
});
