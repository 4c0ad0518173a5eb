import { Code, ConnectError, type Transport } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-web";
import { DEFAULT_TIMEOUT_MS, interceptorsOf, type CommonClientOptions } from "./client-options.js";

/** Options of the Connect-over-fetch transport. */
export interface FetchTransportOptions extends CommonClientOptions {
  /** Binary protobuf instead of JSON on the wire; default false (JSON reads well in devtools). */
  readonly useBinaryFormat?: boolean;
  /** The fetch to use; default globalThis.fetch. */
  readonly fetch?: typeof globalThis.fetch;
}

/**
 * Returns a Connect transport over fetch (HTTP/1.1 or whatever the platform negotiates): works
 * in browsers and in Node 20. A request that never reached the server (fetch's TypeError) is
 * reported as UNAVAILABLE, so it is retried like any other unavailability.
 */
export function createFetchTransport(options: FetchTransportOptions): Transport {
  const base = options.fetch ?? globalThis.fetch;
  const fetchUnavailable: typeof globalThis.fetch = async (input, init) => {
    try {
      return await base(input, init);
    } catch (e) {
      if (e instanceof TypeError) throw new ConnectError(`cannot reach ${options.baseUrl}: ${causeOf(e)}`, Code.Unavailable, undefined, undefined, e);
      throw e;
    }
  };
  return createConnectTransport({
    baseUrl: options.baseUrl,
    useBinaryFormat: options.useBinaryFormat ?? false,
    fetch: fetchUnavailable,
    defaultTimeoutMs: options.timeoutMs ?? DEFAULT_TIMEOUT_MS,
    interceptors: interceptorsOf(options),
  });
}

function causeOf(e: TypeError): string {
  const cause = (e as { cause?: unknown }).cause;
  return cause instanceof Error ? cause.message : e.message;
}
