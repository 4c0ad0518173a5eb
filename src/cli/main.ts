#!/usr/bin/env node
import { readFileSync } from "node:fs";
import { Command, Option } from "commander";
import { applyCommand } from "./apply-command.js";
import { DEFAULT_SERVER, EXIT_USAGE, OUTPUT_FORMATS } from "./cli-context.js";
import { reportError } from "./error-report.js";
import { eventsCommand } from "./events-command.js";
import { getCommand, listCommand } from "./get-command.js";
import { lifecycleCommands } from "./lifecycle-command.js";
import { routeCommand } from "./route-command.js";
import { serveCommand } from "./serve-command.js";
import { statusCommand } from "./status-command.js";
import { featureCommand, overrideCommand, setWeightCommand } from "./traffic-command.js";
import { watchCommand } from "./watch-command.js";

/** The version of the rollgate package this CLI was built from (dist/src/cli → the package root). */
const version = (JSON.parse(readFileSync(new URL("../../../package.json", import.meta.url), "utf8")) as { version: string }).version;

const program = new Command("rollgate")
  .version(version, "-V, --version", "print the rollgate version")
  .description("rollgate: progressive-delivery decisions — canary routing, SLO gates, automatic promote and rollback")
  .addOption(new Option("--server <url>", "rollgate server: http(s)://host:port or host:port").env("ROLLGATE_SERVER").default(DEFAULT_SERVER))
  .addOption(new Option("--token <token>", "bearer token").env("ROLLGATE_TOKEN"))
  .option("--tls", "use TLS (implied by an https:// --server); trusts the system CAs and NODE_EXTRA_CA_CERTS")
  .addOption(new Option("-o, --output <format>", "output of read commands").choices(OUTPUT_FORMATS).default("table"))
  .addHelpText(
    "after",
    "\nExit status: 0 done; 1 refused by the server (its explanation on stderr) or unreachable; 2 usage error.",
  )
  .addCommand(serveCommand())
  .addCommand(applyCommand())
  .addCommand(getCommand())
  .addCommand(listCommand())
  .addCommand(statusCommand())
  .addCommand(watchCommand());
for (const c of lifecycleCommands()) program.addCommand(c);
program.addCommand(setWeightCommand()).addCommand(featureCommand()).addCommand(overrideCommand()).addCommand(routeCommand()).addCommand(eventsCommand());

// Commander's own usage errors (unknown option, missing argument, bad choice) exit with 2, not 1;
// every client command's --help lists the global options (--server, --token, --tls, -o) too
// (not serve's: it is the server, and takes none of them).
for (const c of [program, ...program.commands]) {
  c.exitOverride().showHelpAfterError("(add --help for usage)");
  if (c.name() !== "serve") c.configureHelp({ showGlobalOptions: true });
}

let ran: string | undefined;
program.hook("preAction", (_program, command) => {
  ran = command.name();
});
const name = () => (ran === undefined ? "rollgate" : `rollgate ${ran}`);

program.parseAsync(process.argv).then(
  () => {
    // Open HTTP/2 sessions or timers must not keep a finished command alive.
    if (ran !== "serve") process.exit(process.exitCode ?? 0);
  },
  (e: unknown) => {
    const { text, status } = reportError(e, name());
    if (text !== "") process.stderr.write(`${text}\n`);
    process.exit(status === 0 ? 0 : status || EXIT_USAGE);
  },
);
