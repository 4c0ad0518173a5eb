import { readFileSync } from "node:fs";

/** One row of a bucketing test-vector file. */
export interface Vector {
  readonly salt: string;
  readonly key: string;
  readonly bucket: number;
  readonly weight_bp: number;
  readonly variant: "VARIANT_STABLE" | "VARIANT_CANARY";
}

/** The two vector files every implementation must reproduce: the project's and the normative reference. */
export const VECTOR_FILES = ["vectors/bucketing-v1.json", "vectors/reference/bucketing-v1-vectors.json"] as const;

/** Returns the vectors of a file under the repository root. */
export function readVectors(file: string): Vector[] {
  const parsed = JSON.parse(readFileSync(new URL(`../../../${file}`, import.meta.url), "utf8")) as { vectors: Vector[] };
  if (!Array.isArray(parsed.vectors) || parsed.vectors.length === 0) throw new Error(`${file} holds no vectors`);
  return parsed.vectors;
}
