import { Code, ConnectError } from "@connectrpc/connect";
import { CommanderError } from "commander";
import { AllowedTransitionsSchema, FieldViolationsSchema, PromotionBlockedSchema } from "rollgate-client/gen/errors_pb";
import { isDomainError } from "../domain/errors.js";
import { codeName } from "../server/observe.js";
import { EXIT_REFUSED, EXIT_USAGE, UsageError } from "./cli-context.js";
import { colorsWanted, palette } from "./colors.js";
import { gatesTable } from "./health-view.js";


/**
 * Returns what to print on stderr for an error and the exit status: the server's own explanation
 * (code, message and error details: blocking gates, allowed transitions, field violations) and 1
 * for a refusal; the message and 2 for a usage error.
 */
export function reportError(e: unknown, command: string): { text: string; status: number } {
  if (e instanceof UsageError) return { text: `${command}: ${e.message}\n(see ${command} --help)`, status: EXIT_USAGE };
  if (e instanceof CommanderError) return { text: "", status: e.exitCode === 0 ? 0 : EXIT_USAGE };
  if (e instanceof ConnectError) {
    const lines = [`${command}: ${codeName(e.code)}: ${e.rawMessage}`];
    for (const blocked of e.findDetails(PromotionBlockedSchema)) {
      lines.push("blocked by:", gatesTable(blocked.gates, palette(colorsWanted(process.stderr))));
    }
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
