import { toJson, type JsonValue } from "@bufbuild/protobuf";
import { RolloutSchema, type Rollout } from "rollgate-client/gen/rollout_pb";
import { normalizedRolloutJson } from "../service/proto-json.js";

/** The configuration fields `apply` manages: JSON name → update-mask path. */
export const CONFIG_FIELDS = {
  stableVersion: "stable_version",
  canaryVersion: "canary_version",
  steps: "steps",
  features: "features",
  salt: "salt",
  gates: "gates",
  analysis: "analysis",
} as const;

/** A configuration field `apply` manages, by its JSON name. */
export type ConfigField = keyof typeof CONFIG_FIELDS;

/** One change between two configurations, at a JSON path like `steps[1].weightBp`. */
export interface Change {
  readonly path: string;
  readonly op: "add" | "remove" | "change";
  readonly from?: JsonValue;
  readonly to?: JsonValue;
}

/**
 * Returns a rollout's configuration in canonical protobuf JSON: the defaults the server applies
 * filled in (default ramp, salt = name, gate names and minimums, analysis settings), so that a
 * file which leaves them out and the stored rollout compare equal. Uses the server's own
 * normalisation; throws its INVALID_ARGUMENT DomainError for a configuration it would refuse.
 */
export function canonicalConfig(r: Rollout): Record<ConfigField, JsonValue | undefined> {
  const json = normalizedRolloutJson(toJson(RolloutSchema, r));
  const out = {} as Record<ConfigField, JsonValue | undefined>;
  for (const f of Object.keys(CONFIG_FIELDS) as ConfigField[]) out[f] = json[f];
  return out;
}

/** Returns every leaf-level difference from `a` to `b`, in a stable order. */
export function diffJson(a: JsonValue | undefined, b: JsonValue | undefined, path = ""): Change[] {
  if (JSON.stringify(a) === JSON.stringify(b)) return [];
  if (a === undefined) return [{ path, op: "add", to: b! }];
  if (b === undefined) return [{ path, op: "remove", from: a }];
  if (Array.isArray(a) && Array.isArray(b)) {
    const out: Change[] = [];
    for (let i = 0; i < Math.max(a.length, b.length); i++) out.push(...diffJson(a[i], b[i], `${path}[${i}]`));
    return out;
  }
  if (isObject(a) && isObject(b)) {
    const keys = [...new Set([...Object.keys(a), ...Object.keys(b)])].sort();
    return keys.flatMap((k) => diffJson(a[k], b[k], path === "" ? k : `${path}.${k}`));
  }
  return [{ path, op: "change", from: a, to: b }];
}

function isObject(v: JsonValue): v is { [k: string]: JsonValue } {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** Returns the configuration changes from the current rollout to the desired one. */
export function configChanges(current: Rollout, desired: Rollout): Change[] {
  const a = canonicalConfig(current);
  const b = canonicalConfig(desired);
  return (Object.keys(CONFIG_FIELDS) as ConfigField[]).flatMap((f) => diffJson(a[f], b[f], f));
}

/** Returns the update-mask paths of the top-level fields a list of changes touches. */
export function maskOf(changes: readonly Change[]): string[] {
  const fields = new Set(changes.map((c) => /^[A-Za-z]+/.exec(c.path)?.[0] as ConfigField));
  return (Object.keys(CONFIG_FIELDS) as ConfigField[]).filter((f) => fields.has(f)).map((f) => CONFIG_FIELDS[f]);
}

/** Returns a change as one diff line: `~ steps[1].weightBp: 2500 → 3000`. */
export function changeLine(c: Change): string {
  const v = (x: JsonValue | undefined) => JSON.stringify(x);
  if (c.op === "add") return `+ ${c.path}: ${v(c.to)}`;
  if (c.op === "remove") return `- ${c.path}: ${v(c.from)}`;
  return `~ ${c.path}: ${v(c.from)} → ${v(c.to)}`;
}
