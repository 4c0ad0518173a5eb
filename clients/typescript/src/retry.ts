import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";

/** How calls are retried: only on UNAVAILABLE, with exponential backoff and jitter. */
export interface RetryPolicy {
  /** Attempts in all, the first included; 1 disables retries. Default 4. */
  readonly maxAttempts: number;
  /** Backoff before the second attempt. Default 100 ms. */
  readonly initialBackoffMs: number;
  /** Upper bound of any one backoff. Default 2000 ms. */
  readonly maxBackoffMs: number;
  /** Growth factor of the backoff per attempt. Default 2. */
  readonly multiplier: number;
}

/** The retry policy used unless a client is told otherwise. */
export const DEFAULT_RETRY_POLICY: RetryPolicy = { maxAttempts: 4, initialBackoffMs: 100, maxBackoffMs: 2000, multiplier: 2 };

/**
 * Returns the backoff before retry number `retry` (1 for the first retry).
 *
 * "Equal jitter": half the exponential delay is fixed, the other half random, so that many
 * clients cut off at once do not come back in lockstep, yet nobody retries at once.
 */
export function backoffMs(policy: RetryPolicy, retry: number, random: () => number = Math.random): number {
  const ceiling = Math.min(policy.maxBackoffMs, policy.initialBackoffMs * policy.multiplier ** Math.max(0, retry - 1));
  return ceiling / 2 + (random() * ceiling) / 2;
}

/** Resolves after `ms`, or rejects with the signal's reason as soon as it is aborted. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

/**
 * Returns an interceptor that retries unary calls failing with UNAVAILABLE, and nothing else.
 *
 * Every attempt shares the call's deadline: when it passes during a backoff, the call fails with
 * DEADLINE_EXCEEDED. Streams are not retried here (watchHealth reconnects on its own).
 */
export function retryInterceptor(policy: RetryPolicy): Interceptor {
  return (next) => async (req) => {
    if (req.stream || policy.maxAttempts <= 1) return next(req);
    for (let attempt = 1; ; attempt++) {
      try {
        return await next(req);
      } catch (e) {
        if (ConnectError.from(e).code !== Code.Unavailable || attempt >= policy.maxAttempts || req.signal.aborted) throw e;
        try {
          await sleep(backoffMs(policy, attempt), req.signal);
        } catch (abort) {
          throw ConnectError.from(abort);
        }
      }
    }
  };
}
