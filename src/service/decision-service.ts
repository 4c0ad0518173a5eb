import { create } from "@bufbuild/protobuf";
import type { ServiceImpl } from "@connectrpc/connect";
import { invalidArgument } from "../domain/errors.js";
import type { Variant } from "../domain/rollout.js";
import { route } from "../domain/routing.js";
import { validateKey, validateName } from "../domain/validation.js";
import { validateOutcomes } from "../domain/outcome.js";
import {
  DecisionService,
  HealthUpdateSchema,
  RecordOutcomeResponseSchema,
  StreamOutcomesResponseSchema,
  type RecordOutcomeRequest,
  type RecordOutcomeResponse,
  RouteBatchResponseSchema,
  type RouteBatchRequest,
  type RouteBatchResponse,
  type RouteRequest,
  type RouteResponse,
} from "../../gen/rollgate/v1/decision_service_pb.js";
import { healthToProto, outcomeFromProto, routeToProto } from "./convert.js";
import type { Engine } from "./engine.js";
import { withErrorMapping } from "./errors.js";

/** Keys per RouteBatch call. */
export const MAX_BATCH_KEYS = 1000;

/** Hooks the server uses to count what the decision service does. */
export interface DecisionObserver {
  /** Called once per routed key. */
  routed(rollout: string, variant: Variant): void;
}

/** Options of the decision service. */
export interface DecisionServiceOptions {
  readonly engine: Engine;
  readonly observer?: DecisionObserver;
}

/** Returns the rollout name of a data-plane request, validated only when it is unknown. */
function checkRollout(engine: Engine, rollout: string): void {
  if (rollout === "") throw invalidArgument("rollout", "must not be empty");
  validateName("rollout", rollout);
  engine.get(rollout);
}

/**
 * The hot-path handlers as plain synchronous functions: request message in, response message
 * out, domain errors thrown. The Connect service below and the server's raw HTTP/2 gRPC fast
 * path both call these, so the two paths cannot drift apart.
 */
export function createDecisionHandlers(opts: DecisionServiceOptions) {
  const { engine } = opts;
  const observer = opts.observer ?? { routed: () => undefined };
  return {
    /** Route: where one key goes. */
    route(req: RouteRequest): RouteResponse {
      validateKey("key", req.key);
      let decision;
      try {
        decision = engine.route(req.rollout, req.key);
      } catch (e) {
        checkRollout(engine, req.rollout);
        throw e;
      }
      observer.routed(req.rollout, decision.variant);
      return routeToProto(decision);
    },

    /** RecordOutcome: a batch of outcomes into the rollout's windows, all or nothing. */
    recordOutcome(req: RecordOutcomeRequest): RecordOutcomeResponse {
      checkRollout(engine, req.rollout);
      const samples = validateOutcomes(req.outcomes.map(outcomeFromProto));
      return create(RecordOutcomeResponseSchema, engine.recordOutcomes(req.rollout, samples));
    },

    /** RouteBatch: where each of up to 1,000 keys goes, all under one rollout version. */
    routeBatch(req: RouteBatchRequest): RouteBatchResponse {
      if (req.keys.length === 0 || req.keys.length > MAX_BATCH_KEYS) {
        throw invalidArgument("keys", `must hold 1..${MAX_BATCH_KEYS} keys`);
      }
      req.keys.forEach((k, i) => validateKey(`keys[${i}]`, k));
      checkRollout(engine, req.rollout);
      const table = engine.routeTable(req.rollout);
      const results = req.keys.map((k) => {
        const d = route(table, k);
        observer.routed(req.rollout, d.variant);
        return routeToProto(d);
      });
      return create(RouteBatchResponseSchema, { results });
    },
  };
}

/** The hot-path handler functions. */
export type DecisionHandlers = ReturnType<typeof createDecisionHandlers>;

/** Returns the DecisionService implementation (DESIGN §2) over the shared handlers. */
export function createDecisionService(opts: DecisionServiceOptions): ServiceImpl<typeof DecisionService> {
  const { engine } = opts;
  const h = createDecisionHandlers(opts);
  const impl: ServiceImpl<typeof DecisionService> = {
    route: async (req) => h.route(req),
    routeBatch: async (req) => h.routeBatch(req),
    recordOutcome: async (req) => h.recordOutcome(req),

    async streamOutcomes(messages) {
      let rollout = "";
      let i = 0;
      const total = { accepted: 0n, ignored: 0n, batches: 0n };
      for await (const m of messages) {
        // A message may omit the rollout to mean "the same as before".
        if (m.rollout !== "") rollout = m.rollout;
        if (rollout === "") throw invalidArgument(`messages[${i}].rollout`, "must not be empty in the first message");
        checkRollout(engine, rollout);
        const samples = validateOutcomes(m.outcomes.map(outcomeFromProto), `messages[${i}].outcomes`);
        const r = engine.recordOutcomes(rollout, samples);
        total.accepted += BigInt(r.accepted);
        total.ignored += BigInt(r.ignored);
        total.batches += 1n;
        i++;
      }
      return create(StreamOutcomesResponseSchema, total);
    },

    async health(req) {
      checkRollout(engine, req.rollout);
      return { health: healthToProto(engine.health(req.rollout)) };
    },

    async *watchHealth(req, ctx) {
      const rollout = req.rollout === "" ? undefined : req.rollout;
      if (rollout !== undefined) checkRollout(engine, rollout);
      // Subscribe first so that nothing published while the current health is sent is lost.
      const live = engine.subscribeHealth(rollout, ctx.signal);
      let seq = 0n;
      try {
        const current = rollout === undefined ? engine.allHealth() : [engine.health(rollout)];
        for (const health of current) yield create(HealthUpdateSchema, { seq: ++seq, health: healthToProto(health) });
        for await (const c of live) {
          yield create(HealthUpdateSchema, { seq: ++seq, health: healthToProto(c.health), deleted: c.deleted });
          // A watch of one rollout has nothing more to say once it is deleted.
          if (c.deleted && rollout !== undefined) return;
        }
      } finally {
        live.close();
      }
    },
  };
  return withErrorMapping(DecisionService, impl);
}
