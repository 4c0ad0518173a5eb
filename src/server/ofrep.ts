import { createHash } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Http2ServerRequest } from "node:http2";
import { Code, ConnectError } from "@connectrpc/connect";
import { keyProblem } from "../domain/bucketing.js";
import { DomainError } from "../domain/errors.js";
import type { Variant } from "../domain/rollout.js";
import { route, type RouteDecision, type RouteReason, type RouteTable } from "../domain/routing.js";
import type { Engine } from "../service/engine.js";
import type { Admit } from "./admit.js";
import type { RequestHandler } from "./http-endpoints.js";
import type { CallReporter } from "./observe.js";
import { bodyPending, stopReading } from "./refused-body.js";

/**
 * OFREP (OpenFeature Remote Evaluation Protocol) on the server's own port: docs/ofrep.md says
 * what is implemented and how rollouts map onto flags. Answers come from the same route tables
 * and the same `route` function as the Route RPC, so the two cannot disagree.
 */

/** Path of the single-flag endpoint, followed by the flag key. */
const SINGLE_PREFIX = "/ofrep/v1/evaluate/flags/";
/** Path of the bulk endpoint. */
const BULK_PATH = "/ofrep/v1/evaluate/flags";

/** Largest OFREP request body accepted; larger ones get 413. A context is a few fields. */
export const OFREP_MAX_BODY_BYTES = 64 * 1024;

/**
 * Separator between a rollout name and one of its features in a boolean flag key
 * (`checkout/new-ui`). Neither rollout names nor feature names may contain it.
 */
export const FEATURE_SEPARATOR = "/";

/** The RPC OFREP calls are admitted as (role, readiness): evaluating a flag is reading a route. */
const OFREP_PROCEDURE = "rollgate.v1.DecisionService/Route";

/** The OpenFeature reason of each routing reason. */
export const OFREP_REASON: Readonly<Record<RouteReason, string>> = {
  weight: "SPLIT",
  override: "TARGETING_MATCH",
  stage: "STATIC",
  rolled_back: "DISABLED",
  halted: "DISABLED",
};

/** What the OFREP endpoints need from the server. */
export interface OfrepOptions {
  readonly engine: Engine;
  /** The admission step every serving path shares (admit.ts): request id, readiness, authorization. */
  readonly admit: Admit;
  /** Reports each finished call (observe.ts): RPC metrics, and a log line when it fails. */
  readonly report: CallReporter;
  /**
   * Counts routed keys, as Route does (metrics): one per single-flag evaluation. A bulk
   * evaluation is not counted here (see docs/design.md §9).
   */
  routed?(rollout: string, variant: Variant, count: number): void;
  /** Overrides OFREP_MAX_BODY_BYTES. */
  readonly maxBodyBytes?: number;
}

/** One flag's successful evaluation, as OFREP's evaluationSuccess. */
export interface OfrepEvaluation {
  readonly key: string;
  readonly value: string | boolean;
  readonly variant: string;
  readonly reason: string;
  readonly metadata: Record<string, string | number | boolean>;
}

/** An OFREP error answer: HTTP status and body. */
class OfrepError extends Error {
  constructor(
    readonly status: number,
    readonly errorCode: string | undefined,
    message: string,
  ) {
    super(message);
  }
}

/** Returns the metadata every flag of a rollout carries for one decision. */
function metadataOf(table: RouteTable, d: RouteDecision): Record<string, string | number | boolean> {
  return {
    rollout: table.rollout.name,
    bucket: d.bucket,
    weightBp: d.weightBp,
    rolloutVersion: d.rolloutVersion,
    stage: table.rollout.stage,
    rolloutVariant: d.variant,
  };
}

/** Returns the string flag of a rollout for a decision: value = the version Route answers. */
function rolloutFlag(table: RouteTable, d: RouteDecision): OfrepEvaluation {
  return { key: table.rollout.name, value: d.version, variant: d.variant, reason: OFREP_REASON[d.reason], metadata: metadataOf(table, d) };
}

/** Returns the boolean flag of one feature of a rollout for a decision. */
function featureFlag(table: RouteTable, d: RouteDecision, feature: string): OfrepEvaluation {
  const on = d.features.includes(feature);
  return {
    key: `${table.rollout.name}${FEATURE_SEPARATOR}${feature}`,
    value: on,
    variant: on ? "on" : "off",
    reason: OFREP_REASON[d.reason],
    metadata: metadataOf(table, d),
  };
}

/** Returns a rollout's route table, or undefined when there is no such rollout. */
function tableOf(engine: Engine, name: string): RouteTable | undefined {
  try {
    return engine.routeTable(name);
  } catch (e) {
    if (e instanceof DomainError && e.kind === "not_found") return undefined;
    throw e;
  }
}

/**
 * Returns the routing key of an OFREP request body: its `context.targetingKey`. Throws 400
 * INVALID_CONTEXT for a body or context that is not a JSON object or a key Route would refuse,
 * and 400 TARGETING_KEY_MISSING when there is no targeting key.
 */
export function targetingKeyOf(body: string): string {
  let parsed: unknown = {};
  if (body.trim() !== "") {
    try {
      parsed = JSON.parse(body);
    } catch {
      throw new OfrepError(400, "INVALID_CONTEXT", "request body is not JSON");
    }
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
    throw new OfrepError(400, "INVALID_CONTEXT", "request body must be a JSON object");
  }
  const context = (parsed as { context?: unknown }).context;
  if (context === undefined || context === null) throw new OfrepError(400, "TARGETING_KEY_MISSING", "context.targetingKey is required");
  if (typeof context !== "object" || Array.isArray(context)) throw new OfrepError(400, "INVALID_CONTEXT", "context must be a JSON object");
  const key = (context as { targetingKey?: unknown }).targetingKey;
  if (key === undefined || key === null || key === "") throw new OfrepError(400, "TARGETING_KEY_MISSING", "context.targetingKey is required");
  if (typeof key !== "string") throw new OfrepError(400, "INVALID_CONTEXT", "context.targetingKey must be a string");
  const problem = keyProblem(key);
  if (problem !== undefined) throw new OfrepError(400, "INVALID_CONTEXT", `context.targetingKey ${problem}`);
  return key;
}

/**
 * Evaluates one flag for a routing key: a rollout name (string flag) or `rollout/feature`
 * (boolean flag). Returns undefined when there is no such flag.
 */
export function evaluateFlag(engine: Engine, flagKey: string, targetingKey: string): { table: RouteTable; decision: RouteDecision; flag: OfrepEvaluation } | undefined {
  const sep = flagKey.indexOf(FEATURE_SEPARATOR);
  const table = tableOf(engine, sep < 0 ? flagKey : flagKey.slice(0, sep));
  if (table === undefined) return undefined;
  const feature = sep < 0 ? undefined : flagKey.slice(sep + 1);
  if (feature !== undefined && !table.rollout.features.has(feature)) return undefined;
  const decision = route(table, targetingKey);
  return { table, decision, flag: feature === undefined ? rolloutFlag(table, decision) : featureFlag(table, decision, feature) };
}

/**
 * Evaluates every flag (every rollout and each of its features) for a routing key, in key order.
 * Not counted as routed keys: a bulk evaluation is what OFREP providers poll and cache, not a
 * request for any one rollout (docs/design.md §9).
 */
export function evaluateAll(engine: Engine, targetingKey: string): OfrepEvaluation[] {
  const flags: OfrepEvaluation[] = [];
  for (const r of engine.list()) {
    const table = tableOf(engine, r.name);
    if (table === undefined) continue;
    const d = route(table, targetingKey);
    flags.push(rolloutFlag(table, d));
    for (const feature of [...table.rollout.features.keys()].sort()) flags.push(featureFlag(table, d, feature));
  }
  return flags;
}

/** Returns whether an If-None-Match header value matches an entity tag. */
function etagMatches(ifNoneMatch: string | undefined, etag: string): boolean {
  if (ifNoneMatch === undefined) return false;
  const bare = etag.replace(/^W\//, "");
  return ifNoneMatch.split(",").some((t) => {
    const tag = t.trim();
    return tag === "*" || tag.replace(/^W\//, "") === bare;
  });
}

/** The HTTP status of an admission refusal or a Connect code (403 cannot occur today: every role may read). */
function statusOfRefusal(code: Code): number {
  switch (code) {
    case Code.Unavailable:
      return 503;
    case Code.Unauthenticated:
      return 401;
    case Code.PermissionDenied:
      return 403;
    default:
      return 500;
  }
}

/** The Connect code an OFREP answer is counted under in the RPC metrics (`rollgate_rpc_requests_total{code}`). */
function codeOfStatus(status: number): Code {
  switch (status) {
    case 400:
      return Code.InvalidArgument;
    case 404:
      return Code.NotFound;
    case 405:
      return Code.Unimplemented;
    case 413:
      return Code.ResourceExhausted;
    default:
      return Code.Internal;
  }
}

/** The procedure names OFREP calls are reported under (metrics, logs): one per endpoint. */
export const OFREP_PROCEDURES = { single: "ofrep/EvaluateFlag", bulk: "ofrep/EvaluateFlags" } as const;

/**
 * Returns a handler that answers OFREP's `POST /ofrep/v1/evaluate/flags/{key}` and
 * `POST /ofrep/v1/evaluate/flags` and passes every other request to `next`. Every call goes
 * through the shared admission step (request id, then readiness, then authorization, with the
 * same refusal wording as the RPCs) and is reported by the call reporter (metrics; a log line on
 * failure, with the cause for a 500).
 */
export function withOfrep(opts: OfrepOptions, next: RequestHandler): RequestHandler {
  const max = opts.maxBodyBytes ?? OFREP_MAX_BODY_BYTES;
  return (req, res) => {
    const url = req.url ?? "/";
    if (!url.startsWith(BULK_PATH)) return next(req, res);
    const path = url.split("?", 1)[0]!;
    const single = path.startsWith(SINGLE_PREFIX);
    if (!single && path !== BULK_PATH) return next(req, res);
    const started = process.hrtime.bigint();
    // The two response types share this surface but not a declared type.
    const r = res as ServerResponse;
    let flagKey: string | undefined;
    if (single) {
      try {
        flagKey = decodeURIComponent(path.slice(SINGLE_PREFIX.length));
      } catch {
        flagKey = path.slice(SINGLE_PREFIX.length);
      }
    }
    const procedure = single ? OFREP_PROCEDURES.single : OFREP_PROCEDURES.bulk;
    const rid = req.headers["x-request-id"];
    const a = opts.admit(OFREP_PROCEDURE, authorizationOf(req), Array.isArray(rid) ? rid[0] : rid);
    const requestId = a.requestId;
    const report = (error: unknown) =>
      opts.report({ procedure, method: procedure.slice(procedure.indexOf("/") + 1), requestId, caller: a.caller.name, rollout: "", started }, error);
    const http2 = "stream" in req;
    const send = (status: number, body: unknown, headers: Record<string, string> = {}) => {
      const text = body === undefined ? "" : JSON.stringify(body);
      r.writeHead(status, { "content-type": "application/json", "cache-control": "no-store", "x-request-id": requestId, ...headers });
      r.end(text);
    };
    /** Body bytes read so far (readBody counts them). */
    const read = { bytes: 0 };
    /**
     * Answers a refusal before (or while) the body is read, and stops reading the rest of it:
     * no more than `max` body bytes in all (to the chunk the socket delivered).
     */
    const refuse = (status: number, body: unknown, headers: Record<string, string> = {}) => {
      const pending = bodyPending(req);
      send(status, body, pending && !http2 ? { ...headers, connection: "close" } : headers);
      if (pending) stopReading(req, r, Math.max(0, max - read.bytes));
    };
    const fail = (e: unknown) => {
      if (e instanceof OfrepError) {
        report(new ConnectError(e.message, codeOfStatus(e.status)));
        if (e.status === 413) return refuse(413, { errorDetails: e.message });
        if (e.errorCode === undefined) return send(e.status, { errorDetails: e.message });
        return send(e.status, { ...(flagKey === undefined ? {} : { key: flagKey }), errorCode: e.errorCode, errorDetails: e.message });
      }
      // The reporter logs an INTERNAL error with its cause; the caller sees the request id only.
      report(new ConnectError("internal error", Code.Internal, undefined, undefined, e));
      return send(500, { errorDetails: `internal error (request id ${requestId})` });
    };
    if (a.refusal !== undefined) {
      report(a.refusal);
      return refuse(statusOfRefusal(a.refusal.code), { errorDetails: a.refusal.rawMessage });
    }
    if (req.method !== "POST") {
      report(new ConnectError("OFREP evaluation takes POST", Code.Unimplemented));
      return refuse(405, { errorDetails: "OFREP evaluation takes POST" }, { allow: "POST" });
    }
    readBody(req, max, read).then(
      (body) => {
        try {
          const key = targetingKeyOf(body);
          if (flagKey !== undefined) {
            const found = evaluateFlag(opts.engine, flagKey, key);
            if (found === undefined) throw new OfrepError(404, "FLAG_NOT_FOUND", `no flag "${flagKey}": flags are rollout names and rollout/feature`);
            opts.routed?.(found.table.rollout.name, found.decision.variant, 1);
            send(200, found.flag);
            return report(undefined);
          }
          const text = JSON.stringify({ flags: evaluateAll(opts.engine, key) });
          const etag = `"${createHash("sha256").update(text).digest("base64url").slice(0, 27)}"`;
          const inm = req.headers["if-none-match"];
          if (etagMatches(Array.isArray(inm) ? inm.join(",") : inm, etag)) {
            r.writeHead(304, { etag, "cache-control": "no-cache", "x-request-id": requestId });
            r.end();
          } else {
            r.writeHead(200, { "content-type": "application/json", "cache-control": "no-cache", etag, "x-request-id": requestId });
            r.end(text);
          }
          return report(undefined);
        } catch (e) {
          return fail(e);
        }
      },
      (e: unknown) => fail(e),
    );
  };
}

/**
 * Reads a request body up to `max` bytes; rejects with 413 beyond — a declared Content-Length
 * over `max` before reading anything, else as soon as the count passes `max` — and then reads
 * no more (the 413 is answered by `refuse`, which stops the rest).
 */
function readBody(req: IncomingMessage | Http2ServerRequest, max: number, read: { bytes: number }): Promise<string> {
  return new Promise((resolve, reject) => {
    const declared = Number(req.headers["content-length"] ?? 0);
    if (declared > max) {
      reject(new OfrepError(413, undefined, `request body exceeds ${max} bytes`));
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (c: Buffer) => {
      size += c.length;
      read.bytes = size;
      if (size > max) {
        req.off("data", onData);
        req.pause();
        reject(new OfrepError(413, undefined, `request body exceeds ${max} bytes`));
        return;
      }
      chunks.push(c);
    };
    req.on("data", onData);
    req.on("end", () => {
      if (size <= max) resolve(Buffer.concat(chunks).toString("utf8"));
    });
    req.on("error", reject);
  });
}

/** Returns the caller's credential as an authorization header value: Bearer, or X-API-Key as a bearer token. */
function authorizationOf(req: IncomingMessage | Http2ServerRequest): string | undefined {
  const authorization = req.headers.authorization;
  if (authorization !== undefined && authorization !== "") return authorization;
  const apiKey = req.headers["x-api-key"];
  const key = Array.isArray(apiKey) ? apiKey[0] : apiKey;
  return key === undefined || key === "" ? undefined : `Bearer ${key}`;
}
