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
  /** The call's server span when tracing is on (CallTracer); the reporter ends it. */
  readonly span?: CallSpan | undefined;
}

/** The RPC system of a call, as OpenTelemetry's `rpc.system` names it. */
export type RpcSystem = "grpc" | "connect_rpc";

/**
 * Starts the server span of one call (tracing.ts), the child of the caller's span when its W3C
 * `traceparent`/`tracestate` headers name one. The server hands it to a serving path only when
 * tracing is configured, so with tracing off a path pays one undefined check per call. A path
 * calls it once per call after admission, puts the span in every CallRecord it reports (the
 * reporter ends it with the call's status), and runs the handler inside `span.run` so that what
 * the handler does (a store commit) is the span's child.
 */
export type CallTracer = (
  procedure: string,
  system: RpcSystem,
  traceparent: string | null | undefined,
  tracestate: string | null | undefined,
) => CallSpan;

/** One call's server span (see CallTracer). */
export interface CallSpan {
  /** Returns fn's result, run with this span as the active span. */
  run<T>(fn: () => T): T;
  /** Ends the span with the call's outcome; the CallReporter calls it. */
  end(call: CallRecord, error: ConnectError | undefined): void;
}

/**
 * Reports a finished call: metrics always, a log line unless it is a successful hot-path call,
 * and the end of its span when it has one.
 */
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
    call.span?.end(call, ce);
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
