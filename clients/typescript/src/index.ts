import { createGrpcTransport, Http2SessionManager } from "@connectrpc/connect-node";
import type { SecureClientSessionOptions } from "node:http2";
import { DEFAULT_TIMEOUT_MS, interceptorsOf, type CommonClientOptions } from "./client-options.js";
import { createClientFromTransport, type RollgateClient } from "./client.js";
import { createFetchTransport } from "./fetch-transport.js";
import { createLocalMode, type LocalModeOptions, type LocalRollgateClient } from "./local-client.js";

/** Options of a rollgate client in Node. */
export interface RollgateClientOptions extends CommonClientOptions {
  /**
   * "grpc" (default): gRPC over HTTP/2, with one multiplexed connection.
   * "connect": the Connect protocol over fetch, the same transport browsers use.
   */
  readonly protocol?: "grpc" | "connect";
  /** TLS settings of the gRPC connection (CA, client certificate for mTLS); with "connect" use NODE_EXTRA_CA_CERTS. */
  readonly tls?: Pick<SecureClientSessionOptions, "ca" | "cert" | "key" | "servername" | "rejectUnauthorized">;
}

/**
 * Returns a rollgate client for Node.
 *
 * ```ts
 * const rollgate = createRollgateClient({ baseUrl: "http://127.0.0.1:8080", token: process.env.ROLLGATE_TOKEN });
 * ```
 */
export function createRollgateClient(options: RollgateClientOptions): RollgateClient {
  return clientWithSessions(options).client;
}

/** The client, and its HTTP/2 connection when it speaks gRPC (local mode drops it when it goes silent). */
function clientWithSessions(options: RollgateClientOptions): { client: RollgateClient; sessions?: Http2SessionManager } {
  if ((options.protocol ?? "grpc") === "connect") {
    return { client: createClientFromTransport({ ...coreOf(options), transport: createFetchTransport(options) }) };
  }
  const sessions = new Http2SessionManager(options.baseUrl, { idleConnectionTimeoutMs: 60_000 }, options.tls ?? {});
  const transport = createGrpcTransport({
    baseUrl: options.baseUrl,
    sessionManager: sessions,
    defaultTimeoutMs: options.timeoutMs ?? DEFAULT_TIMEOUT_MS,
    interceptors: interceptorsOf(options),
  });
  return { client: createClientFromTransport({ ...coreOf(options), transport, closeTransport: () => sessions.abort() }), sessions };
}

/** Options of a client in local mode. */
export interface LocalRollgateClientOptions extends RollgateClientOptions {
  readonly local?: LocalModeOptions;
}

/**
 * Returns a rollgate client in local mode: it holds the routing state of rollouts from a
 * WatchRoutes stream and answers `route` in process, synchronously (see the README's "Local
 * mode" for start-up, fallback and outage behaviour).
 *
 * ```ts
 * const rollgate = createLocalRollgateClient({ baseUrl: "http://127.0.0.1:8080", token: process.env.ROLLGATE_TOKEN });
 * await rollgate.ready();
 * const { variant, version } = rollgate.route("checkout", userId);
 * ```
 */
export function createLocalRollgateClient(options: LocalRollgateClientOptions): LocalRollgateClient {
  const { client: remote, sessions } = clientWithSessions(options);
  // A stream silent past the idle timeout is on a connection that may be dead without closing:
  // drop the connection so that the reconnect opens a new one.
  const onIdle = sessions === undefined ? undefined : () => sessions.abort();
  return createLocalMode(remote, (req, signal) => remote.decisions.watchRoutes(req, { signal, timeoutMs: 0 }), options.local, onIdle);
}

function coreOf(options: RollgateClientOptions) {
  return {
    ...(options.outcomes === undefined ? {} : { outcomes: options.outcomes }),
    ...(options.watch === undefined ? {} : { watch: options.watch }),
  };
}

export { bucket } from "./bucketing.js";
export { bucketAsync } from "./bucketing-web.js";
export { BUCKETS, isCanaryBucket } from "./buckets.js";
export { createClientFromTransport } from "./client.js";
export type { CallOpts, CoreOptions, RollgateClient } from "./client.js";
export { DEFAULT_TIMEOUT_MS } from "./client-options.js";
export type { CommonClientOptions } from "./client-options.js";
export { createFetchTransport } from "./fetch-transport.js";
export type { FetchTransportOptions } from "./fetch-transport.js";
export { isReconnectable } from "./health-watch.js";
export type { WatchHealthOptions } from "./health-watch.js";
export type { BatchResult, FailedBatch, OutcomeBufferOptions, OutcomeStats } from "./outcome-buffer.js";
export type { OutcomeInput } from "./outcome-input.js";
export { DEFAULT_RETRY_POLICY } from "./retry.js";
export type { RetryPolicy } from "./retry.js";
export type { TokenSource } from "./bearer-token.js";
export type { RouteReasonName, RouteResult, VariantName } from "./route-result.js";
export { applyRoutesMessage, createLocalMode } from "./local-client.js";
export type { LocalListener, LocalLogger, LocalModeOptions, LocalRollgateClient, LocalStats, OpenRoutesStream } from "./local-client.js";
export { bucketFast, compileRouteState, MalformedStateError, routeTable } from "./local-routing.js";
export type { LocalTable } from "./local-routing.js";
