/**
 * A group-sequential exact test with alpha spending (docs/judgement.md): one false-alarm budget
 * α for every look at accumulating data, however many looks there are.
 *
 * The data arrive as intervals. In each, under H0, the canary's error count x is (given the
 * interval's totals) Binomial(t, θ): for a bound relative to the stable (canary rate = r0 ×
 * stable rate), t = canary + stable errors and θ = r0·n_c / (r0·n_c + n_s), the exact
 * conditional test that needs no estimate of the common error rate; for an absolute bound
 * (rate = max), t = n_c and θ = max. Intervals are independent, so S = Σ x is a sum of
 * independent binomials whose distribution the test carries exactly: F, the null
 * sub-distribution of S over the paths not yet stopped. At look k the test stops (rejects H0)
 * iff S ≥ c_k, where c_k is the smallest count with P0(not stopped before k, S ≥ c_k) ≤
 * α(k) − spent. Hence P0(ever stopped) ≤ α, for every error rate, every traffic split and
 * every realised count; a larger canary rate only makes stopping likelier (S is stochastically
 * increasing in it), so the promise holds for every canary no worse than the bound.
 *
 * Bursty errors: when per-interval rates vary beyond binomial noise, the kernel of a relative
 * bound becomes the conditional law of one gamma-Poisson (negative binomial) count given its
 * sum with another (`conditionalKernel`), that of an absolute bound a beta-binomial; both with
 * the estimated rate variation (sequential-gate.ts), which keeps the budget approximately; the
 * binomial is the case of none.
 *
 * Everything here is plain numbers, so a state serialises to JSON and back unchanged.
 */

/** Looks the spending function plans for; past it the remaining 3% of α is spent slowly, never exhausted. */
export const PLANNED_LOOKS = 20;

/** Probability mass below which F's outer entries are dropped (upper ones counted as spent, lower ones moved up: both conservative). */
const NEGLIGIBLE = 1e-17;

/**
 * Returns α(k), the share of the budget α that may be spent by look k (1-based): 90% by look
 * 6 (as (k/6)^1.5, so the first look spends 6.1%), 97% by look 20 (linear from 6), and the last 3%
 * past the planned horizon with a half-life of 10 looks, so that the test keeps some power
 * for a canary that turns bad late while its total stays below α.
 */
export function alphaSpending(alpha: number, look: number): number {
  if (look <= 0) return 0;
  const early = 0.9 * Math.min(1, look / 6) ** 1.5;
  const middle = 0.07 * Math.min(1, Math.max(0, (look - 6) / (PLANNED_LOOKS - 6)));
  const late = 0.03 * (1 - 2 ** (-Math.max(0, look - PLANNED_LOOKS) / 10));
  return alpha * (early + middle + late);
}

/** What the test carries between looks: small and plain, persisted with the analysis state. */
export interface SequentialState {
  /** Looks taken (tests made). */
  readonly looks: number;
  /** The share of α spent so far, as a probability (≤ α). */
  readonly spent: number;
  /** S: the canary's errors over every interval folded in. */
  readonly sum: number;
  /** E0[S]: what S would be expected to be under H0 (for display). */
  readonly expected: number;
  /** The lowest value of S that F holds. */
  readonly offset: number;
  /** F: P0(S = offset + i, not stopped), i = 0, 1, … */
  readonly dist: readonly number[];
  /** The boundary of the last look (S ≥ it stopped or would have stopped); -1 before any look or when unreachable. */
  readonly boundary: number;
  /** True once S crossed a boundary: H0 is rejected and stays rejected. */
  readonly crossed: boolean;
  /** P0(not stopped before the last look, S ≥ the S of that look), taken at that look (absent before any look). */
  readonly pValue?: number;
}

/** Returns the state of a test before any data. */
export function initialSequentialState(): SequentialState {
  return { looks: 0, spent: 0, sum: 0, expected: 0, offset: 0, dist: [1], boundary: -1, crossed: false };
}

/**
 * Returns the probabilities of a binomial (rho 0) or beta-binomial (intra-interval correlation
 * rho in (0, 1)) count of `t` trials with mean t·θ, from the mode outwards until they are
 * negligible, as [offset, probabilities] normalised to sum 1.
 */
export function countKernel(t: number, theta: number, rho = 0): [number, number[]] {
  return kernelOf(t, theta, rho, 0, 0);
}

/**
 * Returns the law of x given x + y = t when x and y are independent gamma-Poisson (negative
 * binomial) counts with the same shape `shape` (1 / the squared coefficient of variation of
 * their rates from interval to interval) and means θ·m and (1 − θ)·m: what the canary's share
 * of an interval's errors does under H0 when both variants' rates vary independently around
 * r0 × the same mean. As `shape` grows it becomes Binomial(t, θ); `shape` is capped below at 1
 * (a rate CV of 1), where the kernel stays unimodal. `m` is the interval's expected total of
 * errors (the caller's estimate; t when not positive). Same form as countKernel.
 */
export function conditionalKernel(t: number, theta: number, shape: number, m: number): [number, number[]] {
  return kernelOf(t, theta, 0, Math.max(1, shape), m > 0 ? m : t);
}

function kernelOf(t: number, theta: number, rho: number, shape: number, m: number): [number, number[]] {
  if (t <= 0 || theta <= 0) return [0, [1]];
  if (theta >= 1) return [t, [1]];
  // ratio(j) = P(j + 1) / P(j).
  let ratio: (j: number) => number;
  if (shape > 0 && Number.isFinite(shape)) {
    // P(x) ∝ NB(x; a, θm) · NB(t − x; a, (1 − θ)m), NB(k; a, μ) ∝ Γ(k + a)/k! · (μ / (a + μ))^k.
    const a = shape;
    const odds = (theta / (1 - theta)) * ((a + (1 - theta) * m) / (a + theta * m));
    ratio = (j) => ((t - j) * (j + a) * odds) / ((j + 1) * (t - j - 1 + a));
  } else if (rho > 0) {
    // Capped so that both shape parameters stay large enough for a unimodal kernel.
    const s = 1 / Math.min(rho, 0.3) - 1;
    const a = theta * s;
    const b = (1 - theta) * s;
    ratio = (j) => ((t - j) * (j + a)) / ((j + 1) * (t - j - 1 + b));
  } else {
    const odds = theta / (1 - theta);
    ratio = (j) => ((t - j) / (j + 1)) * odds;
  }
  // Find the mode by climbing from the mean (the kernels are unimodal).
  let mode = Math.min(t, Math.max(0, Math.round(t * theta)));
  while (mode < t && ratio(mode) > 1) mode++;
  while (mode > 0 && ratio(mode - 1) < 1) mode--;
  const up: number[] = [];
  for (let j = mode, p = 1; j < t; j++) {
    p *= ratio(j);
    if (p < NEGLIGIBLE) break;
    up.push(p);
  }
  const down: number[] = [];
  for (let j = mode - 1, p = 1; j >= 0; j--) {
    p /= ratio(j);
    if (p < NEGLIGIBLE) break;
    down.push(p);
  }
  const out = new Array<number>(down.length + 1 + up.length);
  let total = 1;
  for (let i = 0; i < down.length; i++) {
    out[down.length - 1 - i] = down[i] as number;
    total += down[i] as number;
  }
  out[down.length] = 1;
  for (let i = 0; i < up.length; i++) {
    out[down.length + 1 + i] = up[i] as number;
    total += up[i] as number;
  }
  for (let i = 0; i < out.length; i++) out[i] = (out[i] as number) / total;
  return [mode - down.length, out];
}

/**
 * Returns the state with one interval folded in: `x` canary errors, whose null distribution
 * is the kernel of (t, θ, rho). No look is taken: call `look` for that. F is convolved with
 * the kernel and trimmed of negligible mass.
 */
export function foldInterval(s: SequentialState, x: number, t: number, theta: number, rho = 0): SequentialState {
  return t <= 0 ? s : foldKernel(s, x, t * theta, countKernel(t, theta, rho));
}

/** Returns the state with one interval folded in whose null kernel is `conditionalKernel(t, θ, shape, m)`. */
export function foldConditional(s: SequentialState, x: number, t: number, theta: number, shape: number, m: number): SequentialState {
  return t <= 0 ? s : foldKernel(s, x, t * theta, conditionalKernel(t, theta, shape, m));
}

/** Folds one interval with `x` canary errors and null kernel `[kOffset, kernel]` (expected count `mean`, for display) into F. */
function foldKernel(s: SequentialState, x: number, mean: number, [kOffset, kernel]: [number, number[]]): SequentialState {
  const f = s.dist;
  const kn = kernel.length;
  const out = new Float64Array(f.length + kn - 1);
  for (let i = 0; i < f.length; i++) {
    const fi = f[i] as number;
    if (fi === 0) continue;
    for (let j = 0; j < kn; j++) out[i + j] = (out[i + j] as number) + fi * (kernel[j] as number);
  }
  // Trim: mass dropped from the top counts as spent (it could have stopped), mass below moves up.
  let hi = out.length;
  let dropped = 0;
  while (hi > 1 && (out[hi - 1] as number) < NEGLIGIBLE) dropped += out[--hi] as number;
  let lo = 0;
  let moved = 0;
  while (lo < hi - 1 && (out[lo] as number) < NEGLIGIBLE) moved += out[lo++] as number;
  const dist = Array.from(out.subarray(lo, hi));
  dist[0] = (dist[0] as number) + moved;
  return { ...s, sum: s.sum + x, expected: s.expected + mean, offset: s.offset + kOffset + lo, dist, spent: s.spent + dropped };
}

/**
 * Takes look number `s.looks + 1` at budget α: finds the boundary c, the smallest count with
 * P0(not stopped before, S ≥ c) ≤ α(k) − spent, spends that probability and removes the
 * stopped paths from F. Crossed when S ≥ c. A crossed test takes no more looks. When the budget
 * left is not positive (rounding), the look cannot stop: boundary -1.
 */
export function look(s: SequentialState, alpha: number): SequentialState {
  if (s.crossed) return s;
  const looks = s.looks + 1;
  const budget = alphaSpending(alpha, looks) - s.spent;
  if (!(budget > 0)) return { ...s, looks, boundary: -1, pValue: tailAt(s) };
  const f = s.dist;
  let tail = 0;
  let cut = f.length;
  while (cut > 0 && tail + (f[cut - 1] as number) <= budget) tail += f[--cut] as number;
  const boundary = s.offset + cut;
  const crossed = s.sum >= boundary;
  const pValue = tailAt(s);
  // Keep at least one entry so that F stays a well-formed array.
  const dist = cut > 0 ? f.slice(0, cut) : [0];
  return { ...s, looks, spent: s.spent + tail, boundary, crossed, dist, pValue };
}

/**
 * Returns P0(not stopped before, S ≥ s.sum) under the F `s` holds: how surprising S is (1 when S
 * is at or below F's support). Taken before a look's stopped paths leave F, it is that look's
 * p-value (`pValue`); after a crossing they have left, so read `pValue` then.
 */
export function tailAt(s: SequentialState): number {
  let p = 0;
  for (let i = Math.max(0, s.sum - s.offset); i < s.dist.length; i++) p += s.dist[i] as number;
  return Math.min(1, p);
}

/**
 * Returns the state read back from JSON, or undefined when it is not a well-formed state
 * (the caller then starts a fresh test, which is safe).
 */
export function parseSequentialState(v: unknown): SequentialState | undefined {
  if (v === null || typeof v !== "object") return undefined;
  const s = v as Record<string, unknown>;
  const int = (x: unknown) => typeof x === "number" && Number.isSafeInteger(x);
  const prob = (x: unknown) => typeof x === "number" && x >= 0 && x <= 1;
  if (!int(s.looks) || (s.looks as number) < 0 || !prob(s.spent) || !int(s.sum) || !int(s.offset) || !int(s.boundary)) return undefined;
  if (typeof s.expected !== "number" || !Number.isFinite(s.expected) || typeof s.crossed !== "boolean") return undefined;
  if (!Array.isArray(s.dist) || s.dist.length === 0 || s.dist.length > 1_000_000 || !s.dist.every(prob)) return undefined;
  return {
    looks: s.looks as number,
    spent: s.spent as number,
    sum: s.sum as number,
    expected: s.expected,
    offset: s.offset as number,
    dist: s.dist as number[],
    boundary: s.boundary as number,
    crossed: s.crossed,
    ...(prob(s.pValue) ? { pValue: s.pValue as number } : {}),
  };
}
