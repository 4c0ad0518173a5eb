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

/** Returns a request id from the caller's `x-request-id` header, or a new one. */
export function requestIdOf(header: string | null | undefined): string {
  return header !== null && header !== undefined && /^[\w.:-]{1,128}$/.test(header) ? header : randomUUID();
}

/**
 * Returns an interceptor that gives every call a request id, counts and times it in the RPC
 * metrics and logs it (control plane at info; hot-path methods only on error). INTERNAL errors
 * are logged with their cause — the caller only ever sees the request id.
 */
export function observeInterceptor(logger: Logger, metrics: Metrics): Interceptor {
  return (next) => async (req) => {
    const started = process.hrtime.bigint();
    const id = requestIdOf(req.header.get("x-request-id"));
    req.contextValues.set(requestIdKey, id);
    const method = `${req.service.typeName}/${req.method.name}`;
    const hot = HOT.has(req.method.name);
    const finish = (err: unknown) => {
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      const ce = err === undefined ? undefined : ConnectError.from(err);
      const code = codeName(ce?.code);
      metrics.rpcDone(method, code, seconds);
      if (ce?.code === Code.Internal) {
        logger.error({ requestId: id, method, err: ce.cause ?? ce }, "internal error");
      } else if (!hot || ce !== undefined) {
        const caller = req.contextValues.get(callerKey).name;
        logger[ce === undefined ? "info" : "warn"](
          { requestId: id, method, code, ms: Math.round(seconds * 1e6) / 1000, caller, ...(ce === undefined ? {} : { error: ce.rawMessage }) },
          "rpc",
        );
      }
    };
    try {
      const res = await next(req);
      res.header.set("x-request-id", id);
      if (!res.stream) {
        finish(undefined);
        return res;
      }
      const messages = res.message;
      return {
        ...res,
        message: (async function* () {
          try {
            yield* messages;
            finish(undefined);
          } catch (e) {
            finish(e);
            throw e;
          }
        })(),
      };
    } catch (e) {
      finish(e);
      throw e;
    }
  };
}
