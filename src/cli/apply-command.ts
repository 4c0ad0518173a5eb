import { Code, ConnectError } from "@connectrpc/connect";
import { Command } from "commander";
import type { Rollout } from "rollgate-client/gen/rollout_pb";
import { isDomainError } from "../domain/errors.js";
import { action, type CliContext } from "./cli-context.js";
import { changeLine, configChanges, maskOf, type Change } from "./rollout-diff.js";
import { parseRollouts, readInput } from "./rollout-yaml.js";

interface ApplyOptions {
  readonly file: string;
  readonly reason?: string;
  readonly dryRun?: boolean;
}

/** What apply did to one rollout. */
interface Applied {
  readonly name: string;
  readonly action: "created" | "updated" | "unchanged" | "would create" | "would update";
  readonly version: string;
  readonly changes: readonly Change[];
}

/** Returns the `apply` command: declarative create-or-update from a YAML file. */
export function applyCommand(): Command {
  return new Command("apply")
    .description("create or update rollouts from a YAML file (idempotent: shows what changes, unchanged does nothing)")
    .requiredOption("-f, --file <file>", 'YAML file of one or more rollouts ("-" for stdin)')
    .option("--reason <text>", "why, recorded in the audit log", "")
    .option("--dry-run", "show what would change and change nothing")
    .addHelpText(
      "after",
      "\nThe file holds Rollout messages in protobuf JSON form (see examples/); a step may say\n`weight: 25%` instead of `weightBp: 2500`. Fields left out take the server's defaults.\nUpdates carry expected_version, so a concurrent change makes apply fail rather than overwrite it.",
    )
    .action(
      action<ApplyOptions>(async (ctx, _args, opts) => {
        const rollouts = parseRollouts(await readInput(opts.file), opts.file);
        const results: Applied[] = [];
        for (const desired of rollouts) results.push(await applyOne(ctx, desired, opts));
        ctx.printData(results, () =>
          results
            .map((r) => {
              const head = `rollout/${r.name} ${r.action}${r.version === "" ? "" : ` (version ${r.version})`}`;
              return [head, ...r.changes.map((c) => `  ${changeLine(c)}`)].join("\n");
            })
            .join("\n"),
        );
      }),
    );
}

async function applyOne(ctx: CliContext, desired: Rollout, opts: ApplyOptions): Promise<Applied> {
  const reason = opts.reason ?? "";
  let current: Rollout | undefined;
  try {
    current = (await ctx.client.rollouts.getRollout({ name: desired.name })).rollout;
  } catch (e) {
    if (!(e instanceof ConnectError && e.code === Code.NotFound)) throw e;
  }
  if (current === undefined) {
    if (opts.dryRun === true) return { name: desired.name, action: "would create", version: "", changes: [] };
    const created = await ctx.client.rollouts.createRollout({ rollout: desired, reason: reason || "apply: created" });
    return { name: desired.name, action: "created", version: String(created.rollout?.version ?? ""), changes: [] };
  }
  let changes: Change[];
  try {
    changes = configChanges(current, desired);
  } catch (e) {
    // The server would refuse this configuration: send it whole and let it explain why (exit 1).
    if (!isDomainError(e) || opts.dryRun === true) throw e;
    const sent = await ctx.client.rollouts.updateRollout({ rollout: desired, expectedVersion: current.version, reason });
    return { name: desired.name, action: "updated", version: String(sent.rollout?.version ?? ""), changes: [] };
  }
  if (changes.length === 0) return { name: desired.name, action: "unchanged", version: String(current.version), changes };
  if (opts.dryRun === true) return { name: desired.name, action: "would update", version: String(current.version), changes };
  const updated = await ctx.client.rollouts.updateRollout({
    rollout: desired,
    expectedVersion: current.version,
    updateMask: { paths: maskOf(changes) },
    reason: reason || `apply: ${maskOf(changes).join(", ")}`,
  });
  return { name: desired.name, action: "updated", version: String(updated.rollout?.version ?? ""), changes };
}
