import type { Interceptor } from "@connectrpc/connect";
import { bearerInterceptor, type TokenSource } from "./bearer-token.js";
import type { WatchHealthOptions } from "./health-watch.js";
import type { OutcomeBufferOptions } from "./outcome-buffer.js";
import { DEFAULT_RETRY_POLICY, retryInterceptor, type RetryPolicy } from "./retry.js";

/** Settings shared by every transport. */
export interface CommonClientOptions {
  /** The server, e.g. "http://127.0.0.1:8080" or "https://rollgate.internal:8443". */
  readonly baseUrl: string;
  /** Bearer token (or a function returning the current one) sent as `authorization`. */
  readonly token?: TokenSource;
  /** Deadline of every call in ms, unary retries included; default 10,000. watchHealth has none; other streams called through `rollouts`/`decisions` take it unless given `timeoutMs: 0`. */
  readonly timeoutMs?: number;
  /** Retries on UNAVAILABLE only; default 4 attempts, backoff 100 ms doubling to 2 s. */
  readonly retry?: Partial<RetryPolicy>;
  /** Outcome buffering: flush interval (1 s), batch size (500), bound, background error hook. */
  readonly outcomes?: OutcomeBufferOptions;
  /** Reconnect backoff and hook for watchHealth. */
  readonly watch?: Omit<WatchHealthOptions, "signal">;
  /** More interceptors, run before the token and retry interceptors. */
  readonly interceptors?: readonly Interceptor[];
}

/** The default deadline of unary calls. */
export const DEFAULT_TIMEOUT_MS = 10_000;

/** Returns the interceptor chain of a client: the caller's own, then the token, then retries. */
export function interceptorsOf(options: CommonClientOptions): Interceptor[] {
  return [
    ...(options.interceptors ?? []),
    ...(options.token === undefined ? [] : [bearerInterceptor(options.token)]),
    retryInterceptor({ ...DEFAULT_RETRY_POLICY, ...options.retry }),
  ];
}
