import { ConnectError } from "@connectrpc/connect";
import { Command, Option } from "commander";
import { PromotionBlockedSchema } from "rollgate-client/gen/errors_pb";
import { RolloutSchema, type Rollout } from "rollgate-client/gen/rollout_pb";
import { PromoteTarget } from "rollgate-client/gen/rollout_service_pb";
import { action, EXIT_REFUSED, usageError, type CliContext } from "./cli-context.js";
import { promotionRefusal } from "./error-report.js";
import { rolloutLine } from "./format.js";

interface ReasonOptions {
  readonly reason: string;
}

interface PromoteOptions extends ReasonOptions {
  readonly to?: "next" | "staging" | "production";
  readonly force?: boolean;
}

const TARGETS = { next: PromoteTarget.NEXT_STEP, staging: PromoteTarget.STAGING, production: PromoteTarget.PRODUCTION } as const;

function printRollout(ctx: CliContext, r: Rollout | undefined): void {
  if (r !== undefined) ctx.print(RolloutSchema, r, () => rolloutLine(r));
}

/** Returns the `promote` command: next step, STAGING or PRODUCTION; refused while gates fail unless forced. */
export function promoteCommand(): Command {
  return new Command("promote")
    .description("promote a rollout to its next step, to staging or to production (refused while a gate fails or lacks samples, unless --force)")
    .argument("<name>", "rollout name")
    .addOption(new Option("--to <target>", "where to").choices(["next", "staging", "production"]).default("next"))
    .option("--force", "promote even while gates fail or lack samples (needs --reason)")
    .option("--reason <text>", "why, recorded in the audit log", "")
    .action(
      action<PromoteOptions>(async (ctx, [name], opts) => {
        if (opts.force === true && opts.reason.trim() === "") throw usageError("--force needs --reason: say why the gates are overridden");
        let r;
        try {
          r = await ctx.client.rollouts.promote({ name: name!, target: TARGETS[opts.to ?? "next"], force: opts.force === true, reason: opts.reason });
        } catch (e) {
          if (!(e instanceof ConnectError) || e.findDetails(PromotionBlockedSchema).length === 0) throw e;
          // With the rollout's gate configuration the table can say what a relative threshold is.
          const config = await ctx.client.rollouts.getRollout({ name: name! }).then((g) => g.rollout?.gates ?? [], () => []);
          const retry = `rollgate promote ${name!}${opts.to === undefined || opts.to === "next" ? "" : ` --to ${opts.to}`}`;
          process.stderr.write(`${promotionRefusal(e, "rollgate promote", config, retry)!}\n`);
          return EXIT_REFUSED;
        }
        printRollout(ctx, r.rollout);
      }),
    );
}

/** Returns one of the commands that take a rollout and a reason: rollback, pause, resume, halt. */
function simpleCommand(verb: "rollback" | "pause" | "resume" | "halt", description: string): Command {
  return new Command(verb)
    .description(description)
    .argument("<name>", "rollout name")
    .option("--reason <text>", "why, recorded in the audit log", "")
    .action(
      action<ReasonOptions>(async (ctx, [name], opts) => {
        const req = { name: name!, reason: opts.reason };
        const rollouts = ctx.client.rollouts;
        const r =
          verb === "rollback"
            ? await rollouts.rollback(req)
            : verb === "pause"
              ? await rollouts.pause(req)
              : verb === "resume"
                ? await rollouts.resume(req)
                : await rollouts.halt(req);
        printRollout(ctx, r.rollout);
      }),
    );
}

/** Returns the lifecycle commands: promote, rollback, pause, resume, halt. */
export function lifecycleCommands(): Command[] {
  return [
    promoteCommand(),
    simpleCommand("rollback", "abandon the canary: weight 0, features off"),
    simpleCommand("pause", "hold the current weight: no automatic step changes"),
    simpleCommand("resume", "unpause, restart a halted rollout, or restart a rolled-back one after the cooldown"),
    simpleCommand("halt", "the kill switch: weight 0, features off, automatic actions suspended"),
  ];
}
