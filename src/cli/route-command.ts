import { Command } from "commander";
import { RouteResponseSchema } from "rollgate-client/gen/decision_service_pb";
import { RouteReason } from "rollgate-client/gen/decision_service_pb";
import { action } from "./cli-context.js";
import { enumName, variantName } from "./format.js";
import { formatWeight } from "./weight.js";

/** Returns the `route` command: where one key goes, as an application would ask. */
export function routeCommand(): Command {
  return new Command("route")
    .description("ask where a key goes: stable or canary, which version, and why")
    .argument("<name>", "rollout name")
    .argument("<key>", "routing key (1..1024 bytes of UTF-8)")
    .action(
      action(async (ctx, [name, key]) => {
        const r = await ctx.client.decisions.route({ rollout: name!, key: key! });
        ctx.print(RouteResponseSchema, r, () =>
          [
            `variant   ${variantName(r.variant)}`,
            `version   ${r.version}`,
            `bucket    ${r.bucket} (weight ${formatWeight(r.weightBp)} = ${r.weightBp} bp)`,
            `reason    ${enumName(RouteReason, r.reason).toLowerCase()}`,
            `features  ${r.features.length === 0 ? "-" : r.features.join(", ")}`,
            `rollout   version ${r.rolloutVersion}`,
          ].join("\n"),
        );
      }),
    );
}
