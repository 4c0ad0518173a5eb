import { randomUUID } from "node:crypto";
import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import type { Logger } from "pino";
import { callerKey, requestIdKey } from "../service/context.js";
import type { Metrics } from "./metrics.js";

/** Methods on the hot path: logged only when they fail, so a busy server logs nothing per call. */
const HOT = new Set(["Route", "RouteBatch", "RecordOutcome", "StreamOutcomes", "Health"]);

/** Returns the snake_case name of a status code ("ok", "invalid_argument", …). */
export function codeName(code: Code | undefined): string {
  if (code === undefined) return "ok";
  return Code[code].replace(/[A-Z]/g, (c, i: number) => (i === 0 ? c.toLowerCase() : `_${c.toLowerCase()}`));
}

/** Returns the rollout a request message names: `rollout` on the data plane, `name` on the control plane. */
export function rolloutOf(message: unknown): string {
  const m = message as { rollout?: unknown; name?: unknown } | null | undefined;
  if (typeof m?.rollout === "string") return m.rollout;
  if (typeof m?.name === "string") return m.name;
  // CreateRollout and UpdateRollout carry the rollout itself.
  const r = m?.rollout as { name?: unknown } | undefined;
  return typeof r?.name === "string" ? r.name : "";
}

/** Returns a request id from the caller's `x-request-id` header, or a new one. */
export function requestIdOf(header: string | null | undefined): string {
  return header !== null && header !== undefined && /^[\w.:-]{1,128}$/.test(header) ? header : randomUUID();
}

/** One finished call, as every serving path reports it. */
export interface CallRecord {
  /** "package.Service/Method". */
  readonly procedure: string;
  readonly method: string;
  readonly requestId: string;
  readonly caller: string;
  /** The rollout the request names ("" when none, or for a stream). */
  readonly rollout: string;
  /** process.hrtime.bigint() when the call arrived. */
  readonly started: bigint;
}

/** Reports a finished call: metrics always, a log line unless it is a successful hot-path call. */
export type CallReporter = (call: CallRecord, error: unknown) => void;

/**
 * Returns the call reporter shared by the Connect interceptor and the raw gRPC fast path, so
 * both count, time and log calls the same way. INTERNAL errors are logged with their cause;
 * callers only ever see the request id.
 */
export function createCallReporter(logger: Logger, metrics: Metrics): CallReporter {
  return (call, error) => {
    const seconds = Number(process.hrtime.bigint() - call.started) / 1e9;
    const ce = error === undefined ? undefined : ConnectError.from(error);
    const code = codeName(ce?.code);
    metrics.rpcDone(call.procedure, code, seconds);
    if (ce?.code === Code.Internal) {
      logger.error({ requestId: call.requestId, method: call.procedure, rollout: call.rollout, err: ce.cause ?? ce }, "internal error");
    } else if (ce !== undefined || !HOT.has(call.method)) {
      // A client that hangs up (a watch closed) is routine, not a warning.
      logger[ce === undefined || ce.code === Code.Canceled ? "info" : "warn"](
        {
          requestId: call.requestId,
          method: call.procedure,
          ...(call.rollout === "" ? {} : { rollout: call.rollout }),
          code,
          ms: Math.round(seconds * 1e6) / 1000,
          caller: call.caller,
          ...(ce === undefined ? {} : { error: ce.rawMessage }),
        },
        "rpc",
      );
    }
  };
}

/**
 * Returns an interceptor that gives every Connect-served call a request id (echoed in the
 * `x-request-id` response header) and reports it when it ends (streams: when the stream ends).
 */
export function observeInterceptor(report: CallReporter): Interceptor {
  return (next) => async (req) => {
    const started = process.hrtime.bigint();
    const requestId = requestIdOf(req.header.get("x-request-id"));
    req.contextValues.set(requestIdKey, requestId);
    const record = () => ({
      procedure: `${req.service.typeName}/${req.method.name}`,
      method: req.method.name,
      requestId,
      caller: req.contextValues.get(callerKey).name,
      rollout: req.stream ? "" : rolloutOf(req.message),
      started,
    });
    try {
      const res = await next(req);
      res.header.set("x-request-id", requestId);
      if (!res.stream) {
        report(record(), undefined);
        return res;
      }
      const messages = res.message;
      return {
        ...res,
        message: (async function* () {
          try {
            yield* messages;
            report(record(), undefined);
          } catch (e) {
            report(record(), e);
            throw e;
          }
        })(),
      };
    } catch (e) {
      report(record(), e);
      // Errors carry the request id too (a response header for Connect, a trailer for gRPC).
      const ce = ConnectError.from(e);
      ce.metadata.set("x-request-id", requestId);
      throw ce;
    }
  };
}
