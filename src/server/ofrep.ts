import { createHash } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Http2ServerRequest } from "node:http2";
import { Code, ConnectError } from "@connectrpc/connect";
import { keyProblem } from "../domain/bucketing.js";
import { DomainError } from "../domain/errors.js";
import type { Variant } from "../domain/rollout.js";
import { route, type RouteDecision, type RouteReason, type RouteTable } from "../domain/routing.js";
import type { Engine } from "../service/engine.js";
import type { Authenticator } from "./auth.js";
import type { RequestHandler } from "./http-endpoints.js";

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

/** The RPC whose role OFREP callers need: evaluating a flag is reading a route. */
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
  readonly auth: Authenticator;
  /** True once state is loaded, until shutdown begins. */
  ready(): boolean;
  /** Counts routed keys, as Route does (metrics). */
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

/** Evaluates every flag (every rollout and each of its features) for a routing key, in key order. */
export function evaluateAll(engine: Engine, targetingKey: string, routed?: OfrepOptions["routed"]): OfrepEvaluation[] {
  const flags: OfrepEvaluation[] = [];
  for (const r of engine.list()) {
    const table = tableOf(engine, r.name);
    if (table === undefined) continue;
    const d = route(table, targetingKey);
    routed?.(r.name, d.variant, 1);
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

/** Reads a request body up to `max` bytes; rejects with 413 beyond. */
function readBody(req: IncomingMessage | Http2ServerRequest, max: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const declared = Number(req.headers["content-length"] ?? 0);
    if (declared > max) {
      req.resume();
      reject(new OfrepError(413, undefined, `request body exceeds ${max} bytes`));
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    let over = false;
    req.on("data", (c: Buffer) => {
      if (over) return;
      size += c.length;
      if (size > max) {
        over = true;
        reject(new OfrepError(413, undefined, `request body exceeds ${max} bytes`));
        return;
      }
      chunks.push(c);
    });
    req.on("end", () => {
      if (!over) resolve(Buffer.concat(chunks).toString("utf8"));
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

/**
 * Returns a handler that answers OFREP's `POST /ofrep/v1/evaluate/flags/{key}` and
 * `POST /ofrep/v1/evaluate/flags` and passes every other request to `next`.
 */
export function withOfrep(opts: OfrepOptions, next: RequestHandler): RequestHandler {
  const max = opts.maxBodyBytes ?? OFREP_MAX_BODY_BYTES;
  return (req, res) => {
    const url = req.url ?? "/";
    if (!url.startsWith(BULK_PATH)) return next(req, res);
    const path = url.split("?", 1)[0]!;
    const single = path.startsWith(SINGLE_PREFIX);
    if (!single && path !== BULK_PATH) return next(req, res);
    // The two response types share this surface but not a declared type.
    const r = res as ServerResponse;
    const send = (status: number, body: unknown, headers: Record<string, string> = {}) => {
      const text = body === undefined ? "" : JSON.stringify(body);
      r.writeHead(status, { "content-type": "application/json", "cache-control": "no-store", ...headers });
      r.end(text);
    };
    const fail = (e: unknown, flagKey: string | undefined) => {
      if (e instanceof OfrepError) {
        if (e.errorCode === undefined) return send(e.status, { errorDetails: e.message });
        return send(e.status, { ...(flagKey === undefined ? {} : { key: flagKey }), errorCode: e.errorCode, errorDetails: e.message });
      }
      return send(500, { errorDetails: "internal error" });
    };
    let flagKey: string | undefined;
    if (single) {
      try {
        flagKey = decodeURIComponent(path.slice(SINGLE_PREFIX.length));
      } catch {
        flagKey = path.slice(SINGLE_PREFIX.length);
      }
    }
    if (req.method !== "POST") {
      req.resume();
      return send(405, { errorDetails: "OFREP evaluation takes POST" }, { allow: "POST" });
    }
    try {
      opts.auth.authorize(authorizationOf(req), OFREP_PROCEDURE);
    } catch (e) {
      req.resume();
      const denied = e instanceof ConnectError && e.code === Code.PermissionDenied;
      return send(denied ? 403 : 401, { errorDetails: e instanceof Error ? e.message : "unauthenticated" });
    }
    if (!opts.ready()) {
      req.resume();
      return send(503, { errorDetails: "rollgate is not ready" });
    }
    readBody(req, max).then(
      (body) => {
        try {
          const key = targetingKeyOf(body);
          if (flagKey !== undefined) {
            const found = evaluateFlag(opts.engine, flagKey, key);
            if (found === undefined) throw new OfrepError(404, "FLAG_NOT_FOUND", `no flag "${flagKey}": flags are rollout names and rollout/feature`);
            opts.routed?.(found.table.rollout.name, found.decision.variant, 1);
            return send(200, found.flag);
          }
          const text = JSON.stringify({ flags: evaluateAll(opts.engine, key, opts.routed) });
          const etag = `"${createHash("sha256").update(text).digest("base64url").slice(0, 27)}"`;
          const inm = req.headers["if-none-match"];
          if (etagMatches(Array.isArray(inm) ? inm.join(",") : inm, etag)) {
            r.writeHead(304, { etag, "cache-control": "no-cache" });
            return r.end();
          }
          r.writeHead(200, { "content-type": "application/json", "cache-control": "no-cache", etag });
          return r.end(text);
        } catch (e) {
          return fail(e, flagKey);
        }
      },
      (e: unknown) => fail(e, flagKey),
    );
  };
}
