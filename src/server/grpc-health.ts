import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, type HandlerContext, type ServiceImpl } from "@connectrpc/connect";
import { abortedStreamError } from "../service/errors.js";
import {
  Health,
  HealthCheckResponse_ServingStatus as ServingStatus,
  HealthCheckResponseSchema,
  HealthListResponseSchema,
  type HealthCheckRequest,
  type HealthCheckResponse,
} from "../../gen/grpc/health/v1/health_pb.js";

/** A serving status by its proto name, as operators read it in grpcurl output. */
export type ServingStatusName = "UNKNOWN" | "SERVING" | "NOT_SERVING";

/** The status registry and `grpc.health.v1.Health` implementation of one server. */
export interface HealthStatus {
  /** The service descriptor to register `impl` under. */
  readonly service: typeof Health;
  readonly impl: ServiceImpl<typeof Health>;
  /** Sets one service's status (a new name is added); ignored after {@link HealthStatus.shutdown}. */
  set(service: string, status: ServingStatus | ServingStatusName): void;
  /** Sets every known name's status, the whole server ("") included; ignored after shutdown. */
  setAll(status: ServingStatus | ServingStatusName): void;
  /** Returns a service's status, or undefined for a name the registry does not know. */
  get(service: string): ServingStatus | undefined;
  /**
   * Sets every name to NOT_SERVING for good and ends every Watch with an OK status, so that a
   * graceful shutdown never waits on health watchers.
   */
  shutdown(): void;
  /** Returns the number of Watch calls open. */
  watchers(): number;
}

/**
 * Creates the health registry for the whole server ("") and the given fully-qualified service
 * names (e.g. `rollgate.v1.DecisionService`), all starting as `initial` (default NOT_SERVING,
 * so that load balancers wait until the server says it is ready).
 */
export function createHealthStatus(
  services: readonly string[],
  initial: ServingStatus | ServingStatusName = ServingStatus.NOT_SERVING,
): HealthStatus {
  const statuses = new Map<string, ServingStatus>();
  for (const name of ["", ...services]) statuses.set(name, toStatus(initial));
  const watchers = new Set<() => void>();
  let stopped = false;

  const notify = () => {
    for (const wake of watchers) wake();
  };
  const set = (service: string, status: ServingStatus | ServingStatusName) => {
    if (stopped) return;
    const next = toStatus(status);
    if (statuses.get(service) === next) return;
    statuses.set(service, next);
    notify();
  };

  const impl: ServiceImpl<typeof Health> = {
    check(req) {
      const status = statuses.get(req.service);
      if (status === undefined) throw new ConnectError(`unknown service "${req.service}"`, Code.NotFound);
      return { status };
    },
    list() {
      const out = create(HealthListResponseSchema);
      for (const [name, status] of statuses) out.statuses[name] = create(HealthCheckResponseSchema, { status });
      return out;
    },
    watch(req, ctx) {
      return watchStatus(req, ctx);
    },
  };

  async function* watchStatus(req: HealthCheckRequest, ctx: HandlerContext): AsyncGenerator<HealthCheckResponse> {
    let wake = () => {};
    const onChange = () => wake();
    watchers.add(onChange);
    ctx.signal.addEventListener("abort", onChange);
    try {
      let last: ServingStatus | undefined;
      for (;;) {
        const current = statuses.get(req.service) ?? ServingStatus.SERVICE_UNKNOWN;
        if (current !== last) {
          last = current;
          yield create(HealthCheckResponseSchema, { status: current });
          // The stream may have been suspended in `yield` for a while (a slow reader): look
          // again before waiting or ending, so no change, the last before shutdown included, is lost.
          continue;
        }
        if (stopped) return;
        const end = abortedStreamError(ctx.signal);
        if (end !== undefined) throw end;
        // Nothing can change between the read above and this wait: both run in one turn.
        await new Promise<void>((resolve) => (wake = resolve));
      }
    } finally {
      watchers.delete(onChange);
      ctx.signal.removeEventListener("abort", onChange);
    }
  }

  return {
    service: Health,
    impl,
    set,
    setAll(status) {
      for (const name of statuses.keys()) set(name, status);
    },
    get: (service) => statuses.get(service),
    shutdown() {
      if (stopped) return;
      for (const name of statuses.keys()) statuses.set(name, ServingStatus.NOT_SERVING);
      stopped = true;
      notify();
    },
    watchers: () => watchers.size,
  };
}

function toStatus(status: ServingStatus | ServingStatusName): ServingStatus {
  const value = typeof status === "number" ? status : ServingStatus[status];
  if (value === ServingStatus.SERVICE_UNKNOWN) {
    throw new RangeError("SERVICE_UNKNOWN is what Watch reports for unknown names; it cannot be set");
  }
  return value;
}
