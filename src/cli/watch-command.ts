import { toJson } from "@bufbuild/protobuf";
import { Command } from "commander";
import { createLogUpdate } from "log-update";
import { HealthUpdateSchema } from "rollgate-client/gen/decision_service_pb";
import type { RolloutHealth } from "rollgate-client/gen/health_pb";
import { Stage, type Rollout } from "rollgate-client/gen/rollout_pb";
import { action, EXIT_OK, EXIT_REFUSED, type CliContext } from "./cli-context.js";
import { stageName } from "./format.js";
import { healthLine, healthView } from "./health-view.js";

interface WatchOptions {
  readonly untilDone?: boolean;
}

/** Returns the exit status of a finished rollout, or undefined while it is still going. */
function finalStatus(h: RolloutHealth): number | undefined {
  if (h.stage === Stage.PRODUCTION) return EXIT_OK;
  if (h.stage === Stage.ROLLED_BACK || h.stage === Stage.HALTED) return EXIT_REFUSED;
  return undefined;
}

/** Returns the `watch` command: a live view that redraws as WatchHealth updates arrive. */
export function watchCommand(): Command {
  return new Command("watch")
    .description("follow a rollout's health live: a redrawing view on a terminal, one line per update otherwise")
    .argument("<name>", "rollout name")
    .option("--until-done", "exit once the rollout is done: 0 in PRODUCTION, 1 when ROLLED_BACK or HALTED")
    .addHelpText(
      "after",
      "\nOn a terminal the view redraws in place (step progress, time to the next step, gate verdicts in\ncolour). When stdout is not a terminal each update is one plain line; with --output json one\nJSON HealthUpdate per line. Reconnects by itself if the connection drops. Ctrl-C ends it.",
    )
    .action(action<WatchOptions>(async (ctx, [name], opts) => watch(ctx, name!, opts)));
}

/**
 * Returns stdout with a usable size: a pseudo-terminal nobody sized (e.g. under `script`) reports
 * 0 rows and 0 columns, and log-update would cut every line of the frame away.
 */
function terminal(stdout: NodeJS.WriteStream): NodeJS.WriteStream {
  return Object.create(stdout, {
    rows: { get: () => stdout.rows || 50 },
    columns: { get: () => stdout.columns || 120 },
    write: { value: stdout.write.bind(stdout) },
  }) as NodeJS.WriteStream;
}

async function watch(ctx: CliContext, name: string, opts: WatchOptions): Promise<number> {
  const stop = new AbortController();
  const onSignal = () => stop.abort();
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);
  const tty = process.stdout.isTTY === true && ctx.options.output === "table";
  const log = tty ? createLogUpdate(terminal(process.stdout)) : undefined;
  let rollout: Rollout | undefined;
  let latest: RolloutHealth | undefined;
  const redraw = () => {
    if (log !== undefined && latest !== undefined) log(healthView(latest, rollout, ctx.colors, Date.now()));
  };
  // The countdown to the next step moves between updates too.
  const ticker = tty ? setInterval(redraw, 1000) : undefined;
  let status = EXIT_OK;
  try {
    for await (const update of ctx.client.watchHealth(name, {
      signal: stop.signal,
      onReconnect: (e) => {
        if (!tty) process.stderr.write(`rollgate watch: stream ended${e === undefined ? "" : ` (${e.message})`}; reconnecting\n`);
      },
    })) {
      const h = update.health;
      if (h === undefined) continue;
      if (rollout === undefined || rollout.version !== h.rolloutVersion) {
        rollout = (await ctx.client.rollouts.getRollout({ name })).rollout ?? rollout;
      }
      latest = h;
      if (ctx.options.output !== "table") ctx.out(JSON.stringify(toJson(HealthUpdateSchema, update, { alwaysEmitImplicit: true })));
      else if (tty) redraw();
      else ctx.out(healthLine(h, rollout, Date.now()));
      if (update.deleted) {
        process.stderr.write(`rollgate watch: rollout "${name}" was deleted\n`);
        status = EXIT_REFUSED;
        break;
      }
      const done = opts.untilDone === true ? finalStatus(h) : undefined;
      if (done !== undefined) {
        if (!tty && ctx.options.output === "table") ctx.out(`${name} is ${stageName(h.stage)}`);
        status = done;
        break;
      }
    }
  } finally {
    if (ticker !== undefined) clearInterval(ticker);
    redraw();
    log?.done();
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
  }
  return status;
}
