import { Command } from "commander";
import { RolloutSchema } from "rollgate-client/gen/rollout_pb";
import { Variant } from "rollgate-client/gen/rollout_pb";
import { action, usageError } from "./cli-context.js";
import { rolloutLine } from "./format.js";
import { parseWeight } from "./weight.js";

interface ReasonOptions {
  readonly reason: string;
}

/** Returns the `set-weight` command: scale the canary by hand. */
export function setWeightCommand(): Command {
  return new Command("set-weight")
    .description("scale the canary by hand to any weight")
    .argument("<name>", "rollout name")
    .argument("<weight>", 'canary share: a percentage like "25%" or "12.5%", or basis points like "2500bp"')
    .option("--reason <text>", "why, recorded in the audit log", "")
    .action(
      action<ReasonOptions>(async (ctx, [name, weight], opts) => {
        const weightBp = parseWeight(weight!);
        if (weightBp === undefined) throw usageError(`weight "${weight}": must be a percentage 0%..100% like 25% or 12.5%, or basis points like 2500bp`);
        const r = (await ctx.client.rollouts.setWeight({ name: name!, weightBp, reason: opts.reason })).rollout!;
        ctx.print(RolloutSchema, r, () => rolloutLine(r));
      }),
    );
}

/** Returns the `feature` command: turn a rollout's feature flag on or off. */
export function featureCommand(): Command {
  return new Command("feature")
    .description("turn a feature flag of a rollout on or off")
    .argument("<name>", "rollout name")
    .argument("<feature>", "feature name")
    .argument("<state>", "on or off")
    .option("--reason <text>", "why, recorded in the audit log", "")
    .action(
      action<ReasonOptions>(async (ctx, [name, feature, state], opts) => {
        if (state !== "on" && state !== "off") throw usageError(`state "${state}": must be on or off`);
        const r = (await ctx.client.rollouts.setFeature({ name: name!, feature: feature!, enabled: state === "on", reason: opts.reason })).rollout!;
        ctx.print(RolloutSchema, r, () => `${rolloutLine(r)}  feature ${feature}=${state}`);
      }),
    );
}

/** Returns the `override` command: pin a key to a variant, or clear its pin. */
export function overrideCommand(): Command {
  return new Command("override")
    .description("pin a key to the stable or canary variant, or clear its override")
    .argument("<name>", "rollout name")
    .argument("<key>", "routing key")
    .argument("<variant>", "stable, canary or clear")
    .option("--reason <text>", "why, recorded in the audit log", "")
    .action(
      action<ReasonOptions>(async (ctx, [name, key, variant], opts) => {
        const rollouts = ctx.client.rollouts;
        let r;
        if (variant === "clear") {
          r = (await rollouts.clearOverride({ name: name!, key: key!, reason: opts.reason })).rollout!;
        } else if (variant === "stable" || variant === "canary") {
          const v = variant === "stable" ? Variant.STABLE : Variant.CANARY;
          r = (await rollouts.setOverride({ name: name!, key: key!, variant: v, reason: opts.reason })).rollout!;
        } else {
          throw usageError(`variant "${variant}": must be stable, canary or clear`);
        }
        ctx.print(RolloutSchema, r, () => `${rolloutLine(r)}  override ${key}=${variant}`);
      }),
    );
}
