import type { Rollout, Variant } from "../domain/rollout.js";

/** Format version of the stored rollout JSON; bump with a migration when it changes shape. */
const FORMAT = 1;

/** Returns the JSON text a rollout is stored as (Maps as entry lists). */
export function encodeRollout(r: Rollout): string {
  return JSON.stringify({
    format: FORMAT,
    ...r,
    features: [...r.features],
    overrides: [...r.overrides],
  });
}

/** Returns the rollout stored as JSON text by encodeRollout. */
export function decodeRollout(text: string): Rollout {
  const raw = JSON.parse(text) as Omit<Rollout, "features" | "overrides"> & {
    format: number;
    features: [string, boolean][];
    overrides: [string, Variant][];
  };
  if (raw.format !== FORMAT) throw new Error(`unsupported stored rollout format ${raw.format}`);
  const { format: _format, ...rest } = raw;
  return { ...rest, features: new Map(raw.features), overrides: new Map(raw.overrides) };
}
