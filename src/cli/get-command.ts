import { Command } from "commander";
import { toJson } from "@bufbuild/protobuf";
import { Action, MetricAggregation, RolloutSchema, type Gate, type Rollout } from "rollgate-client/gen/rollout_pb";
import { action } from "./cli-context.js";
import { durationMs, enumName, formatSpan, formatSteps, isoTime, plainTable, stageName, tableText, variantName } from "./format.js";
import { formatGateValue } from "./health-view.js";
import { formatWeight } from "./weight.js";

/** Returns a gate's rule in words, e.g. "p99 <= 450ms, <= 1.2x stable". */
export function gateRule(g: Gate): string {
  const k = g.kind;
  const parts: string[] = [];
  switch (k.case) {
    case "errorRate":
      parts.push("error rate");
      if (k.value.max !== undefined) parts.push(`<= ${formatGateValue("error_rate", k.value.max)}`);
      if (k.value.maxRatio !== undefined) parts.push(`<= ${k.value.maxRatio}x stable`);
      if (k.value.confidence !== undefined) parts.push(`at ${k.value.confidence} confidence`);
      break;
    case "latency":
      parts.push(`p${Math.round(k.value.quantile * 100)}`);
      if (k.value.maxMs !== undefined) parts.push(`<= ${k.value.maxMs}ms`);
      if (k.value.maxRatio !== undefined) parts.push(`<= ${k.value.maxRatio}x stable`);
      break;
    case "successRate":
      parts.push(`success rate >= ${formatGateValue("success_rate", k.value.min)}`);
      break;
    case "metric":
      parts.push(`${k.value.aggregation === MetricAggregation.MAX ? "max" : "mean"}(${k.value.metric})`);
      if (k.value.max !== undefined) parts.push(`<= ${k.value.max}`);
      if (k.value.maxDelta !== undefined) parts.push(`|Δ stable| <= ${k.value.maxDelta}`);
      break;
    case "invariant":
      parts.push(`violations <= ${k.value.max}`);
      break;
    default:
      parts.push("?");
  }
  return `${parts.join(" ")} (min ${g.minSamples} samples, on breach ${enumName(Action, g.onBreach)})`;
}

/** Returns a rollout in detail, one field per line. */
export function rolloutDetail(r: Rollout): string {
  const a = r.analysis;
  const rows: [string, string][] = [
    ["name", r.name],
    ["stage", `${stageName(r.stage)}${r.paused ? " (paused)" : ""}`],
    ["step", `${r.currentStep + 1} of ${r.steps.length}`],
    ["weight", formatWeight(r.weightBp)],
    ["stable → canary", `${r.stableVersion} → ${r.canaryVersion}`],
    ["steps", formatSteps(r)],
    ["salt", r.salt],
    ["features", Object.entries(r.features).map(([f, on]) => `${f}=${on ? "on" : "off"}`).join(", ") || "-"],
    ["overrides", Object.entries(r.overrides).map(([k, v]) => `${k}→${variantName(v)}`).join(", ") || "-"],
    ...(r.gates.length === 0
      ? [["gates", "-"] as [string, string]]
      : r.gates.map((g, i): [string, string] => [i === 0 ? "gates" : "", `${g.name}: ${gateRule(g)}`])),
    [
      "analysis",
      a === undefined
        ? "-"
        : `window ${formatSpan(durationMs(a.window))}, every ${formatSpan(durationMs(a.interval))}, ` +
          `${a.consecutiveBreaches} breaches in a row, auto-promote ${a.autoPromote ? "on" : "off"}, ` +
          `auto-rollback ${a.autoRollback === false ? "off" : "on"}${a.dryRun ? ", dry run" : ""}`,
    ],
    ["version", `${r.version}  fingerprint ${r.fingerprint.slice(0, 12)}`],
    ["created", `${isoTime(r.createdAt)} by ${r.createdBy}`],
    ["updated", `${isoTime(r.updatedAt)} by ${r.updatedBy}`],
  ];
  const width = Math.max(...rows.map(([k]) => k.length));
  return rows.map(([k, v]) => `${k.padEnd(width)}  ${v}`).join("\n");
}

/** Returns the `get` command: one rollout in detail. */
export function getCommand(): Command {
  return new Command("get")
    .description("show a rollout's configuration and state")
    .argument("<name>", "rollout name")
    .action(
      action(async (ctx, [name]) => {
        const r = (await ctx.client.rollouts.getRollout({ name: name! })).rollout!;
        ctx.print(RolloutSchema, r, () => rolloutDetail(r));
      }),
    );
}

/** Returns the `list` command: every rollout, one per row. */
export function listCommand(): Command {
  return new Command("list")
    .description("list rollouts")
    .action(
      action(async (ctx) => {
        const all: Rollout[] = [];
        let pageToken = "";
        do {
          const page = await ctx.client.rollouts.listRollouts({ pageToken });
          all.push(...page.rollouts);
          pageToken = page.nextPageToken;
        } while (pageToken !== "");
        ctx.printData(
          all.map((r) => toJson(RolloutSchema, r, { alwaysEmitImplicit: true })),
          () => {
            if (all.length === 0) return "no rollouts";
            const table = plainTable(["NAME", "STAGE", "STEP", "WEIGHT", "STABLE", "CANARY", "PAUSED", "VERSION", "UPDATED"]);
            for (const r of all) {
              table.push([
                r.name,
                stageName(r.stage),
                `${r.currentStep + 1}/${r.steps.length}`,
                formatWeight(r.weightBp),
                r.stableVersion,
                r.canaryVersion,
                r.paused ? "yes" : "no",
                String(r.version),
                isoTime(r.updatedAt),
              ]);
            }
            return tableText(table);
          },
        );
      }),
    );
}
