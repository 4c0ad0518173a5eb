import { randomUUID } from "node:crypto";
import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import { callerKey, requestIdKey, type CallerIdentity } from "../service/context.js";
import type { Authenticator } from "./auth.js";
import { rolloutOf, type CallReporter, type CallTracer } from "./observe.js";

/**
 * Admission: what every call goes through before its handler, on every serving path — its
 * request id, then readiness, then authorization — written once so that a refusal reads the
 * same (code and message) whichever path served the call.
 */

/** The server's lifecycle as admission sees it. */
export type ServingState = "starting" | "ready" | "draining";

/** The outcome of admitting one call. */
export interface Admission {
  /** The caller's `x-request-id` when well-formed, else a new one; echoed in the answer. */
  readonly requestId: string;
  /** Who is calling, once admitted; "anonymous" on a refusal. */
  readonly caller: CallerIdentity;
  /** Why the call is refused (UNAVAILABLE, UNAUTHENTICATED, PERMISSION_DENIED), if it is. */
  readonly refusal: ConnectError | undefined;
}

/**
 * Admits one call to `procedure` ("package.Service/Method") from its `authorization` and
 * `x-request-id` header values.
 */
export type Admit = (procedure: string, authorization: string | null | undefined, requestIdHeader: string | null | undefined) => Admission;

/** Who a refused call is reported as: it was not let far enough to say. */
const REFUSED: CallerIdentity = { name: "anonymous", role: "reader" };

/**
 * Returns the admission step: rollgate's own services answer UNAVAILABLE (which clients retry)
 * until state is loaded and again once shutdown begins — gRPC health and reflection stay up —
 * and every call is authorized by `auth`.
 */
export function createAdmit(opts: { readonly state: () => ServingState; readonly auth: Authenticator }): Admit {
  return (procedure, authorization, requestIdHeader) => {
    const requestId = requestIdOf(requestIdHeader);
    try {
      if (procedure.startsWith("rollgate.")) {
        const s = opts.state();
        if (s !== "ready") throw new ConnectError(s === "starting" ? "starting: state is loading" : "shutting down", Code.Unavailable);
      }
      return { requestId, caller: opts.auth.authorize(authorization, procedure), refusal: undefined };
    } catch (e) {
      return { requestId, caller: REFUSED, refusal: ConnectError.from(e) };
    }
  };
}

/**
 * Returns the Connect interceptor of the connect-node path: admits every call (see createAdmit),
 * records its request id and caller in the context, echoes the request id (a response header,
 * and in error metadata: a header for Connect, a trailer for gRPC), and reports the call when
 * it ends (streams: when the stream ends); with `trace` (tracing on), each call is a server span.
 */
export function admitInterceptor(admit: Admit, report: CallReporter, trace?: CallTracer): Interceptor {
  return (next) => async (req) => {
    const started = process.hrtime.bigint();
    const procedure = `${req.service.typeName}/${req.method.name}`;
    const a = admit(procedure, req.header.get("authorization"), req.header.get("x-request-id"));
    const { requestId } = a;
    // gRPC and gRPC-Web are "grpc"; the Connect protocol is "connect_rpc".
    const span =
      trace === undefined
        ? undefined
        : trace(
            procedure,
            req.header.get("content-type")?.startsWith("application/grpc") ? "grpc" : "connect_rpc",
            req.header.get("traceparent"),
            req.header.get("tracestate"),
          );
    req.contextValues.set(requestIdKey, requestId);
    const record = () => ({
      procedure,
      method: req.method.name,
      requestId,
      caller: a.caller.name,
      rollout: req.stream ? "" : rolloutOf(req.message),
      started,
      span,
    });
    try {
      if (a.refusal !== undefined) throw a.refusal;
      req.contextValues.set(callerKey, a.caller);
      const res = await (span === undefined ? next(req) : span.run(() => next(req)));
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
      const ce = ConnectError.from(e);
      ce.metadata.set("x-request-id", requestId);
      throw ce;
    }
  };
}

// A new request id correlates logs and replies; it is no secret. So it is a UUID-shaped string
// from a random per-process prefix and a counter in the last 48 bits, not crypto.randomUUID():
// that builds every id from ~20 concatenated pieces, and the id lives as long as its call, so
// under the soak's load those pieces survived scavenges (~11% of the bytes that did, sampled).
const idPrefix = randomUUID().slice(0, 24);
let idCounter = 0;

/** Returns a request id from the caller's `x-request-id` header, or a new one. */
export function requestIdOf(header: string | null | undefined): string {
  if (header !== null && header !== undefined && /^[\w.:-]{1,128}$/.test(header)) return header;
  idCounter = (idCounter + 1) % 0x1000000000000;
  return idPrefix + idCounter.toString(16).padStart(12, "0");
}
