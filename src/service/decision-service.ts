import { create } from "@bufbuild/protobuf";
import type { ServiceImpl } from "@connectrpc/connect";
import { invalidArgument } from "../domain/errors.js";
import type { Variant } from "../domain/rollout.js";
import { route } from "../domain/routing.js";
import { validateKey, validateName } from "../domain/validation.js";
import { DecisionService, RouteBatchResponseSchema } from "../../gen/rollgate/v1/decision_service_pb.js";
import { routeToProto } from "./convert.js";
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

/** Returns the DecisionService implementation: the hot path (DESIGN §2). */
export function createDecisionService(opts: DecisionServiceOptions): Partial<ServiceImpl<typeof DecisionService>> {
  const { engine } = opts;
  const observer = opts.observer ?? { routed: () => undefined };
  const impl: Partial<ServiceImpl<typeof DecisionService>> = {
    async route(req) {
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

    async routeBatch(req) {
      if (req.keys.length === 0 || req.keys.length > MAX_BATCH_KEYS) {
        throw invalidArgument("keys", `must hold 1..${MAX_BATCH_KEYS} keys`);
      }
      req.keys.forEach((k, i) => validateKey(`keys[${i}]`, k));
      checkRollout(engine, req.rollout);
      // One table for the whole batch: every key sees the same rollout version.
      const table = engine.routeTable(req.rollout);
      const results = req.keys.map((k) => {
        const d = route(table, k);
        observer.routed(req.rollout, d.variant);
        return routeToProto(d);
      });
      return create(RouteBatchResponseSchema, { results });
    },
  };
  return withErrorMapping(DecisionService, impl as ServiceImpl<typeof DecisionService>);
}
