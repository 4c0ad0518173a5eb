/** Marker yielded by withKeepalive when the source was quiet for a whole period. */
export const KEEPALIVE: unique symbol = Symbol("keepalive");

/**
 * Yields the items of `source`, and KEEPALIVE whenever `periodMs` passes without one, so that
 * proxies don't cut a quiet stream. Ends when the source ends or the signal aborts.
 */
export async function* withKeepalive<T>(
  source: AsyncIterable<T>,
  periodMs: number,
  signal: AbortSignal,
): AsyncGenerator<T | typeof KEEPALIVE> {
  const it = source[Symbol.asyncIterator]();
  let pending = it.next();
  let timer: NodeJS.Timeout | undefined;
  try {
    for (;;) {
      if (signal.aborted) return;
      const tick = new Promise<typeof KEEPALIVE>((resolve) => {
        timer = setTimeout(() => resolve(KEEPALIVE), periodMs);
      });
      const next = await Promise.race([pending, tick]);
      clearTimeout(timer);
      if (next === KEEPALIVE) {
        yield KEEPALIVE;
        continue;
      }
      if (next.done === true) return;
      pending = it.next();
      yield next.value;
    }
  } finally {
    clearTimeout(timer);
    await it.return?.();
  }
}
