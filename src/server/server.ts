import type { ConnectRouter } from "@connectrpc/connect";
import { compressionBrotli, compressionGzip, connectNodeAdapter } from "@connectrpc/connect-node";
import { pino, type Logger } from "pino";
import { systemClock, type Clock } from "../domain/clock.js";
import { createDecisionHotMethods, createDecisionService } from "../service/decision-service.js";
import { createEngine, DATABASE_PAUSE, type Engine } from "../service/engine.js";
import { createRolloutChanges, createRolloutService } from "../service/rollout-service.js";
import { createRoutesFeed } from "../service/watch-routes.js";
import { openSqliteStore } from "../store/sqlite-store.js";
/** Thrown when the database path cannot be opened; `serve` reports it under the setting's name. */
export { StoreOpenError } from "../store/sqlite-store.js";
import type { PostgresStore } from "../store/postgres-store.js";
import { redactUrl } from "../store/redact-url.js";
import type { Store } from "../store/store.js";
import { DecisionService } from "../../gen/rollgate/v1/decision_service_pb.js";
import { RolloutService } from "../../gen/rollgate/v1/rollout_service_pb.js";
import { admitInterceptor, createAdmit, type ServingState } from "./admit.js";
import { withAlertmanager } from "./alertmanager.js";
import { createAuthenticator } from "./auth.js";
import { isLoopback, type ServerConfig } from "./config.js";
import { createConnectFastPath } from "./connect-fast-path.js";
import { createGrpcFastPath } from "./grpc-fast-path.js";
import { withCanonicalGrpcMessage } from "./grpc/grpc-message.js";
import { createHealthStatus } from "./grpc-health.js";
import { withHttpEndpoints } from "./http-endpoints.js";
import { createLogDestination } from "./log-destination.js";
import { withMediaTypeHint } from "./media-types.js";
import { createMetrics, type Metrics } from "./metrics.js";
import { createNotifyMetrics } from "./notify-metrics.js";
import { createNotifier, type Notifier } from "../service/notify.js";
import { createCallReporter } from "./observe.js";
import { listenOnePort, type OnStreamHook } from "./one-port.js";
import { withOfrep } from "./ofrep.js";
import { registerReflection } from "./reflection.js";
import { loadDashboardAssets, withDashboard } from "./ui.js";
import { startTracing, type StoreTraceInfo } from "./tracing.js";
import { withRequestDecodeCodes } from "./connect/request-decode-codes.js";

/** Largest request message accepted, per docs/design.md §8; larger ones get RESOURCE_EXHAUSTED. */
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
  /** PostgreSQL only: how often every rollout is read back from the database besides NOTIFY (default 5 s). */
  readonly reconcileMs?: number;
  /** PostgreSQL only: how often a replica tries for the evaluator lock (default 1 s). */
  readonly leaderCheckMs?: number;
  /** How often the database is pinged for /readyz (default 1 s): PostgreSQL reachable, SQLite writable. */
  readonly databasePingMs?: number;
  /** PostgreSQL only: connection attempts at start before giving up (default 8, about 20 s). */
  readonly dbConnectAttempts?: number;
  /** The dashboard's asset folder (default: `ui/` at the package root). */
  readonly dashboardDir?: string;
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
  /** The outbound notifier, when `--notify` configures webhooks. */
  readonly notifier: Notifier | undefined;
  /** Graceful shutdown: stop accepting, end streams cleanly, flush state, close the store. */
  close(): Promise<void>;
}

/**
 * Starts rollgate on one port (docs/design.md §1): listens first so that /healthz answers at once,
 * then opens the store and loads state; /readyz and the rollgate services answer only after.
 */
export async function startServer(config: ServerConfig, deps: ServerDeps = {}): Promise<RunningServer> {
  // Lines are gathered and written once per event-loop turn; changes' lines are written out before they are answered (log-destination.ts).
  const logDestination = deps.logger === undefined ? createLogDestination() : undefined;
  const baseLogger = deps.logger ?? pino({ level: config.logLevel, base: { service: "rollgate" } }, logDestination);
  // Several replicas share a PostgreSQL database: each log line and metric says which one.
  const multiReplica = config.database.kind === "postgres";
  const logger = multiReplica ? baseLogger.child({ replica: config.replicaId }) : baseLogger;
  const clock = deps.clock ?? systemClock;
  let state: ServingState = "starting";
  // OpenTelemetry: the SDK is loaded only when OTEL_* configures traces (tracing.ts).
  const tracing =
    config.tracing === undefined
      ? undefined
      : await startTracing(config.tracing, { instanceId: config.replicaId }, { warn: (message) => logger.warn({ component: "opentelemetry" }, message) });

  const store = await openStore(config, logger, deps);
  // A networked store can go away while the server runs: /readyz says so (Route keeps answering
  // from memory, and control-plane changes fail with UNAVAILABLE, changing nothing).
  let databaseUp = true;
  // Why not (the last ping's error: "database: disk full (SQLITE_FULL)"), for /readyz's body.
  let databaseFault = "";
  const metrics = createMetrics(() => engine.list().map((r) => r.stage));
  if (multiReplica) metrics.registry.setDefaultLabels({ replica: config.replicaId });
  // Several replicas: an own event held behind another replica's unread one asks for a reconcile.
  let fillEventGap: (() => void) | undefined;
  const engine = createEngine({
    store: tracing === undefined ? store : tracing.store(store, storeTraceInfo(config)),
    tracer: tracing?.engine,
    clock,
    logger,
    observer: metrics.engine,
    ...(logDestination === undefined ? {} : { flushLog: logDestination.flushSync }),
    ...(multiReplica ? { onEventGap: () => fillEventGap?.() } : {}),
  });
  const served = [DecisionService.typeName, RolloutService.typeName];
  const health = createHealthStatus(served);

  const auth = createAuthenticator(config.tokens);
  const admit = createAdmit({ state: () => state, auth });
  const report = createCallReporter(logger, metrics);
  // One table of the hot methods: both the Connect service and the gRPC fast path are built from it.
  const routesFeed = createRoutesFeed({ engine, ...(deps.keepaliveMs === undefined ? {} : { heartbeatMs: deps.keepaliveMs }) });
  const hot = createDecisionHotMethods({ engine, observer: metrics, routes: routesFeed });
  // And one of the control-plane changes the Connect fast path serves.
  const changes = createRolloutChanges(engine);
  const routes = (router: ConnectRouter) => {
    router.service(DecisionService, createDecisionService({ engine, hot }));
    router.service(
      RolloutService,
      createRolloutService({ engine, changes, ...(deps.keepaliveMs === undefined ? {} : { keepaliveMs: deps.keepaliveMs }) }),
    );
    router.service(health.service, health.impl);
    registerReflection(router);
    withRequestDecodeCodes(router);
  };
  // Settings connect-node and the Connect fast path share, so that both answer alike.
  const connectSettings = {
    readMaxBytes: MAX_REQUEST_BYTES,
    // Protobuf's JSON rule, not connect-es's lenient default: a misspelt field ("gate" for
    // "gates") is INVALID_ARGUMENT naming it, never silently dropped. Binary keeps unknown fields.
    jsonOptions: { ignoreUnknownFields: false },
    // connect-node's defaults, written out for the fast path to read.
    acceptCompression: [compressionGzip, compressionBrotli],
    requireConnectProtocolHeader: false,
  };
  const connectHandler = connectNodeAdapter({ routes, ...connectSettings, interceptors: [admitInterceptor(admit, report, tracing?.call)] });
  // The dashboard (/ui/): its assets are read once, here, and served from memory.
  const dashboard = loadDashboardAssets(deps.dashboardDir);
  if (dashboard.missing !== undefined) logger.warn({ missing: dashboard.missing }, "dashboard assets not found: /ui/ answers 404");
  const connectNodeChain = withHttpEndpoints(
    { ready: () => state === "ready" && databaseUp, reason: () => (databaseUp ? undefined : databaseFault), registry: metrics.registry },
    withAlertmanager(
      { engine, admit, report, logger, registry: metrics.registry, databaseUp: () => databaseUp },
      withDashboard(
        dashboard,
        withOfrep({ engine, admit, report, routed: metrics.routed }, withMediaTypeHint(withCanonicalGrpcMessage(connectHandler))),
      ),
    ),
  );
  const connectFast = config.connectFastPath
    ? createConnectFastPath({
        methods: Object.values(hot),
        changes: Object.values(changes),
        admit,
        report,
        trace: tracing?.call,
        maxBytes: connectSettings.readMaxBytes,
        acceptCompression: connectSettings.acceptCompression,
        requireConnectProtocolHeader: connectSettings.requireConnectProtocolHeader,
        ignoreUnknownFields: connectSettings.jsonOptions.ignoreUnknownFields,
        served: (procedure) => metrics.connectFastPathServed(procedure),
      })
    : undefined;
  const handler = connectFast === undefined ? connectNodeChain : connectFast.handler(connectNodeChain);
  const grpcFast = config.grpcFastPath
    ? createGrpcFastPath({
        methods: Object.values(hot),
        admit,
        report,
        trace: tracing?.call,
        maxBytes: MAX_REQUEST_BYTES,
        served: (procedure) => metrics.fastPathServed(procedure),
      })
    : undefined;
  const hooks = [grpcFast, connectFast?.onStream].filter((h): h is OnStreamHook => h !== undefined);
  const onStream: OnStreamHook | undefined =
    hooks.length === 0 ? undefined : hooks.length === 1 ? hooks[0] : (stream, headers) => grpcFast!(stream, headers) || connectFast!.onStream(stream, headers);

  const listener = await listenOnePort({
    host: config.host,
    port: config.port,
    handler,
    keepaliveMs: config.http2KeepaliveMs,
    onCalm: (remoteAddress) => logger.warn({ remoteAddress }, "HTTP/2 connection closed: too many streams reset (GOAWAY ENHANCE_YOUR_CALM)"),
    ...(config.tls === undefined ? {} : { tls: config.tls }),
    ...(onStream === undefined ? {} : { onStream }),
  });
  metrics.observeLive({ subscribers: () => ({ ...engine.subscribers(), routes: routesFeed.watchers() }), sessions: () => listener.sessions() });
  const host = config.host;
  const address = host.includes(":") ? `[${host}]:${listener.port}` : `${host}:${listener.port}`;
  const url = `${config.tls === undefined ? "http" : "https"}://${address}`;
  tracing?.listening(host, listener.port);
  logger.info(
    {
      address,
      port: listener.port,
      tls: config.tls !== undefined,
      db: describeDatabase(config),
      grpcFastPath: config.grpcFastPath,
      connectFastPath: config.connectFastPath,
      ...(config.tracing === undefined ? {} : { tracing: config.tracing.exporters }),
    },
    "listening",
  );
  if (config.tokens === undefined) {
    logger.warn(
      { address },
      isLoopback(host)
        ? "no tokens configured: every caller is the local admin; serving loopback only"
        : `no tokens configured and --insecure: serving ${host === "0.0.0.0" || host === "::" ? "every address of this host" : address} without authentication; every caller is the admin`,
    );
  }

  try {
    await engine.load();
  } catch (e) {
    await listener.close(0);
    await store.close();
    await tracing?.shutdown();
    throw e;
  }
  // Outbound notifications follow the audit log from here on, off the command path.
  let notifier: Notifier | undefined;
  if (config.notify !== undefined) {
    const observer = createNotifyMetrics(metrics.registry, () => notifier);
    notifier = createNotifier({ engine, webhooks: config.notify, publicUrl: config.publicUrl ?? url, logger, observer });
    notifier.start();
  }
  state = "ready";
  health.setAll("SERVING");
  // Timers run on real time; a test clock only changes what "now" is.
  let ticking = false;
  // One evaluator at a time among replicas: the holder of the database's evaluator lock. Every
  // replica tries for it each second, so when the holder dies another takes over within about
  // a second of the database noticing, and goes on from the stored evaluator state.
  const leadership = "leadership" in store ? (store as PostgresStore).leadership() : undefined;
  let campaigning = false;
  let leading = false;
  const campaign = () => {
    if (leadership === undefined || campaigning) return;
    campaigning = true;
    leadership
      .tryAcquire()
      .then(async (held) => {
        if (held && !leading) {
          await engine.reconcile(true);
          leading = true;
          logger.info("became the evaluator");
        } else if (!held && leading) {
          leading = false;
          logger.warn("no longer the evaluator");
        }
      })
      .catch((err: unknown) => logger.warn({ err: (err as Error).message }, "evaluator lock check failed"))
      .finally(() => (campaigning = false));
  };
  campaign();
  const campaigner = leadership === undefined ? undefined : setInterval(campaign, deps.leaderCheckMs ?? 1000);
  const tick = setInterval(() => {
    // A slow evaluation round is never stacked behind another.
    if (ticking) return;
    ticking = true;
    // Not the evaluator: show the evaluator's judgement of every replica's outcomes instead.
    const round = leadership !== undefined && !(leading && leadership.held) ? engine.follow() : engine.tick();
    round.finally(() => (ticking = false));
  }, deps.evaluationTickMs ?? 250);
  const ping = "ping" in store && typeof store.ping === "function" ? (store.ping as () => Promise<void>).bind(store) : undefined;
  let pinging = false;
  const pinger =
    ping === undefined
      ? undefined
      : setInterval(() => {
          if (pinging) return;
          pinging = true;
          ping().then(
            () => {
              if (!databaseUp) {
                logger.info("database reachable again");
                engine.pauseEvaluation(undefined);
              }
              databaseUp = true;
            },
            (err: unknown) => {
              if (databaseUp) logger.error({ err: (err as Error).message }, "database unreachable");
              databaseUp = false;
              databaseFault = (err as Error).message.split("; the change was not made")[0]!;
              // Every replica says so, the evaluator's standby included: no one judges meanwhile.
              engine.pauseEvaluation(DATABASE_PAUSE);
            },
          ).finally(() => (pinging = false));
        }, deps.databasePingMs ?? 1000);
  // Other replicas' changes: LISTEN/NOTIFY for speed, a periodic reconcile for anything a lost
  // connection missed. A notification reads back only the rollout it names (and any the new
  // events name); the periodic one, a reconnect and an event gap read every rollout. Requests
  // arriving while one runs are merged into the next.
  let reconciling = false;
  let wantAll = false;
  const wanted = new Set<string>();
  const runReconcile = () => {
    if (reconciling || (!wantAll && wanted.size === 0)) return;
    reconciling = true;
    const only = wantAll ? undefined : new Set(wanted);
    wantAll = false;
    wanted.clear();
    engine
      .reconcile(false, only)
      .then((n) => {
        if (n > 0) logger.debug({ changed: n }, "reconciled with the database");
      })
      // The periodic reconcile (every rollout) catches up with what a failed one missed.
      .catch((err: unknown) => logger.warn({ err: (err as Error).message }, "reconcile failed"))
      .finally(() => {
        reconciling = false;
        runReconcile();
      });
  };
  const reconcileNow = () => {
    wantAll = true;
    runReconcile();
  };
  const reconcileOne = (name: string) => {
    wanted.add(name);
    runReconcile();
  };
  fillEventGap = reconcileNow;
  const watcher =
    "watchChanges" in store
      ? (store as PostgresStore).watchChanges((c) => {
          if (c.replica !== config.replicaId) reconcileOne(c.rollout);
        }, reconcileNow)
      : undefined;
  const reconciler = watcher === undefined ? undefined : setInterval(reconcileNow, deps.reconcileMs ?? 5000);
  // A flush slower than the period (a slow or lost database) is not stacked behind another; the
  // engine runs flushes one at a time anyway, so shutdown's last one waits for a running one.
  let flushing = false;
  const flusher = setInterval(() => {
    if (flushing) return;
    flushing = true;
    engine
      .flush()
      .catch((err: unknown) => logger.error({ err }, "window flush failed"))
      .finally(() => (flushing = false));
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
    notifier,
    close() {
      closing ??= (async () => {
        state = "draining";
        logger.info("shutting down");
        clearInterval(tick);
        clearInterval(flusher);
        if (pinger !== undefined) clearInterval(pinger);
        if (reconciler !== undefined) clearInterval(reconciler);
        if (campaigner !== undefined) clearInterval(campaigner);
        await watcher?.close();
        await notifier?.close();
        health.shutdown();
        engine.shutdown();
        await listener.close(SHUTDOWN_GRACE_MS);
        await engine.drain();
        await engine.flush();
        await leadership?.release();
        await store.close();
        // Last: the spans of the final flush and commit go out too.
        await tracing?.shutdown();
        logger.info("stopped");
        logDestination?.close();
      })();
      return closing;
    },
  };
}

/** Opens the configured store: PostgreSQL (with a bounded, logged retry of the first connection) or SQLite. */
async function openStore(config: ServerConfig, logger: Logger, deps: ServerDeps): Promise<Store> {
  const db = config.database;
  if (db.kind === "sqlite") return openSqliteStore(db.path, { checkpointThread: { warn: (msg) => logger.warn(msg) } });
  // Loaded only when used: every CLI command imports this module, and pg is not small.
  const { openPostgresStore } = await import("../store/postgres-store.js");
  return openPostgresStore({
    url: db.url,
    replicaId: config.replicaId,
    ...(deps.dbConnectAttempts === undefined ? {} : { connectAttempts: deps.dbConnectAttempts }),
    onRetry: (attempt, retryInMs, err) =>
      logger.warn({ db: redactUrl(db.url), attempt, retryInMs, err: err.message }, "database not reachable; retrying"),
    onIdleError: (err) => logger.warn({ db: redactUrl(db.url), err: err.message }, "database connection lost"),
  });
}

/** Returns what the store spans say about the database: its system and name (never the URL's credentials). */
function storeTraceInfo(config: ServerConfig): StoreTraceInfo {
  const db = config.database;
  return db.kind === "sqlite" ? { system: "sqlite", namespace: db.path } : { system: "postgresql", namespace: decodeURIComponent(new URL(db.url).pathname.slice(1)) };
}

function describeDatabase(config: ServerConfig): string {
  return config.database.kind === "postgres" ? redactUrl(config.database.url) : config.database.path;
}
