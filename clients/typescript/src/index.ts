import { createGrpcTransport, Http2SessionManager } from "@connectrpc/connect-node";
import type { SecureClientSessionOptions } from "node:http2";
import { DEFAULT_TIMEOUT_MS, interceptorsOf, type CommonClientOptions } from "./client-options.js";
import { createClientFromTransport, type RollgateClient } from "./client.js";
import { createFetchTransport } from "./fetch-transport.js";

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
  if ((options.protocol ?? "grpc") === "connect") {
    return createClientFromTransport({ ...coreOf(options), transport: createFetchTransport(options) });
  }
  const sessions = new Http2SessionManager(options.baseUrl, { idleConnectionTimeoutMs: 60_000 }, options.tls ?? {});
  const transport = createGrpcTransport({
    baseUrl: options.baseUrl,
    sessionManager: sessions,
    defaultTimeoutMs: options.timeoutMs ?? DEFAULT_TIMEOUT_MS,
    interceptors: interceptorsOf(options),
  });
  return createClientFromTransport({ ...coreOf(options), transport, closeTransport: () => sessions.abort() });
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
