/**
 * The statistics an error-rate gate with `confidence` needs: one-sided tests that the canary's
 * error rate is worse than its threshold.
 *
 * Both tests are exact binomial tail tests rather than normal approximations. An early canary
 * has a few hundred requests and a handful of errors, exactly where z-tests and Wald intervals
 * misbehave: with 0 errors on one side their variance collapses and a single error looks
 * "significant" (a 1-in-100 canary error against 0 of 1,900 stable errors gives z ≈ 3.6 under
 * a score test, p ≈ 0.0002, while the exact probability is ≈ 0.07). Exact tails keep the
 * false-alarm rate at or below 1 − confidence at every sample size, so the confidence an
 * operator writes is the one they get.
 */

/** Returns ln Γ(x) for x > 0 (Lanczos approximation, g = 7, relative error below 1e-13). */
export function logGamma(x: number): number {
  if (x < 0.5) {
    // Reflection keeps the series in its accurate range.
    return Math.log(Math.PI / Math.abs(Math.sin(Math.PI * x))) - logGamma(1 - x);
  }
  const g = 7;
  const c = [
    0.99999999999980993, 676.5203681218851, -1259.1392167224028, 771.32342877765313, -176.61502916214059,
    12.507343278686905, -0.13857109526572012, 9.9843695780195716e-6, 1.5056327351493116e-7,
  ];
  const z = x - 1;
  let a = c[0] as number;
  const t = z + g + 0.5;
  for (let i = 1; i < g + 2; i++) a += (c[i] as number) / (z + i);
  return 0.5 * Math.log(2 * Math.PI) + (z + 0.5) * Math.log(t) - t + Math.log(a);
}

/** Continued fraction of the incomplete beta function, by the modified Lentz method. */
function betaContinuedFraction(x: number, a: number, b: number): number {
  const tiny = 1e-300;
  let c = 1;
  let d = 1 - ((a + b) * x) / (a + 1);
  if (Math.abs(d) < tiny) d = tiny;
  d = 1 / d;
  let h = d;
  for (let m = 1; m <= 100_000; m++) {
    const m2 = 2 * m;
    let num = (m * (b - m) * x) / ((a + m2 - 1) * (a + m2));
    d = 1 + num * d;
    if (Math.abs(d) < tiny) d = tiny;
    c = 1 + num / c;
    if (Math.abs(c) < tiny) c = tiny;
    d = 1 / d;
    h *= d * c;
    num = (-(a + m) * (a + b + m) * x) / ((a + m2) * (a + m2 + 1));
    d = 1 + num * d;
    if (Math.abs(d) < tiny) d = tiny;
    c = 1 + num / c;
    if (Math.abs(c) < tiny) c = tiny;
    d = 1 / d;
    const delta = d * c;
    h *= delta;
    if (Math.abs(delta - 1) < 1e-15) break;
  }
  return h;
}

/** Returns the regularized incomplete beta function I_x(a, b) for a, b > 0 and x in [0, 1]. */
export function incompleteBeta(x: number, a: number, b: number): number {
  if (x <= 0) return 0;
  if (x >= 1) return 1;
  const front = Math.exp(logGamma(a + b) - logGamma(a) - logGamma(b) + a * Math.log(x) + b * Math.log1p(-x));
  // The fraction converges quickly only below the mean; use I_x(a, b) = 1 − I_{1−x}(b, a) above it.
  if (x < (a + 1) / (a + b + 2)) return (front * betaContinuedFraction(x, a, b)) / a;
  return 1 - (front * betaContinuedFraction(1 - x, b, a)) / b;
}

/** Returns P(X >= k) for X ~ Binomial(n, p), which is I_p(k, n − k + 1). */
export function binomialUpperTail(k: number, n: number, p: number): number {
  if (k <= 0) return 1;
  if (k > n) return 0;
  if (p <= 0) return 0;
  if (p >= 1) return 1;
  return Math.min(1, Math.max(0, incompleteBeta(p, k, n - k + 1)));
}

/**
 * Returns the one-sided p-value of "the error rate is above `max`" given `errors` of `n`.
 *
 * The exact binomial test of H0 "rate <= max": P(Binomial(n, max) >= errors). The canary is
 * worse with confidence c when this is below 1 − c (equivalently, when the one-sided
 * Clopper–Pearson lower bound exceeds max).
 */
export function rateExceedsPValue(errors: number, n: number, max: number): number {
  if (n <= 0) return 1;
  return binomialUpperTail(errors, n, max);
}

/**
 * Returns the one-sided p-value of "the canary's error rate is above `ratio` × the stable's".
 *
 * The exact conditional test for a ratio of two rates: given the total error count T of both
 * sides, under H0 "canary rate = ratio × stable rate" the canary's share of the errors is
 * Binomial(T, ratio·n_c / (ratio·n_c + n_s)). Conditioning on T removes the unknown common
 * error rate, so nothing is estimated and no normal approximation is made: it is exact for
 * rare errors (the Poisson regime every healthy service is in) and conservative as rates
 * grow, and it stays sound with a handful of errors, or none, on either side.
 */
export function ratioExceedsPValue(canaryErrors: number, canaryN: number, stableErrors: number, stableN: number, ratio: number): number {
  if (canaryN <= 0 || stableN <= 0) return 1;
  const total = canaryErrors + stableErrors;
  const share = (ratio * canaryN) / (ratio * canaryN + stableN);
  return binomialUpperTail(canaryErrors, total, share);
}
