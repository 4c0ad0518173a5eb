import { timestampMs as wktTimestampMs, type Duration, type Timestamp } from "@bufbuild/protobuf/wkt";
import { Code } from "@connectrpc/connect";
import Table from "cli-table3";
import { Stage, Variant, type Rollout } from "rollgate-client/gen/rollout_pb";
import { formatWeight } from "./weight.js";

/** Returns an enum value's name, e.g. "CANARY" (protobuf-es already drops the type prefix), or its number when unknown. */
export function enumName(names: Record<number, string>, value: number): string {
  return names[value] ?? String(value);
}

/** Returns a stage in words, e.g. "CANARY". */
export function stageName(stage: Stage): string {
  return enumName(Stage, stage);
}

/** Returns a variant in words: "stable" or "canary". */
export function variantName(v: Variant): string {
  return v === Variant.CANARY ? "canary" : v === Variant.STABLE ? "stable" : "unspecified";
}

/** Returns milliseconds since the epoch of a Timestamp, undefined when unset. */
export function timestampMs(t: Timestamp | undefined): number | undefined {
  return t === undefined ? undefined : wktTimestampMs(t);
}

/** Returns milliseconds of a Duration, 0 when unset. */
export function durationMs(d: Duration | undefined): number {
  return d === undefined ? 0 : Number(d.seconds) * 1000 + d.nanos / 1e6;
}

/** Returns a Timestamp as ISO 8601 text, or "-" when unset. */
export function isoTime(t: Timestamp | undefined): string {
  const ms = timestampMs(t);
  return ms === undefined || ms === 0 ? "-" : new Date(ms).toISOString();
}

/** Returns a span of time in words: "45s", "2m05s", "1h02m". */
export function formatSpan(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, "0")}m`;
}

/** Returns the steps of a rollout as "5% → 25% → 50% → 100%". */
export function formatSteps(r: Rollout): string {
  return r.steps.map((s) => formatWeight(s.weightBp)).join(" → ");
}

/** Returns a one-line summary of a rollout, for the answer to a mutating command. */
export function rolloutLine(r: Rollout): string {
  const parts = [
    r.name,
    stageName(r.stage),
    r.stage === Stage.CANARY ? `step ${r.currentStep + 1}/${r.steps.length}` : undefined,
    `weight ${formatWeight(r.weightBp)}`,
    r.paused ? "paused" : undefined,
    `${r.stableVersion} → ${r.canaryVersion}`,
    `version ${r.version}`,
  ];
  return parts.filter((p) => p !== undefined).join("  ");
}

/** Returns a Connect code as the wire spells it, e.g. "failed_precondition". */
export function codeName(code: Code): string {
  return Code[code].replace(/[A-Z]/g, (c, i: number) => (i === 0 ? c.toLowerCase() : `_${c.toLowerCase()}`));
}

/** Returns an empty borderless table with a header row, in the style of kubectl's lists. */
export function plainTable(head: string[]): Table.Table {
  const none = "";
  return new Table({
    head,
    style: { head: [], border: [], "padding-left": 0, "padding-right": 2 },
    chars: {
      top: none, "top-mid": none, "top-left": none, "top-right": none,
      bottom: none, "bottom-mid": none, "bottom-left": none, "bottom-right": none,
      left: none, "left-mid": none, mid: none, "mid-mid": none,
      right: none, "right-mid": none, middle: none,
    },
  });
}

/** Returns a table's text without the padding at the end of each line. */
export function tableText(t: Table.Table): string {
  return t
    .toString()
    .split("\n")
    .map((l) => l.trimEnd())
    .join("\n");
}
