import { create, type DescService } from "@bufbuild/protobuf";
import { Code, ConnectError, type HandlerContext, type ServiceImpl } from "@connectrpc/connect";
import { isDomainError, type DomainErrorKind } from "../domain/errors.js";
import { requestIdKey } from "./context.js";
import { gateStatusToProto } from "./convert.js";
import { AllowedTransitionsSchema, FieldViolationsSchema, PromotionBlockedSchema } from "../../gen/rollgate/v1/errors_pb.js";

/** The wire code of each domain error kind; locked by a table test. */
export const CODE_OF: Readonly<Record<DomainErrorKind, Code>> = {
  invalid_argument: Code.InvalidArgument,
  not_found: Code.NotFound,
  already_exists: Code.AlreadyExists,
  failed_precondition: Code.FailedPrecondition,
  aborted: Code.Aborted,
  resource_exhausted: Code.ResourceExhausted,
  unauthenticated: Code.Unauthenticated,
  permission_denied: Code.PermissionDenied,
  unavailable: Code.Unavailable,
};

/** An error detail to attach: a message and its schema. */
export type OutgoingDetail = NonNullable<ConstructorParameters<typeof ConnectError>[3]>[number];

/**
 * Returns the ConnectError a caller sees for any thrown value. The one place where domain
 * errors become wire codes.
 *
 * Domain errors keep their message and details; ConnectErrors pass through; anything else is
 * INTERNAL with only the request id, so no SQLite message or stack trace reaches a caller.
 */
export function toConnectError(e: unknown, requestId: string): ConnectError {
  if (e instanceof ConnectError) return e;
  if (isDomainError(e)) {
    const details: OutgoingDetail[] = [];
    if (e.details.violations !== undefined) {
      details.push({
        desc: FieldViolationsSchema,
        value: create(FieldViolationsSchema, { violations: e.details.violations.map((v) => ({ ...v })) }),
      });
    }
    if (e.details.allowed !== undefined) {
      details.push({ desc: AllowedTransitionsSchema, value: create(AllowedTransitionsSchema, { allowed: [...e.details.allowed] }) });
    }
    if (e.details.gates !== undefined) {
      const gates = e.details.gates.map(gateStatusToProto);
      details.push({ desc: PromotionBlockedSchema, value: create(PromotionBlockedSchema, { gates }) });
    }
    return new ConnectError(e.message, CODE_OF[e.kind], undefined, details);
  }
  // The cause stays on the server for the log; the caller sees the request id only.
  return new ConnectError(`internal error (request id ${requestId || "unknown"})`, Code.Internal, undefined, undefined, e);
}

/**
 * Returns the error a server stream must end with when its signal aborted, or undefined when
 * it did not. Handlers just stop when the signal aborts; the stream must still say why:
 * DEADLINE_EXCEEDED when its deadline passed, CANCELED when the client went away (which only
 * the server's own reporting sees). A stream the server ends itself ends with OK.
 */
export function abortedStreamError(signal: AbortSignal): ConnectError | undefined {
  if (!signal.aborted) return undefined;
  const reason: unknown = signal.reason;
  return reason instanceof ConnectError ? reason : new ConnectError("the client canceled the call", Code.Canceled);
}

/**
 * Returns a service implementation whose every method maps thrown errors with toConnectError,
 * so handlers throw domain errors and never build wire errors themselves.
 */
export function withErrorMapping<S extends DescService>(service: S, impl: ServiceImpl<S>): ServiceImpl<S> {
  const out: Record<string, unknown> = {};
  const methods = impl as unknown as Record<string, (req: unknown, ctx: HandlerContext) => unknown>;
  for (const m of service.methods) {
    const fn = methods[m.localName];
    if (fn === undefined) continue;
    const mapped = (e: unknown, ctx: HandlerContext) => toConnectError(e, ctx.values.get(requestIdKey));
    if (m.methodKind === "unary" || m.methodKind === "client_streaming") {
      out[m.localName] = async (req: unknown, ctx: HandlerContext) => {
        try {
          return await fn(req, ctx);
        } catch (e) {
          throw mapped(e, ctx);
        }
      };
    } else {
      out[m.localName] = async function* (req: unknown, ctx: HandlerContext) {
        try {
          yield* fn(req, ctx) as AsyncIterable<unknown>;
        } catch (e) {
          throw mapped(e, ctx);
        }
        const end = abortedStreamError(ctx.signal);
        if (end !== undefined) throw end;
      };
    }
  }
  return out as ServiceImpl<S>;
}
