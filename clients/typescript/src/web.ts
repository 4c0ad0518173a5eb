import { createClientFromTransport, type RollgateClient } from "./client.js";
import { createFetchTransport, type FetchTransportOptions } from "./fetch-transport.js";

/**
 * Returns a rollgate client for browsers (and any runtime with fetch): the Connect protocol over
 * fetch. Nothing here imports a Node module.
 */
export function createRollgateClient(options: FetchTransportOptions): RollgateClient {
  return createClientFromTransport({
    transport: createFetchTransport(options),
    ...(options.outcomes === undefined ? {} : { outcomes: options.outcomes }),
    ...(options.watch === undefined ? {} : { watch: options.watch }),
  });
}

export { bucketAsync } from "./bucketing-web.js";
export { BUCKETS, isCanaryBucket } from "./buckets.js";
export type { CallOpts, RollgateClient } from "./client.js";
export type { FetchTransportOptions } from "./fetch-transport.js";
export type { WatchHealthOptions } from "./health-watch.js";
export type { OutcomeBufferOptions, OutcomeStats } from "./outcome-buffer.js";
export type { OutcomeInput } from "./outcome-input.js";
export type { RetryPolicy } from "./retry.js";
export type { RouteReasonName, RouteResult, VariantName } from "./route-result.js";
