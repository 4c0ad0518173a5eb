/** Number of buckets in bucketing spec v1: weights are basis points of 10,000. */
export const BUCKETS = 10_000;

/** Returns true when a bucket goes to the canary at a weight in basis points (`bucket < weightBp`). */
export function isCanaryBucket(bucketValue: number, weightBp: number): boolean {
  return bucketValue < weightBp;
}
