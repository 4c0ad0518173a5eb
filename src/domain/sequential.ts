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
  /** The lowest value of S that F holds (the centre of F's first cell). */
  readonly offset: number;
  /**
   * F's lattice step (absent: 1, exact). Above the size limits (COARSE_KERNEL, COARSE_DIST)
   * entry i is P0(S in the cell of offset + i·step, not stopped), the cell of a point g being
   * the `step` integers from g − ⌊step/2⌋: the coarse lattice (docs/judgement.md, "Cost").
   */
  readonly step?: number;
  /** F: P0(S = offset + i, not stopped), i = 0, 1, … (per cell when step > 1). */
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
 * Where the exact lattice gives way to the coarse one (docs/judgement.md, "Cost"): a per-interval
 * kernel wider than `kernel` counts is sampled every `step` counts (a power of 2, at most `kernel`
 * points), and F wider than `dist` entries merges neighbouring cells in pairs (doubling its
 * step), so that a look costs at most `dist` × `kernel` multiply-adds and the state holds at most
 * `dist` numbers, whatever the traffic. Below both limits the test is exact.
 */
export interface LatticeLimits {
  readonly kernel: number;
  readonly dist: number;
}

/** The limits the gates use: at 100 canary + 1,900 stable requests per interval (kernels of ~17 counts, F of ~40) everything stays exact. */
export const COARSE_LIMITS: LatticeLimits = { kernel: 48, dist: 128 };

/** No coarse lattice (for tests: the exact test at any size). */
export const EXACT_LIMITS: LatticeLimits = { kernel: Infinity, dist: Infinity };

/**
 * Returns the probabilities of a binomial (rho 0) or beta-binomial (intra-interval correlation
 * rho in (0, 1)) count of `t` trials with mean t·θ, from the mode outwards until they are
 * negligible, as [offset, probabilities] normalised to sum 1.
 */
export function countKernel(t: number, theta: number, rho = 0): [number, number[]] {
  const law = lawOf(t, theta, rho, 0, 0);
  return law === undefined ? degenerate(t, theta) : exactKernel(law);
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
  const law = lawOf(t, theta, 0, Math.max(1, shape), m > 0 ? m : t);
  return law === undefined ? degenerate(t, theta) : exactKernel(law);
}

/** A unimodal count law on 0..t: successive ratios (exact path) and the log of an unnormalised probability (coarse path). */
interface CountLaw {
  readonly t: number;
  readonly theta: number;
  /** P(j + 1) / P(j). */
  readonly ratio: (j: number) => number;
  /** ln P(x) + a constant. */
  readonly logWeight: (x: number) => number;
}

function degenerate(t: number, theta: number): [number, number[]] {
  return t <= 0 || theta <= 0 ? [0, [1]] : [t, [1]];
}

/** ln Γ(x), x > 0: Stirling's series from 8 up (error below 1e-9), shifted up below. */
function lnGamma(x: number): number {
  let shift = 0;
  while (x < 8) {
    shift += Math.log(x);
    x += 1;
  }
  const inv = 1 / x;
  const inv2 = inv * inv;
  return (x - 0.5) * Math.log(x) - x + 0.9189385332046728 + inv * (1 / 12 - inv2 * (1 / 360 - inv2 / 1260)) - shift;
}

function lawOf(t: number, theta: number, rho: number, shape: number, m: number): CountLaw | undefined {
  if (t <= 0 || theta <= 0 || theta >= 1) return undefined;
  if (shape > 0 && Number.isFinite(shape)) {
    // P(x) ∝ NB(x; a, θm) · NB(t − x; a, (1 − θ)m), NB(k; a, μ) ∝ Γ(k + a)/k! · (μ / (a + μ))^k.
    const a = shape;
    const odds = (theta / (1 - theta)) * ((a + (1 - theta) * m) / (a + theta * m));
    const lnOdds = Math.log(odds);
    return {
      t,
      theta,
      ratio: (j) => ((t - j) * (j + a) * odds) / ((j + 1) * (t - j - 1 + a)),
      logWeight: (x) => lnGamma(x + a) - lnGamma(x + 1) + lnGamma(t - x + a) - lnGamma(t - x + 1) + x * lnOdds,
    };
  }
  if (rho > 0) {
    // Capped so that both shape parameters stay large enough for a unimodal kernel.
    const s = 1 / Math.min(rho, 0.3) - 1;
    const a = theta * s;
    const b = (1 - theta) * s;
    return {
      t,
      theta,
      ratio: (j) => ((t - j) * (j + a)) / ((j + 1) * (t - j - 1 + b)),
      logWeight: (x) => lnGamma(x + a) + lnGamma(t - x + b) - lnGamma(x + 1) - lnGamma(t - x + 1),
    };
  }
  const odds = theta / (1 - theta);
  const lnOdds = Math.log(odds);
  return { t, theta, ratio: (j) => ((t - j) / (j + 1)) * odds, logWeight: (x) => x * lnOdds - lnGamma(x + 1) - lnGamma(t - x + 1) };
}

/** The exact kernel: every count from the mode outwards until negligible, by successive ratios. */
function exactKernel(law: CountLaw): [number, number[]] {
  const { t, theta, ratio } = law;
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

const LN_NEGLIGIBLE = Math.log(NEGLIGIBLE);

/** Returns the law's mode by bisection on its ratios (O(log t)). */
function modeOf(law: CountLaw): number {
  let lo = 0;
  let hi = law.t;
  // The mode is the smallest j with P(j + 1) ≤ P(j) (t when there is none).
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (law.ratio(mid) <= 1) hi = mid;
    else lo = mid + 1;
  }
  return lo;
}

/** Returns the farthest count from `mode` in direction `dir` (±1) whose probability is not negligible against the mode's (O(log t) evaluations). */
function reach(law: CountLaw, mode: number, top: number, dir: 1 | -1): number {
  const limit = dir > 0 ? law.t : 0;
  const ok = (x: number) => law.logWeight(x) - top >= LN_NEGLIGIBLE;
  let near = mode;
  let d = 1;
  for (;;) {
    const x = mode + dir * d;
    if ((dir > 0 && x >= limit) || (dir < 0 && x <= limit)) {
      if (ok(limit)) return limit;
      break;
    }
    if (!ok(x)) break;
    near = x;
    d *= 2;
  }
  // near is fine, mode + dir·d (or the limit) is not: bisect.
  let far = dir > 0 ? Math.min(limit, mode + d) : Math.max(limit, mode - d);
  while (Math.abs(far - near) > 1) {
    const mid = Math.round((near + far) / 2);
    if (ok(mid)) near = mid;
    else far = mid;
  }
  return near;
}

/**
 * Returns the kernel sampled every `step` counts: [first point, probabilities, step], the point
 * x carrying P(x) times the number of counts of its cell (x − ⌊step/2⌋ … + step − 1) within 0..t,
 * normalised; `step` is `minStep` doubled until at most `limits.kernel` points span the law.
 */
function coarseKernel(law: CountLaw, minStep: number, limits: LatticeLimits): [number, number[], number] {
  const mode = modeOf(law);
  const top = law.logWeight(mode);
  const lo = reach(law, mode, top, -1);
  const hi = reach(law, mode, top, 1);
  let step = minStep;
  while ((hi - lo + 1) / step > limits.kernel) step *= 2;
  const below = Math.ceil((mode - lo) / step);
  const above = Math.ceil((hi - mode) / step);
  const first = mode - below * step;
  const half = Math.floor(step / 2);
  const n = below + above + 1;
  const out = new Array<number>(n);
  // ln P at the points (clamped to 0..t), then each cell's mass: Σ P over its counts, P taken log-linear across the cell with the slope of its neighbours.
  const lw = new Float64Array(n + 2);
  for (let i = -1; i <= n; i++) lw[i + 1] = law.logWeight(Math.min(law.t, Math.max(0, first + i * step))) - top;
  let total = 0;
  for (let i = 0; i < n; i++) {
    const x = first + i * step;
    // The cell centred on x: counts x − step/2 … x + step/2, the two ends at half weight (so that cells tile and convolving keeps means), clipped to 0..t.
    const cellLo = Math.max(0, x - half) - x;
    const cellHi = Math.min(law.t, x + half) - x;
    let p = 0;
    if (cellHi >= cellLo) {
      const b = ((lw[i + 2] as number) - (lw[i] as number)) / (2 * step);
      const count = cellHi - cellLo + 1;
      // Σ_{v = cellLo}^{cellHi} e^{b v}, less half of each end that a neighbouring cell shares.
      let sum = Math.abs(b) < 1e-9 ? count : (Math.exp(b * cellLo) * -Math.expm1(b * count)) / -Math.expm1(b);
      if (step > 1 && cellLo === -half) sum -= Math.exp(-b * half) / 2;
      if (step > 1 && cellHi === half) sum -= Math.exp(b * half) / 2;
      p = Math.exp(lw[i + 1] as number) * sum;
    }
    out[i] = p;
    total += p;
  }
  for (let i = 0; i < out.length; i++) out[i] = (out[i] as number) / total;
  return [first, out, step];
}

/**
 * Returns F on a lattice twice as coarse, its points the even ones of the old lattice: each odd
 * point's mass split equally between its two neighbours (linear binning: the mean is kept, the
 * variance grows by at most a quarter of the old step squared, once per doubling).
 */
function coarsen(offset: number, _step: number, dist: ArrayLike<number>): [number, number[]] {
  const out = new Array<number>(Math.floor((dist.length - 1) / 2) + 1).fill(0);
  for (let i = 0; i < dist.length; i++) {
    const p = dist[i] as number;
    const j = i >> 1;
    if ((i & 1) === 0) out[j] = (out[j] as number) + p;
    else {
      out[j] = (out[j] as number) + p / 2;
      if (j + 1 < out.length) out[j + 1] = (out[j + 1] as number) + p / 2;
      else out.push(p / 2);
    }
  }
  return [offset, out];
}

/**
 * Returns the state with one interval folded in: `x` canary errors, whose null distribution
 * is the kernel of (t, θ, rho). No look is taken: call `look` for that. F is convolved with
 * the kernel and trimmed of negligible mass (on the coarse lattice above `limits`).
 */
export function foldInterval(s: SequentialState, x: number, t: number, theta: number, rho = 0, limits = COARSE_LIMITS): SequentialState {
  return t <= 0 ? s : foldLaw(s, x, t, theta, lawOf(t, theta, rho, 0, 0), limits);
}

/** Returns the state with one interval folded in whose null kernel is `conditionalKernel(t, θ, shape, m)`. */
export function foldConditional(s: SequentialState, x: number, t: number, theta: number, shape: number, m: number, limits = COARSE_LIMITS): SequentialState {
  return t <= 0 ? s : foldLaw(s, x, t, theta, lawOf(t, theta, 0, Math.max(1, shape), m > 0 ? m : t), limits);
}

function foldLaw(s: SequentialState, x: number, t: number, theta: number, law: CountLaw | undefined, limits: LatticeLimits): SequentialState {
  const step = s.step ?? 1;
  if (law === undefined) return foldKernel(s, x, t * theta, degenerate(t, theta), step, limits);
  if (step === 1 && (t + 1 <= limits.kernel || !Number.isFinite(limits.kernel))) return foldKernel(s, x, t * theta, exactKernel(law), 1, limits);
  const [kOffset, kernel, kStep] = coarseKernel(law, step, limits);
  if (kStep === 1) return foldKernel(s, x, t * theta, exactKernel(law), 1, limits);
  let offset = s.offset;
  let dist: ArrayLike<number> = s.dist;
  for (let h = step; h < kStep; h *= 2) [offset, dist] = coarsen(offset, h, dist);
  return foldKernel({ ...s, offset, dist: dist as number[], step: kStep }, x, t * theta, [kOffset, kernel], kStep, limits);
}

/** Folds one interval with `x` canary errors and null kernel `[kOffset, kernel]` (on F's lattice, step `step`; expected count `mean`, for display) into F. */
function foldKernel(s: SequentialState, x: number, mean: number, [kOffset, kernel]: [number, number[]], step: number, limits: LatticeLimits): SequentialState {
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
  let dist = Array.from(out.subarray(lo, hi));
  dist[0] = (dist[0] as number) + moved;
  let offset = s.offset + kOffset + lo * step;
  let h = step;
  while (dist.length > limits.dist) {
    [offset, dist] = coarsen(offset, h, dist);
    h *= 2;
  }
  const next: SequentialState = { ...s, sum: s.sum + x, expected: s.expected + mean, offset, dist, spent: s.spent + dropped };
  return h === 1 ? next : { ...next, step: h };
}

/**
 * Takes look number `s.looks + 1` at budget α: finds the boundary c, the smallest count with
 * P0(not stopped before, S ≥ c) ≤ α(k) − spent, spends that probability and removes the
 * stopped paths from F. Crossed when S ≥ c. A crossed test takes no more looks. When the budget
 * left is not positive (rounding), the look cannot stop: boundary -1.
 */
export function look(s: SequentialState, alpha: number, canStop = true): SequentialState {
  if (s.crossed) return s;
  const looks = s.looks + 1;
  const budget = alphaSpending(alpha, looks) - s.spent;
  if (!(budget > 0) || !canStop) return { ...s, looks, boundary: -1, pValue: tailAt(s) };
  const f = s.dist;
  let tail = 0;
  let cut = f.length;
  while (cut > 0 && tail + (f[cut - 1] as number) <= budget) tail += f[--cut] as number;
  let boundary = cellStart(s, cut);
  // Keep at least one entry so that F stays a well-formed array.
  const dist = cut > 0 ? f.slice(0, cut) : [0];
  const step = s.step ?? 1;
  if (step > 1 && cut > 0) {
    // Coarse lattice: the boundary may fall inside the highest cell kept, which then loses its share of counts at or above it.
    const m = f[cut - 1] as number;
    for (let u = 1; u < step; u++) {
      const above = m * cellShare(f, cut - 1, step, u);
      if (tail + above > budget) continue;
      tail += above;
      dist[cut - 1] = m - above;
      boundary = cellStart(s, cut - 1) + u;
      break;
    }
  }
  const crossed = s.sum >= boundary;
  const pValue = tailAt(s);
  return { ...s, looks, spent: s.spent + tail, boundary, crossed, dist, pValue };
}

/**
 * Returns P0(not stopped before, S ≥ s.sum) under the F `s` holds: how surprising S is (1 when S
 * is at or below F's support). Taken before a look's stopped paths leave F, it is that look's
 * p-value (`pValue`); after a crossing they have left, so read `pValue` then.
 */
export function tailAt(s: SequentialState): number {
  let p = 0;
  const at = cellOf(s, s.sum);
  for (let i = Math.max(0, at + 1); i < s.dist.length; i++) p += s.dist[i] as number;
  const step = s.step ?? 1;
  const u = s.sum - cellStart(s, at);
  if (at >= 0 && at < s.dist.length) p += (s.dist[at] as number) * cellShare(s.dist, at, step, u);
  // The count at a cell's start is half its lower neighbour's.
  if (step > 1 && u === 0 && at >= 1 && at <= s.dist.length) p += (s.dist[at - 1] as number) * cellShare(s.dist, at - 1, step, step);
  return Math.min(1, p);
}

/**
 * Returns the share of cell i's mass at its positions u … step (1 when exact): a cell of step
 * s centred on its point spans the counts at positions 0 … s from its start, the two ends at half
 * weight (each shared with a neighbour), taken geometric with the ratio per count its neighbours
 * show (uniform when they show none).
 */
function cellShare(f: readonly number[], i: number, step: number, u: number): number {
  if (u <= 0) return 1;
  if (step === 1 || u > step) return 0;
  const m = f[i] as number;
  const below = i > 0 ? (f[i - 1] as number) : 0;
  const next = i + 1 < f.length ? (f[i + 1] as number) : 0;
  let r = 1;
  if (below > 0 && next > 0) r = (next / below) ** (1 / (2 * step));
  else if (next > 0 && m > 0) r = (next / m) ** (1 / step);
  else if (below > 0 && m > 0) r = (m / below) ** (1 / step);
  if (!(r > 0) || !Number.isFinite(r)) r = 1;
  // Σ_{v = a}^{step} r^v.
  const upTo = (a: number) => (Math.abs(r - 1) < 1e-12 ? step - a + 1 : (r ** a - r ** (step + 1)) / (1 - r));
  const top = r ** step / 2;
  return (upTo(u) - top) / (upTo(0) - 0.5 - top);
}

/** The lowest count of F's cell `i` (offset + i when exact). */
function cellStart(s: SequentialState, i: number): number {
  const step = s.step ?? 1;
  return s.offset + i * step - Math.floor(step / 2);
}

/** The index of the cell of F that holds count `x` (x − offset when exact). */
function cellOf(s: SequentialState, x: number): number {
  const step = s.step ?? 1;
  return Math.floor((x - s.offset + Math.floor(step / 2)) / step);
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
  const step = s.step === undefined ? 1 : s.step;
  if (!int(step) || (step as number) < 1 || ((step as number) & ((step as number) - 1)) !== 0) return undefined;
  return {
    looks: s.looks as number,
    spent: s.spent as number,
    sum: s.sum as number,
    expected: s.expected,
    offset: s.offset as number,
    dist: s.dist as number[],
    ...(step === 1 ? {} : { step: step as number }),
    boundary: s.boundary as number,
    crossed: s.crossed,
    ...(prob(s.pValue) ? { pValue: s.pValue as number } : {}),
  };
}
