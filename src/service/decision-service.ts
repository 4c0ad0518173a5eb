import { create, toBinary } from "@bufbuild/protobuf";
import type { ServiceImpl } from "@connectrpc/connect";
import { invalidArgument } from "../domain/errors.js";
import type { RolloutHealth as RolloutHealthDomain } from "../domain/health.js";
import type { Variant } from "../domain/rollout.js";
import { route, type RouteTable } from "../domain/routing.js";
import { keyProblem } from "../domain/bucketing.js";
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
import { RolloutHealthSchema, type RolloutHealth } from "../../gen/rollgate/v1/health_pb.js";
import { healthToProto, outcomeFromProto, routeToProto } from "./convert.js";
import type { Engine, HealthChange } from "./engine.js";
import { withErrorMapping } from "./errors.js";
import { createRoutesFeed, routesMessageToProto, type RoutesFeed } from "./watch-routes.js";
import { encodeRouteBatch, encodeRouteResponse, type BatchCounts } from "./wire-encoding.js";

/** Keys per RouteBatch call. */
export const MAX_BATCH_KEYS = 1000;

/** Hooks the server uses to count what the decision service does. */
export interface DecisionObserver {
  /** Called with the number of keys routed to a variant (1 per Route, up to 1,000 per RouteBatch). */
  routed(rollout: string, variant: Variant, count: number): void;
}

/** Options of the decision service. */
export interface DecisionServiceOptions {
  readonly engine: Engine;
  readonly observer?: DecisionObserver;
  /** WatchRoutes' feed, shared with the gRPC fast path (one is made when absent). */
  readonly routes?: RoutesFeed;
}

/**
 * Returns the route table of the rollout a data-plane request names. The name is validated
 * only when no such rollout exists: INVALID_ARGUMENT for a malformed name, else NOT_FOUND.
 */
function routeTableOf(engine: Engine, rollout: string): RouteTable {
  try {
    return engine.routeTable(rollout);
  } catch (e) {
    validateName("rollout", rollout);
    throw e;
  }
}

/** Throws unless the rollout a data-plane request names exists (see routeTableOf). */
function checkRollout(engine: Engine, rollout: string): void {
  routeTableOf(engine, rollout);
}

/**
 * The hot-path handlers as plain synchronous functions: request message in, response message
 * out, domain errors thrown. The Connect service below and the server's raw HTTP/2 gRPC fast
 * path both call these, so the two paths cannot drift apart.
 */
export function createDecisionHandlers(opts: DecisionServiceOptions) {
  const { engine } = opts;
  const observer = opts.observer ?? { routed: () => undefined };

  /** Validates a Route request and returns its table and decision. */
  function routeOne(req: RouteRequest) {
    validateKey("key", req.key);
    const table = routeTableOf(engine, req.rollout);
    const decision = route(table, req.key);
    observer.routed(req.rollout, decision.variant, 1);
    return { table, decision };
  }

  /** Validates a RouteBatch request and returns the one table every key is routed under. */
  function batchTable(req: RouteBatchRequest) {
    if (req.keys.length === 0 || req.keys.length > MAX_BATCH_KEYS) {
      throw invalidArgument("keys", `must hold 1..${MAX_BATCH_KEYS} keys`);
    }
    // The field path is built only for a bad key: a template string per key cost as much as its hash.
    for (let i = 0; i < req.keys.length; i++) {
      const problem = keyProblem(req.keys[i]!);
      if (problem !== undefined) throw invalidArgument(`keys[${i}]`, problem);
    }
    return routeTableOf(engine, req.rollout);
  }

  function countBatch(rollout: string, counts: BatchCounts): void {
    if (counts.stable > 0) observer.routed(rollout, "stable", counts.stable);
    if (counts.canary > 0) observer.routed(rollout, "canary", counts.canary);
  }

  return {
    /** Route: where one key goes. */
    route(req: RouteRequest): RouteResponse {
      return routeToProto(routeOne(req).decision);
    },

    /** Route, answered as RouteResponse bytes (the gRPC fast path). */
    routeBinary(req: RouteRequest): Uint8Array {
      const { table, decision } = routeOne(req);
      return encodeRouteResponse(table, decision);
    },

    /** RouteBatch: where each of up to 1,000 keys goes, all under one rollout version. */
    routeBatch(req: RouteBatchRequest): RouteBatchResponse {
      const table = batchTable(req);
      const counts: BatchCounts = { stable: 0, canary: 0 };
      const results = req.keys.map((k) => {
        const d = route(table, k);
        counts[d.variant] += 1;
        return routeToProto(d);
      });
      countBatch(req.rollout, counts);
      return create(RouteBatchResponseSchema, { results });
    },

    /** RouteBatch, answered as RouteBatchResponse bytes (the gRPC fast path). */
    routeBatchBinary(req: RouteBatchRequest): Uint8Array {
      const table = batchTable(req);
      const counts: BatchCounts = { stable: 0, canary: 0 };
      const bytes = encodeRouteBatch(table, req.keys, counts);
      countBatch(req.rollout, counts);
      return bytes;
    },

    /** RecordOutcome: a batch of outcomes into the rollout's windows, all or nothing. */
    recordOutcome(req: RecordOutcomeRequest): RecordOutcomeResponse {
      checkRollout(engine, req.rollout);
      const samples = validateOutcomes(req.outcomes.map(outcomeFromProto));
      return create(RecordOutcomeResponseSchema, engine.recordOutcomes(req.rollout, samples));
    },
  };
}

/** The hot-path handler functions. */
export type DecisionHandlers = ReturnType<typeof createDecisionHandlers>;

/**
 * Wire form of each published health, converted once however many WatchHealth streams carry it
 * (the same object reaches every subscriber of a rollout); and its encoded bytes, for the
 * gRPC fast path.
 */
const healthWire = new WeakMap<RolloutHealthDomain, RolloutHealth>();
const healthBytes = new WeakMap<RolloutHealthDomain, Uint8Array>();

/** Returns a health's wire message, converted once per health object. */
function healthOnWire(h: RolloutHealthDomain): RolloutHealth {
  let p = healthWire.get(h);
  if (p === undefined) healthWire.set(h, (p = healthToProto(h)));
  return p;
}

/** Returns a health's encoded RolloutHealth bytes, encoded once per health object. */
export function healthBytesOf(h: RolloutHealthDomain): Uint8Array {
  let b = healthBytes.get(h);
  if (b === undefined) healthBytes.set(h, (b = toBinary(RolloutHealthSchema, healthOnWire(h))));
  return b;
}

/**
 * Returns what a WatchHealth stream sends, validated: the current health of the rollout (or of
 * every rollout) first, then every change; it ends after the deletion of a watched rollout,
 * when `signal` aborts, or at shutdown. Both serving paths number and encode these.
 */
export function watchHealthChanges(engine: Engine, rolloutName: string, signal: AbortSignal): AsyncIterable<HealthChange> {
  const rollout = rolloutName === "" ? undefined : rolloutName;
  if (rollout !== undefined) checkRollout(engine, rollout);
  // Subscribe first so that nothing published while the current health is sent is lost.
  const live = engine.subscribeHealth(rollout, signal);
  const current = rollout === undefined ? engine.allHealth() : [engine.health(rollout)];
  return (async function* () {
    try {
      for (const health of current) yield { health, deleted: false };
      for await (const c of live) {
        yield c;
        // A watch of one rollout has nothing more to say once it is deleted.
        if (c.deleted && rollout !== undefined) return;
      }
    } finally {
      live.close();
    }
  })();
}

/** Returns the DecisionService implementation (DESIGN §2) over the shared handlers. */
export function createDecisionService(opts: DecisionServiceOptions): ServiceImpl<typeof DecisionService> {
  const { engine } = opts;
  const routes = opts.routes ?? createRoutesFeed({ engine });
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
      let seq = 0n;
      for await (const c of watchHealthChanges(engine, req.rollout, ctx.signal)) {
        yield create(HealthUpdateSchema, { seq: ++seq, health: healthOnWire(c.health), deleted: c.deleted });
      }
    },

    async *watchRoutes(req, ctx) {
      for await (const m of routes.watch(req, ctx.signal)) yield routesMessageToProto(m);
    },
  };
  return withErrorMapping(DecisionService, impl);
}
