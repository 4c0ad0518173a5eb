import { create, type DescMessage, type DescMethodUnary, type MessageInitShape, type MessageShape } from "@bufbuild/protobuf";
import type { HandlerContext, ServiceImpl } from "@connectrpc/connect";
import { invalidArgument } from "../domain/errors.js";
import * as machine from "../domain/rollout-machine.js";
import type { RolloutSpec } from "../domain/rollout.js";
import {
  normalizeSpec,
  validateFeatureName,
  validateKey,
  validateName,
  validateReason,
  validateWeight,
  type RolloutSpecInput,
} from "../domain/validation.js";
import {
  HaltResponseSchema,
  PauseResponseSchema,
  PromoteTarget,
  ResumeResponseSchema,
  RollbackResponseSchema,
  RolloutService,
  SetWeightResponseSchema,
  type HaltRequestSchema,
  type PauseRequestSchema,
  type ResumeRequestSchema,
  type RollbackRequestSchema,
  type SetWeightRequestSchema,
  WatchEventsResponseSchema,
  type UpdateRolloutRequest,
} from "../../gen/rollgate/v1/rollout_service_pb.js";
import type { Rollout } from "../../gen/rollgate/v1/rollout_pb.js";
import { callerKey, type CallerIdentity } from "./context.js";
import { eventToProto, rolloutToProto, specInputFromProto, variantFromProto } from "./convert.js";
import type { Caller, Engine } from "./engine.js";
import type { TransitionFn } from "./engine/commands.js";
import { withErrorMapping } from "./errors.js";
import { connectMethodsOf, type HotChange } from "./hot-method.js";
import { KEEPALIVE, withKeepalive } from "./keepalive.js";

/** Options of the control-plane service. */
export interface RolloutServiceOptions {
  readonly engine: Engine;
  /** Keep-alive period of WatchEvents; at most 20 s so proxies don't cut quiet streams. */
  readonly keepaliveMs?: number;
  /** The changes' table, shared with the Connect fast path. */
  readonly changes?: RolloutChanges;
}

const MAX_PAGE = 1000;
const UPDATABLE = ["stable_version", "canary_version", "steps", "features", "salt", "gates", "analysis"] as const;
type Updatable = (typeof UPDATABLE)[number];

/** Returns the caller of a request with its reason, validated. */
function callerOf(ctx: HandlerContext, reason: string): Caller {
  return actorOf(ctx.values.get(callerKey), reason);
}

/** Returns the admitted caller as the actor of a change, with its reason validated. */
function actorOf(caller: CallerIdentity, reason: string): Caller {
  return { actor: caller.name, reason: validateReason("reason", reason) };
}

/** Returns `name` validated as a rollout name. */
function nameOf(name: string): string {
  validateName("name", name);
  return name;
}

/** The control-plane changes served as hot methods (hot-method.ts): one entry each. */
export interface RolloutChanges {
  readonly setWeight: HotChange<typeof SetWeightRequestSchema, typeof SetWeightResponseSchema>;
  readonly pause: HotChange<typeof PauseRequestSchema, typeof PauseResponseSchema>;
  readonly resume: HotChange<typeof ResumeRequestSchema, typeof ResumeResponseSchema>;
  readonly halt: HotChange<typeof HaltRequestSchema, typeof HaltResponseSchema>;
  readonly rollback: HotChange<typeof RollbackRequestSchema, typeof RollbackResponseSchema>;
}

/**
 * Returns the changes of RolloutService that the Connect fast path serves beside connect-node:
 * the operator's one-field changes to a rollout (SetWeight, Pause, Resume, Halt, Rollback).
 */
export function createRolloutChanges(engine: Engine): RolloutChanges {
  const svc = RolloutService.method;
  return {
    setWeight: namedChange(engine, svc.setWeight, SetWeightResponseSchema, (req) => {
      validateWeight("weight_bp", req.weightBp);
      return (r, actor) => machine.setWeight(r, req.weightBp, actor);
    }),
    pause: namedChange(engine, svc.pause, PauseResponseSchema, () => machine.pause),
    resume: namedChange(engine, svc.resume, ResumeResponseSchema, (_req, who) => (r, actor) => machine.resume(r, actor, who.reason)),
    halt: namedChange(engine, svc.halt, HaltResponseSchema, () => machine.halt),
    rollback: namedChange(engine, svc.rollback, RollbackResponseSchema, () => (r, actor) => machine.rollback(r, actor)),
  };
}

/**
 * A change entry whose request names a rollout and gives a reason, and whose answer is the
 * rollout after the change: the five of RolloutChanges differ only in their transition, which
 * `transitionOf` returns for the request (throwing INVALID_ARGUMENT for a bad field) once its
 * name and reason have been validated.
 */
function namedChange<I extends DescMessage, O extends DescMessage>(
  engine: Engine,
  method: DescMethodUnary<I, O>,
  output: O,
  transitionOf: (req: MessageShape<I>, who: Caller) => TransitionFn,
): HotChange<I, O> {
  return {
    kind: "change",
    method,
    async message(req, caller) {
      const { name, reason } = req as MessageShape<I> & { readonly name: string; readonly reason: string };
      const rolloutName = nameOf(name);
      const who = actorOf(caller, reason);
      const r = await engine.change(rolloutName, who, transitionOf(req, who));
      return create(output, { rollout: rolloutToProto(r) } as unknown as MessageInitShape<O>);
    },
  };
}

/**
 * Returns the RolloutService implementation: the control plane (docs/design.md §2), with the
 * changes of `changes` (one is made when absent) served from their table entries.
 */
export function createRolloutService(opts: RolloutServiceOptions): ServiceImpl<typeof RolloutService> {
  const { engine } = opts;
  const keepaliveMs = Math.min(opts.keepaliveMs ?? 15_000, 20_000);
  const normalize = (input: RolloutSpecInput): RolloutSpec => normalizeSpec(input, "rollout");

  const impl: ServiceImpl<typeof RolloutService> = {
    ...connectMethodsOf(opts.changes ?? createRolloutChanges(engine)),

    async createRollout(req, ctx) {
      if (req.rollout === undefined) throw invalidArgument("rollout", "is required");
      const spec = normalize(specInputFromProto(req.rollout, "rollout"));
      const r = await engine.create(spec, callerOf(ctx, req.reason));
      return { rollout: rolloutToProto(r) };
    },

    async getRollout(req) {
      return { rollout: rolloutToProto(engine.get(nameOf(req.name))) };
    },

    async listRollouts(req) {
      const size = req.pageSize === 0 || req.pageSize > MAX_PAGE ? MAX_PAGE : req.pageSize;
      const after = req.pageToken === "" ? "" : Buffer.from(req.pageToken, "base64url").toString("utf8");
      const all = engine.list().filter((r) => r.name > after);
      const page = all.slice(0, size);
      const last = page.at(-1);
      return {
        rollouts: page.map(rolloutToProto),
        nextPageToken: all.length > size && last !== undefined ? Buffer.from(last.name, "utf8").toString("base64url") : "",
      };
    },

    async updateRollout(req, ctx) {
      if (req.rollout === undefined) throw invalidArgument("rollout", "is required");
      const name = req.rollout.name;
      validateName("rollout.name", name);
      const caller = callerOf(ctx, req.reason);
      const update = req.rollout;
      // Merged into the rollout as it stands when the change runs (changes apply one at a time),
      // so a change queued just before this one is not overwritten by a stale copy.
      const r = await engine.change(
        name,
        caller,
        (current, actor) => machine.updateSpec(current, normalize(mergeUpdate(machine.specOf(current), update, req)), actor),
        Number(req.expectedVersion),
      );
      return { rollout: rolloutToProto(r) };
    },

    async deleteRollout(req, ctx) {
      await engine.delete(nameOf(req.name), callerOf(ctx, req.reason), Number(req.expectedVersion));
      return {};
    },

    async promote(req, ctx) {
      const name = nameOf(req.name);
      const caller = callerOf(ctx, req.reason);
      if (req.force && caller.reason === "") throw invalidArgument("reason", "is required with force");
      const target: machine.PromoteTarget =
        req.target === PromoteTarget.STAGING ? "staging" : req.target === PromoteTarget.PRODUCTION ? "production" : "next_step";
      if (!req.force) engine.checkPromotion(name);
      const forced = req.force ? { ...caller, reason: `forced: ${caller.reason}` } : caller;
      const r = await engine.change(name, forced, (r, actor) => machine.promote(r, target, actor));
      return { rollout: rolloutToProto(r) };
    },

    async setFeature(req, ctx) {
      const name = nameOf(req.name);
      validateFeatureName("feature", req.feature);
      const r = await engine.change(name, callerOf(ctx, req.reason), (r, actor) =>
        machine.setFeature(r, req.feature, req.enabled, actor),
      );
      return { rollout: rolloutToProto(r) };
    },

    async setOverride(req, ctx) {
      const name = nameOf(req.name);
      validateKey("key", req.key);
      const variant = variantFromProto(req.variant);
      if (variant === undefined) throw invalidArgument("variant", "must be VARIANT_STABLE or VARIANT_CANARY (use ClearOverride to clear)");
      const r = await engine.change(name, callerOf(ctx, req.reason), (r, actor) => machine.setOverride(r, req.key, variant, actor));
      return { rollout: rolloutToProto(r) };
    },

    async clearOverride(req, ctx) {
      const name = nameOf(req.name);
      validateKey("key", req.key);
      const r = await engine.change(name, callerOf(ctx, req.reason), (r, actor) => machine.setOverride(r, req.key, undefined, actor));
      return { rollout: rolloutToProto(r) };
    },

    async listEvents(req) {
      if (req.name !== "") validateName("name", req.name);
      if (req.limit > MAX_PAGE) throw invalidArgument("limit", `must be at most ${MAX_PAGE}`);
      const events = await engine.listEvents(req.name === "" ? undefined : req.name, Number(req.afterSeq), req.limit || 100);
      return { events: events.map(eventToProto) };
    },

    async *watchEvents(req, ctx) {
      if (req.name !== "") validateName("name", req.name);
      const rollout = req.name === "" ? undefined : req.name;
      // Subscribe before reading the backlog so that nothing appended in between is missed;
      // events seen in both are skipped by sequence number.
      const live = engine.subscribeEvents(rollout, ctx.signal);
      let last = Number(req.afterSeq);
      try {
        for (;;) {
          const page = await engine.listEvents(rollout, last, MAX_PAGE);
          for (const e of page) {
            yield create(WatchEventsResponseSchema, { event: eventToProto(e) });
            last = e.seq;
          }
          if (page.length < MAX_PAGE) break;
        }
        for await (const e of withKeepalive(live, keepaliveMs, ctx.signal)) {
          if (e === KEEPALIVE) yield create(WatchEventsResponseSchema, { keepalive: true });
          else if (e.seq > last) {
            yield create(WatchEventsResponseSchema, { event: eventToProto(e) });
            last = e.seq;
          }
        }
      } finally {
        live.close();
      }
    },
  };
  return withErrorMapping(RolloutService, impl);
}

/**
 * Returns the configuration an UpdateRollout asks for: the request's fields named by the
 * update mask over the current configuration, or all of them when the mask is empty.
 */
function mergeUpdate(current: RolloutSpec, rollout: Rollout, req: UpdateRolloutRequest): RolloutSpecInput {
  const wanted = specInputFromProto(rollout, "rollout");
  const paths = req.updateMask?.paths ?? [];
  if (paths.length === 0) return wanted;
  paths.forEach((p, i) => {
    if (!(UPDATABLE as readonly string[]).includes(p)) {
      throw invalidArgument(`update_mask.paths[${i}]`, `must be one of ${UPDATABLE.join(", ")}`);
    }
  });
  const has = (p: Updatable) => paths.includes(p);
  return {
    name: current.name,
    stableVersion: has("stable_version") ? wanted.stableVersion : current.stableVersion,
    canaryVersion: has("canary_version") ? wanted.canaryVersion : current.canaryVersion,
    steps: has("steps") ? wanted.steps : current.steps,
    features: has("features") ? wanted.features : current.features,
    salt: has("salt") ? wanted.salt : current.salt,
    gates: has("gates") ? wanted.gates : current.gates,
    analysis: has("analysis") ? wanted.analysis : current.analysis,
  };
}
