import { create, toBinary } from "@bufbuild/protobuf";
import type { ServiceImpl } from "@connectrpc/connect";
import { invalidArgument } from "../domain/errors.js";
import type { RolloutHealth as RolloutHealthDomain } from "../domain/health.js";
import type { Variant } from "../domain/rollout.js";
import { route, type RouteTable } from "../domain/routing.js";
import { keyProblem } from "../domain/bucketing.js";
import { validateKey, validateName } from "../domain/validation.js";
import { validateOutcomes } from "../domain/outcome.js";
import { readPlainRecordOutcomeRequest } from "./outcome-decode.js";
import {
  DecisionService,
  RecordOutcomeResponseSchema,
  StreamOutcomesResponseSchema,
  type RecordOutcomeRequest,
  type RecordOutcomeResponse,
  RouteBatchResponseSchema,
  type RouteBatchRequest,
  type RouteBatchResponse,
  type RouteRequest,
  type HealthUpdateSchema,
  type RecordOutcomeRequestSchema,
  type RouteBatchRequestSchema,
  type RouteRequestSchema,
  type RouteResponseSchema,
  type WatchHealthRequestSchema,
  type WatchRoutesRequestSchema,
  type WatchRoutesResponseSchema,
} from "../../gen/rollgate/v1/decision_service_pb.js";
import { RolloutHealthSchema, type RolloutHealth } from "../../gen/rollgate/v1/health_pb.js";
import { healthToProto, outcomeFromProto, routeToProto } from "./convert.js";
import type { Engine, HealthChange } from "./engine.js";
import { iterate, type Pushable, type Sink } from "./fan-out.js";
import { withErrorMapping } from "./errors.js";
import { connectMethodsOf, type HotServerStream, type HotUnary } from "./hot-method.js";
import { createRoutesFeed, encodeRoutesMessage, routesMessageToProto, type RoutesFeed, type RoutesMessage } from "./watch-routes.js";
import { readRouteRequestBinary, readRouteRequestJson } from "./route-request-readers.js";
import { encodeHealthUpdate, encodeRouteBatch, encodeRouteResponse, encodeRouteResponseJson, withHeadroom, type BatchCounts } from "./wire-encoding.js";

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

/** The hot methods of DecisionService: one entry each, from which every serving path is built. */
export interface DecisionHotMethods {
  readonly route: HotUnary<typeof RouteRequestSchema, typeof RouteResponseSchema>;
  readonly routeBatch: HotUnary<typeof RouteBatchRequestSchema, typeof RouteBatchResponseSchema>;
  readonly recordOutcome: HotUnary<typeof RecordOutcomeRequestSchema, typeof RecordOutcomeResponseSchema>;
  readonly watchHealth: HotServerStream<typeof WatchHealthRequestSchema, typeof HealthUpdateSchema, NumberedHealth>;
  readonly watchRoutes: HotServerStream<typeof WatchRoutesRequestSchema, typeof WatchRoutesResponseSchema, RoutesMessage>;
}

/** One WatchHealth message before encoding: its place in the stream (from 1) and the change. */
export interface NumberedHealth {
  readonly seq: number;
  readonly change: HealthChange;
}

/**
 * Returns the hot-method table of DecisionService (see hot-method.ts): Route, RouteBatch,
 * RecordOutcome and WatchHealth. The Connect service below and the server's gRPC fast path are
 * both built from it.
 */
export function createDecisionHotMethods(opts: DecisionServiceOptions): DecisionHotMethods {
  const { engine } = opts;
  const observer = opts.observer ?? { routed: () => undefined };
  const routes = opts.routes ?? createRoutesFeed({ engine });
  const m = DecisionService.method;

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

  /** RecordOutcome: a batch of outcomes into the rollout's windows, all or nothing. */
  function recordOutcome(req: RecordOutcomeRequest): RecordOutcomeResponse {
    checkRollout(engine, req.rollout);
    const samples = validateOutcomes(req.outcomes.map(outcomeFromProto));
    return create(RecordOutcomeResponseSchema, engine.recordOutcomes(req.rollout, samples));
  }

  return {
    /** Route: where one key goes. */
    route: {
      kind: "unary",
      method: m.route,
      message: (req) => routeToProto(routeOne(req).decision),
      bytes(req, headroom) {
        const { table, decision } = routeOne(req);
        return encodeRouteResponse(table, decision, headroom);
      },
      json(req) {
        const { table, decision } = routeOne(req);
        return encodeRouteResponseJson(table, decision);
      },
      fromJson: readRouteRequestJson,
      fromBinary: readRouteRequestBinary,
    },

    /** RouteBatch: where each of up to 1,000 keys goes, all under one rollout version. */
    routeBatch: {
      kind: "unary",
      method: m.routeBatch,
      message(req): RouteBatchResponse {
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
      bytes(req, headroom) {
        const table = batchTable(req);
        const counts: BatchCounts = { stable: 0, canary: 0 };
        const bytes = encodeRouteBatch(table, req.keys, counts, headroom);
        countBatch(req.rollout, counts);
        return bytes;
      },
    },

    recordOutcome: {
      kind: "unary",
      method: m.recordOutcome,
      message: recordOutcome,
      bytes: (req, headroom = 0) => withHeadroom(toBinary(RecordOutcomeResponseSchema, recordOutcome(req)), headroom),
      fromBinary: readPlainRecordOutcomeRequest,
    },

    /**
     * WatchHealth: the current health first, then every change, numbered from 1 here for every
     * path. Each health is converted and encoded once however many streams carry it, so a stream
     * pays only for its own seq.
     */
    watchHealth: {
      kind: "server_streaming",
      method: m.watchHealth,
      // Both validate at once (watchHealth throws NOT_FOUND before returning); the iterator is
      // a sink of the same push source, so the two paths send the same messages.
      watch: (req, signal) => watchHealth(engine, req.rollout, signal),
      open: (req, signal) => iterate(watchHealth(engine, req.rollout, signal)),
      message: ({ seq, change }) => ({ seq: BigInt(seq), health: healthOnWire(change.health), deleted: change.deleted }),
      bytes: ({ seq, change }, headroom) => encodeHealthUpdate(seq, healthBytesOf(change.health), change.deleted, headroom),
    },

    /**
     * WatchRoutes: a snapshot of the watched rollouts' routing state, then every committed change
     * (see watch-routes.ts). Each RouteState is encoded once however many streams carry it.
     */
    watchRoutes: {
      kind: "server_streaming",
      method: m.watchRoutes,
      open: (req, signal) => routes.watch(req, signal),
      message: routesMessageToProto,
      bytes: encodeRoutesMessage,
    },
  };
}

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
 * Returns what a WatchHealth stream sends, validated and numbered from 1: the current health of
 * the rollout (or of every rollout) first, then every change; it ends after the deletion of a
 * watched rollout, when `signal` aborts, or at shutdown. A sink that cannot keep up is given
 * the latest health per rollout when it resumes (the health feed's backlog), numbered as it is
 * given. Both serving paths send these: the gRPC fast path as a sink, connect-node through
 * `iterate`.
 */
export function watchHealth(engine: Engine, rolloutName: string, signal: AbortSignal): Pushable<NumberedHealth> {
  const rollout = rolloutName === "" ? undefined : rolloutName;
  if (rollout !== undefined) checkRollout(engine, rollout);
  // Subscribe first so that nothing published while the current health is sent is lost.
  const live = engine.subscribeHealth(rollout, signal);
  const current = rollout === undefined ? engine.allHealth() : [engine.health(rollout)];
  let sent = 0;
  let seq = 0;
  let out: Sink<NumberedHealth> | undefined;
  let attached = false;
  const liveSink: Sink<HealthChange> = {
    write(change) {
      const more = out!.write({ seq: ++seq, change });
      // A watch of one rollout has nothing more to say once it is deleted.
      if (change.deleted && rollout !== undefined) live.close();
      return more;
    },
    end: (e) => out!.end(e),
  };
  const resume = () => {
    if (out === undefined) return;
    while (sent < current.length) {
      if (!out.write({ seq: ++seq, change: { health: current[sent++]!, deleted: false } })) return;
    }
    if (attached) return live.resume();
    attached = true;
    live.push(liveSink);
  };
  return {
    push(sink) {
      out = sink;
      resume();
    },
    resume,
    close: () => live.close(),
  };
}

/**
 * Returns the DecisionService implementation (docs/design.md §2): the hot methods from their table
 * (`hot`, or one built from `opts`), the rest written here.
 */
export function createDecisionService(opts: DecisionServiceOptions & { readonly hot?: DecisionHotMethods }): ServiceImpl<typeof DecisionService> {
  const { engine } = opts;
  const impl: ServiceImpl<typeof DecisionService> = {
    ...connectMethodsOf(opts.hot ?? createDecisionHotMethods(opts)),

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
  };
  return withErrorMapping(DecisionService, impl);
}
