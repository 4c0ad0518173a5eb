#!/usr/bin/env node
import { Command } from "commander";
import { serveCommand } from "./serve-command.js";

const program = new Command("rollgate")
  .description("rollgate: progressive-delivery decisions — canary routing, SLO gates, automatic promote and rollback")
  .addCommand(serveCommand());

program.parseAsync(process.argv).catch((e: unknown) => {
  process.stderr.write(`rollgate: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exit(1);
});
