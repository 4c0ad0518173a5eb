import { Decision, Recommendation, Verdict, type GateStatus, type RolloutHealth } from "rollgate-client/gen/health_pb";
import { Action, Stage, type Gate, type Rollout } from "rollgate-client/gen/rollout_pb";
import type { Palette } from "./colors.js";
import { durationMs, enumName, formatSpan, plainTable, stageName, tableText, timestampMs } from "./format.js";
import { formatWeight } from "./weight.js";

/** Returns a gate's value in the unit of its kind: rates as percentages, latency in ms. */
export function formatGateValue(kind: string, v: number | undefined): string {
  if (v === undefined || Number.isNaN(v)) return "-";
  switch (kind) {
    case "error_rate":
    case "success_rate":
      return `${Number((v * 100).toFixed(3))}%`;
    case "latency":
      return `${Number(v.toFixed(1))}ms`;
    case "invariant":
      return String(Math.round(v));
    default:
      return String(Number(v.toPrecision(4)));
  }
}

/** Returns a verdict in words, coloured: PASS green, WARN yellow, FAIL red, INCONCLUSIVE dim. */
export function verdictText(v: Verdict, colors: Palette): string {
  const name = enumName(Verdict, v);
  if (v === Verdict.PASS) return colors.green(name);
  if (v === Verdict.WARN) return colors.yellow(name);
  if (v === Verdict.FAIL) return colors.red(name);
  return colors.dim(name);
}

function recommendationText(r: Recommendation, colors: Palette): string {
  const name = enumName(Recommendation, r);
  if (r === Recommendation.HEALTHY) return colors.green(name);
  if (r === Recommendation.MONITOR) return colors.yellow(name);
  if (r === Recommendation.ROLLBACK) return colors.red(name);
  return name;
}

/** Returns what the evaluator does next and when, e.g. "PROMOTE in 1m20s". */
export function nextActionText(h: RolloutHealth, now: number): string {
  const action = enumName(Decision, h.nextAction);
  const at = timestampMs(h.nextActionAt);
  return at === undefined || at === 0 ? action : `${action} in ${formatSpan(at - now)}`;
}

/**
 * Returns a relative gate's bound in words ("stable × 1.2", "stable ± 5") when the gate has no
 * absolute bound, or undefined for a gate that has one: such a gate's threshold is only a
 * number once the stable has the samples, and 0 before that means "not known yet", not 0%.
 */
function relativeBound(gate: Gate | undefined): string | undefined {
  const k = gate?.kind;
  if (k?.case === "errorRate" && k.value.max === undefined && k.value.maxRatio !== undefined) return `stable × ${k.value.maxRatio}`;
  if (k?.case === "latency" && k.value.maxMs === undefined && k.value.maxRatio !== undefined) return `stable × ${k.value.maxRatio}`;
  if (k?.case === "metric" && k.value.max === undefined && k.value.maxDelta !== undefined) return `stable ± ${k.value.maxDelta}`;
  return undefined;
}

/**
 * Returns a gate's threshold in its unit. A gate judged only against the stable shows its rule
 * (e.g. "stable × 1.2") while it is INCONCLUSIVE — the number is not known (or not final) until
 * both variants have their samples — and its computed value otherwise. Without the gate's
 * configuration the number is all there is.
 */
export function thresholdText(g: GateStatus, gate: Gate | undefined): string {
  const rule = relativeBound(gate);
  if (rule !== undefined && (g.verdict === Verdict.INCONCLUSIVE || g.baseline === undefined)) return rule;
  return formatGateValue(g.kind, g.threshold);
}

/**
 * Returns the gates as a table: observed, threshold, baseline, samples, verdict. With the
 * rollout's gate configuration (`config`), relative thresholds read as their rule until known.
 */
export function gatesTable(gates: readonly GateStatus[], colors: Palette, config: readonly Gate[] = []): string {
  if (gates.length === 0) return "no gates";
  const table = plainTable(["GATE", "KIND", "OBSERVED", "THRESHOLD", "BASELINE", "SAMPLES", "VERDICT", "BREACHES", "ON BREACH"]);
  for (const g of gates) {
    table.push([
      g.name,
      g.kind || "-",
      g.samples === 0n ? "-" : formatGateValue(g.kind, g.observed),
      thresholdText(g, config.find((c) => c.name === g.name)),
      formatGateValue(g.kind, g.baseline),
      String(g.samples),
      verdictText(g.verdict, colors),
      String(g.consecutiveBreaches),
      g.onBreach === Action.UNSPECIFIED ? "-" : enumName(Action, g.onBreach),
    ]);
  }
  return tableText(table);
}

/** Returns a progress bar of `fraction` (0..1), `width` cells wide. */
export function progressBar(fraction: number, width: number, colors: Palette): string {
  const filled = Math.round(Math.min(1, Math.max(0, fraction)) * width);
  return `[${colors.cyan("█".repeat(filled))}${colors.dim("░".repeat(width - filled))}]`;
}

/**
 * Returns when the next step comes, in words: "in 1m20s" when the evaluator plans a promotion,
 * "in ≥ 2m" while the step's min_duration runs, "when the gates pass" when it waits on them,
 * "manual" without auto-promote; undefined when no step change is coming (not CANARY, paused,
 * or the last step).
 */
export function nextStepText(h: RolloutHealth, rollout: Rollout | undefined, now: number): string | undefined {
  if (h.stage !== Stage.CANARY || h.paused || rollout === undefined || h.currentStep + 1 >= rollout.steps.length) return undefined;
  const at = timestampMs(h.nextActionAt);
  if (h.nextAction === Decision.PROMOTE && at !== undefined && at > 0) return `in ${formatSpan(at - now)}`;
  if (rollout.analysis?.autoPromote !== true) return "manual (rollgate promote)";
  const started = timestampMs(rollout.stepStartedAt);
  const step = rollout.steps[h.currentStep];
  const left = started === undefined || step === undefined ? 0 : started + durationMs(step.minDuration) - now;
  return left > 0 ? `in ≥ ${formatSpan(left)}` : "when the gates pass";
}

/** Returns true for the stages the evaluator judges and acts on: CANARY and STAGING. */
export function isLive(stage: Stage): boolean {
  return stage === Stage.CANARY || stage === Stage.STAGING;
}

/**
 * Returns what is true of a rollout the evaluator no longer judges (ROLLED_BACK, HALTED,
 * PRODUCTION): where its keys go and what an operator can do next, instead of a score and a
 * "next action" that nothing will take.
 */
export function settledLines(h: RolloutHealth, rollout: Rollout | undefined, now: number): string[] {
  const name = h.rollout;
  const stable = rollout === undefined ? "stable" : `stable ${rollout.stableVersion}`;
  switch (h.stage) {
    case Stage.ROLLED_BACK: {
      const lines = [`rolled back: every key gets ${stable}; not judged, gates do not act`];
      const at = timestampMs(rollout?.rolledBackAt);
      const readyAt = at === undefined || at === 0 || rollout === undefined ? undefined : at + durationMs(rollout.analysis?.cooldown);
      const resume = `rollgate resume ${name} --reason "…"`;
      if (readyAt !== undefined && readyAt > now) {
        lines.push(`next: ${resume} once the cooldown ends (in ${formatSpan(readyAt - now)}), or apply a new canaryVersion now`);
      } else {
        lines.push(`next: ${resume} restarts ${rollout?.canaryVersion ?? "the canary"} at step 1, or apply a new canaryVersion`);
      }
      return lines;
    }
    case Stage.HALTED:
      return [
        `halted (kill switch): every key gets ${stable}; automatic actions off`,
        `next: rollgate resume ${name} --reason "…" restarts at the current step, or rollgate rollback ${name}`,
      ];
    case Stage.PRODUCTION:
      return [
        `in production: every key gets ${rollout === undefined ? "the released version" : rollout.stableVersion}; nothing left to judge`,
        "next: apply a new canaryVersion to start the next rollout",
      ];
    default:
      return [];
  }
}

/** Returns the full health view: header, ramp, score, next action and the gate table. */
export function healthView(h: RolloutHealth, rollout: Rollout | undefined, colors: Palette, now: number): string {
  const steps = rollout?.steps.length ?? 0;
  const lines: string[] = [];
  const versions = rollout === undefined ? "" : `  ${rollout.stableVersion} → ${rollout.canaryVersion}`;
  lines.push(`${colors.bold(h.rollout)}${versions}  ${stageName(h.stage)}${h.paused ? colors.yellow("  PAUSED") : ""}`);
  const stepText = h.stage === Stage.CANARY && steps > 0 ? `step ${h.currentStep + 1}/${steps}` : stageName(h.stage).toLowerCase();
  const next = nextStepText(h, rollout, now);
  lines.push(`${progressBar(h.weightBp / 10_000, 30, colors)} ${formatWeight(h.weightBp)}  ${stepText}` + (next === undefined ? "" : `  next step ${next}`));
  const gates = gatesTable(h.gates, colors, rollout?.gates);
  if (!isLive(h.stage)) {
    lines.push(...settledLines(h, rollout, now));
    // After a rollback or a halt the window still tells why; in production nothing is compared.
    if (h.gates.length > 0 && h.stage !== Stage.PRODUCTION) lines.push("gates over the current window (for the record; not acting):", gates);
    return lines.join("\n");
  }
  lines.push(
    `health ${h.score.toFixed(2)} ${recommendationText(h.recommendation, colors)}` +
      `  samples canary ${h.samples?.canary ?? 0n} / stable ${h.samples?.stable ?? 0n}` +
      `  consecutive breaches ${h.consecutiveBreaches}`,
  );
  lines.push(`next action: ${nextActionText(h, now)}`);
  if (h.message !== "") lines.push(h.message);
  lines.push(gates);
  return lines.join("\n");
}

/** Returns one plain line of a health update, for logs and pipes. */
export function healthLine(h: RolloutHealth, rollout: Rollout | undefined, now: number): string {
  const steps = rollout?.steps.length;
  const gates = h.gates.map((g) => `${g.name}=${enumName(Verdict, g.verdict)}`).join(",");
  return [
    new Date(now).toISOString(),
    h.rollout,
    `stage=${stageName(h.stage)}`,
    `step=${h.currentStep + 1}${steps === undefined ? "" : `/${steps}`}`,
    `weight=${formatWeight(h.weightBp)}`,
    h.paused ? "paused" : undefined,
    ...(isLive(h.stage)
      ? [`score=${h.score.toFixed(2)}`, `recommendation=${enumName(Recommendation, h.recommendation)}`, `next=${nextActionText(h, now).replace(/ /g, "_")}`]
      : ["judged=no"]),
    `gates=${gates === "" ? "-" : gates}`,
  ]
    .filter((p) => p !== undefined)
    .join(" ");
}
