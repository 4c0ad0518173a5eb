import { Code, ConnectError } from "@connectrpc/connect";
import type { Logger } from "pino";
import type { Metrics } from "./metrics.js";

/** Methods on the hot path: logged only when they fail, so a busy server logs nothing per call. */
const HOT = new Set(["Route", "RouteBatch", "RecordOutcome", "StreamOutcomes", "Health", "EvaluateFlag", "EvaluateFlags"]);

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
 * Returns the call reporter shared by the Connect interceptor (admit.ts) and the gRPC fast path, so
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
