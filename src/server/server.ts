import type { ConnectRouter } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import { pino, type Logger } from "pino";
import { systemClock, type Clock } from "../domain/clock.js";
import { validateGates } from "../domain/gates.js";
import { createDecisionHandlers, createDecisionService, watchHealthChanges } from "../service/decision-service.js";
import { createEngine, type Engine } from "../service/engine.js";
import { createRolloutService } from "../service/rollout-service.js";
import { openSqliteStore } from "../store/sqlite-store.js";
import { DecisionService } from "../../gen/rollgate/v1/decision_service_pb.js";
import { RolloutService } from "../../gen/rollgate/v1/rollout_service_pb.js";
import { authInterceptor, createAuthenticator } from "./auth.js";
import type { ServerConfig } from "./config.js";
import { createGrpcFastPath } from "./grpc-fast-path.js";
import { createRoutesFeed, encodeRoutesMessage } from "../service/watch-routes.js";
import { withCanonicalGrpcMessage } from "./grpc-message.js";
import { createHealthStatus } from "./grpc-health.js";
import { withHttpEndpoints } from "./http-endpoints.js";
import { createMetrics, type Metrics } from "./metrics.js";
import { createCallReporter, observeInterceptor } from "./observe.js";
import { listenOnePort } from "./one-port.js";
import { withOfrep } from "./ofrep.js";
import { readinessInterceptor } from "./readiness.js";
import { registerReflection } from "./reflection.js";

/** Largest request message accepted, per DESIGN §8; larger ones get RESOURCE_EXHAUSTED. */
export const MAX_REQUEST_BYTES = 4 * 1024 * 1024;

/** How long shutdown lets in-flight calls finish before it cuts connections. */
const SHUTDOWN_GRACE_MS = 5000;

/** Things a test (or an embedding program) may supply instead of the defaults. */
export interface ServerDeps {
  readonly clock?: Clock;
  readonly logger?: Logger;
  /** WatchEvents keep-alive period (default 15 s). */
  readonly keepaliveMs?: number;
  /** How often the evaluator looks for rollouts whose interval has come round (default 250 ms). */
  readonly evaluationTickMs?: number;
  /** How often window buckets and evaluator state are flushed to the store (default 1 s). */
  readonly flushMs?: number;
}

/** A running rollgate server. */
export interface RunningServer {
  readonly host: string;
  readonly port: number;
  /** `host:port`, brackets around IPv6 hosts. */
  readonly address: string;
  /** `http://host:port` or `https://host:port`. */
  readonly url: string;
  readonly engine: Engine;
  readonly metrics: Metrics;
  readonly logger: Logger;
  /** Graceful shutdown: stop accepting, end streams cleanly, flush state, close the store. */
  close(): Promise<void>;
}

/**
 * Starts rollgate on one port (DESIGN §1): listens first so that /healthz answers at once,
 * then opens the store and loads state; /readyz and the rollgate services answer only after.
 */
export async function startServer(config: ServerConfig, deps: ServerDeps = {}): Promise<RunningServer> {
  const logger = deps.logger ?? pino({ level: config.logLevel, base: { service: "rollgate" } });
  const clock = deps.clock ?? systemClock;
  let state: "starting" | "ready" | "draining" = "starting";

  const store = openSqliteStore(config.dbPath);
  const metrics = createMetrics(() => engine.list().map((r) => r.stage));
  const engine = createEngine({ store, clock, logger, observer: metrics.engine });
  const served = [DecisionService.typeName, RolloutService.typeName];
  const health = createHealthStatus(served);

  const auth = createAuthenticator(config.tokens);
  const report = createCallReporter(logger, metrics);
  const routesFeed = createRoutesFeed({ engine, ...(deps.keepaliveMs === undefined ? {} : { heartbeatMs: deps.keepaliveMs }) });
  const decisions = { engine, observer: metrics, routes: routesFeed };
  const routes = (router: ConnectRouter) => {
    router.service(DecisionService, createDecisionService(decisions));
    router.service(
      RolloutService,
      createRolloutService({ engine, validateGates, ...(deps.keepaliveMs === undefined ? {} : { keepaliveMs: deps.keepaliveMs }) }),
    );
    router.service(health.service, health.impl);
    registerReflection(router);
  };
  const connectHandler = connectNodeAdapter({
    routes,
    readMaxBytes: MAX_REQUEST_BYTES,
    interceptors: [observeInterceptor(report), readinessInterceptor(() => state), authInterceptor(auth)],
  });
  const handler = withHttpEndpoints(
    { ready: () => state === "ready", registry: metrics.registry },
    withOfrep({ engine, auth, ready: () => state === "ready", routed: metrics.routed }, withCanonicalGrpcMessage(connectHandler)),
  );

  const listener = await listenOnePort({
    host: config.host,
    port: config.port,
    handler,
    ...(config.tls === undefined ? {} : { tls: config.tls }),
    ...(config.grpcFastPath
      ? {
          onStream: createGrpcFastPath({
            handlers: createDecisionHandlers(decisions),
            watchHealth: (rollout, signal) => watchHealthChanges(engine, rollout, signal),
            watchRoutes: (req, signal) => routesFeed.watch(req, signal, encodeRoutesMessage),
            auth,
            report,
            ready: () => state === "ready",
            maxBytes: MAX_REQUEST_BYTES,
            served: (procedure) => metrics.fastPathServed(procedure),
          }),
        }
      : {}),
  });
  const host = config.host;
  const address = host.includes(":") ? `[${host}]:${listener.port}` : `${host}:${listener.port}`;
  const url = `${config.tls === undefined ? "http" : "https"}://${address}`;
  logger.info({ address, port: listener.port, tls: config.tls !== undefined, db: config.dbPath, grpcFastPath: config.grpcFastPath }, "listening");
  if (config.tokens === undefined) {
    logger.warn({ address }, "no tokens configured: every caller is the local admin; serving loopback only");
  }

  try {
    await engine.load();
  } catch (e) {
    await listener.close(0);
    await store.close();
    throw e;
  }
  state = "ready";
  health.setAll("SERVING");
  // Timers run on real time; a test clock only changes what "now" is.
  let ticking = false;
  const tick = setInterval(() => {
    // A slow evaluation round is never stacked behind another.
    if (ticking) return;
    ticking = true;
    engine.tick().finally(() => (ticking = false));
  }, deps.evaluationTickMs ?? 250);
  const flusher = setInterval(() => {
    engine.flush().catch((err: unknown) => logger.error({ err }, "window flush failed"));
  }, deps.flushMs ?? 1000);
  logger.info({ rollouts: engine.list().length }, "ready");

  let closing: Promise<void> | undefined;
  return {
    host,
    port: listener.port,
    address,
    url,
    engine,
    metrics,
    logger,
    close() {
      closing ??= (async () => {
        state = "draining";
        logger.info("shutting down");
        clearInterval(tick);
        clearInterval(flusher);
        health.shutdown();
        engine.shutdown();
        await listener.close(SHUTDOWN_GRACE_MS);
        await engine.drain();
        await engine.flush();
        await store.close();
        logger.info("stopped");
      })();
      return closing;
    },
  };
}
