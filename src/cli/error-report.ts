import { Code, ConnectError } from "@connectrpc/connect";
import { CommanderError } from "commander";
import { AllowedTransitionsSchema, FieldViolationsSchema, PromotionBlockedSchema } from "rollgate-client/gen/errors_pb";
import type { Gate } from "rollgate-client/gen/rollout_pb";
import { isDomainError } from "../domain/errors.js";
import { EXIT_REFUSED, EXIT_USAGE, UsageError } from "./cli-context.js";
import { colorsWanted, palette } from "./colors.js";
import { codeName } from "./format.js";
import { gatesTable } from "./health-view.js";

/**
 * Returns what to print for a promotion the gates refused, or undefined for any other error:
 * the refusal in one line, the blocking gates once as a table, and the command that overrides.
 * `config` (the rollout's gates, when known) lets relative thresholds read as their rule;
 * `retry` is the command line to repeat with --force (the rollout's name from the message
 * without it).
 */
export function promotionRefusal(e: ConnectError, command: string, config: readonly Gate[], retry: string | undefined): string | undefined {
  const blocked = e.findDetails(PromotionBlockedSchema)[0];
  if (blocked === undefined) return undefined;
  const name = /^promotion of "([^"]+)"/.exec(e.rawMessage)?.[1];
  const head = name === undefined ? "promotion refused" : `promotion of "${name}" refused`;
  const again = retry ?? `rollgate promote ${name ?? "<name>"}`;
  return [
    `${command}: ${codeName(e.code)}: ${head}`,
    "blocked by:",
    gatesTable(blocked.gates, palette(colorsWanted(process.stderr)), config),
    `to promote anyway: ${again} --force --reason "…" (the reason goes to the audit log)`,
  ].join("\n");
}

/**
 * Returns what to print on stderr for an error and the exit status: the server's own explanation
 * (code, message and error details: blocking gates, allowed transitions, field violations) and 1
 * for a refusal; the message and 2 for a usage error.
 */
export function reportError(e: unknown, command: string): { text: string; status: number } {
  if (e instanceof UsageError) return { text: `${command}: ${e.message}\n(see ${command} --help)`, status: EXIT_USAGE };
  if (e instanceof CommanderError) return { text: "", status: e.exitCode === 0 ? 0 : EXIT_USAGE };
  if (e instanceof ConnectError) {
    const refusal = promotionRefusal(e, command, [], undefined);
    if (refusal !== undefined) return { text: refusal, status: EXIT_REFUSED };
    const lines = [`${command}: ${codeName(e.code)}: ${e.rawMessage}`];
    for (const allowed of e.findDetails(AllowedTransitionsSchema)) {
      if (!e.rawMessage.includes("allowed:")) lines.push(`allowed: ${allowed.allowed.join(", ") || "none"}`);
    }
    for (const fv of e.findDetails(FieldViolationsSchema)) {
      for (const v of fv.violations) {
        const line = `  ${v.field}: ${v.description}`;
        if (!lines[0]!.includes(`${v.field}: ${v.description}`)) lines.push(line);
      }
    }
    if (e.code === Code.Unavailable) lines.push("(is the server running? set --server or ROLLGATE_SERVER)");
    return { text: lines.join("\n"), status: EXIT_REFUSED };
  }
  if (isDomainError(e)) return { text: `${command}: ${e.kind}: ${e.message}`, status: EXIT_REFUSED };
  return { text: `${command}: ${e instanceof Error ? e.message : String(e)}`, status: EXIT_REFUSED };
}
