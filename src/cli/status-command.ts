import { Command } from "commander";
import { RolloutHealthSchema } from "rollgate-client/gen/health_pb";
import { action } from "./cli-context.js";
import { healthView } from "./health-view.js";

/** Returns the `status` command: a rollout's judgement — gates, health score, next action. */
export function statusCommand(): Command {
  return new Command("status")
    .description("show a rollout's health: each gate's observed value, threshold, baseline, samples and verdict; score; next action")
    .argument("<name>", "rollout name")
    .action(
      action(async (ctx, [name]) => {
        const [health, got] = await Promise.all([ctx.client.health(name!), ctx.client.rollouts.getRollout({ name: name! })]);
        ctx.print(RolloutHealthSchema, health, () => healthView(health, got.rollout, ctx.colors, Date.now()));
      }),
    );
}
