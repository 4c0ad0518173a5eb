import { readFile } from "node:fs/promises";
import { fromJson, type JsonValue } from "@bufbuild/protobuf";
import { RolloutSchema, type Rollout } from "rollgate-client/gen/rollout_pb";
import { parseAllDocuments } from "yaml";
import { usageError } from "./cli-context.js";
import { parseWeight } from "./weight.js";

/**
 * Rollout files: YAML whose documents are Rollout messages in protobuf JSON form (camelCase or
 * snake_case field names, durations as "10s", enums by full name), with two pieces of sugar:
 * a step may give `weight: 25%` (or be just "25%") instead of `weightBp: 2500`, and durations
 * may be written "5m", "1h30m" or "250ms" as well as protobuf JSON's seconds ("300s").
 */

/** Returns the text of a file, or of stdin for "-". */
export async function readInput(file: string): Promise<string> {
  try {
    if (file !== "-") return await readFile(file, "utf8");
    const chunks: Buffer[] = [];
    for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
    return Buffer.concat(chunks).toString("utf8");
  } catch (e) {
    throw usageError(`-f ${file}: ${e instanceof Error ? e.message : String(e)}`);
  }
}

/** Returns every rollout in a YAML text (one per document); `source` names it in errors. */
export function parseRollouts(text: string, source: string): Rollout[] {
  const docs = parseAllDocuments(text, { prettyErrors: true });
  const list = Array.isArray(docs) ? docs : [docs];
  const out: Rollout[] = [];
  list.forEach((doc, i) => {
    const where = list.length > 1 ? `${source} (document ${i + 1})` : source;
    if (doc.errors.length > 0) throw usageError(`${where}: ${doc.errors[0]!.message}`);
    const value: unknown = doc.toJS();
    if (value === null || value === undefined) return;
    if (typeof value !== "object" || Array.isArray(value)) throw usageError(`${where}: a rollout must be a mapping`);
    let rollout: Rollout;
    try {
      rollout = fromJson(RolloutSchema, desugar(value as Record<string, unknown>, where) as JsonValue);
    } catch (e) {
      throw usageError(`${where}: ${e instanceof Error ? e.message : String(e)}`);
    }
    if (rollout.name === "") throw usageError(`${where}: name is required`);
    out.push(rollout);
  });
  if (out.length === 0) throw usageError(`${source}: no rollout found`);
  return out;
}

/** Duration fields of Step and Analysis, by their JSON and proto names. */
const DURATION_FIELDS = new Set([
  "minDuration",
  "min_duration",
  "window",
  "interval",
  "gracePeriod",
  "grace_period",
  "noDataTimeout",
  "no_data_timeout",
  "cooldown",
]);

/** Rewrites the sugar of a rollout file into plain protobuf JSON. */
function desugar(doc: Record<string, unknown>, where: string): Record<string, unknown> {
  const out = { ...doc };
  const analysis = out.analysis;
  if (isRecord(analysis)) out.analysis = durations(analysis);
  const steps = out.steps;
  if (!Array.isArray(steps)) return out;
  out.steps = steps.map((step: unknown, i) => {
    const at = `${where}: steps[${i}]`;
    if (typeof step === "string") return { weightBp: weightOf(step, at) };
    if (!isRecord(step)) return step;
    const { weight, ...rest } = step;
    if (weight === undefined) return durations(step);
    if ("weightBp" in rest || "weight_bp" in rest) throw usageError(`${at}: give weight or weightBp, not both`);
    return { ...durations(rest), weightBp: weightOf(weight, at) };
  });
  return out;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** Rewrites "5m"-style durations of an object's duration fields into protobuf JSON seconds. */
function durations(o: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(o)) out[k] = DURATION_FIELDS.has(k) && typeof v === "string" ? (durationSeconds(v) ?? v) : v;
  return out;
}

const UNIT_MS: Record<string, number> = { h: 3_600_000, m: 60_000, s: 1000, ms: 1 };

/**
 * Returns "Ns" (protobuf JSON) for a duration like "1h30m", "5m", "2.5s" or "250ms", or
 * undefined when the text is not one (fromJson then reports it).
 */
export function durationSeconds(text: string): string | undefined {
  const t = text.trim();
  if (!/^(\d+(\.\d+)?(h|ms|m|s))+$/.test(t)) return undefined;
  let ms = 0;
  for (const m of t.matchAll(/(\d+(?:\.\d+)?)(h|ms|m|s)/g)) ms += Number(m[1]) * UNIT_MS[m[2]!]!;
  return `${Number((ms / 1000).toFixed(3))}s`;
}

function weightOf(v: unknown, at: string): number {
  const bp = typeof v === "string" ? parseWeight(v) : undefined;
  if (bp === undefined) throw usageError(`${at}.weight: "${String(v)}" must be a percentage like 25% or 12.5%, or basis points like 2500bp`);
  return bp;
}
