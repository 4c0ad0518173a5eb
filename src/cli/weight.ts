/** Full weight in basis points. */
const FULL_BP = 10_000;

/**
 * Returns a weight in basis points from "25%", "12.5%", "0.05%" or "2500bp", or undefined when
 * the text is none of those or lies outside 0..10000 bp (or is finer than one basis point).
 *
 * A bare number is refused on purpose: "25" could mean 25% or 25 bp.
 */
export function parseWeight(text: string): number | undefined {
  const t = text.trim();
  let bp: number;
  const percent = /^(\d{1,3})(?:\.(\d{1,2}))?\s*%$/.exec(t);
  const basis = /^(\d{1,5})\s*bp$/i.exec(t);
  if (percent !== null) {
    bp = Number(percent[1]) * 100 + Number((percent[2] ?? "").padEnd(2, "0"));
  } else if (basis !== null) {
    bp = Number(basis[1]);
  } else {
    return undefined;
  }
  return bp >= 0 && bp <= FULL_BP ? bp : undefined;
}

/** Returns a weight in basis points as a percentage, e.g. 2500 → "25%", 1250 → "12.5%". */
export function formatWeight(bp: number): string {
  return `${Number((bp / 100).toFixed(2))}%`;
}
