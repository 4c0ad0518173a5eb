import { fromBinary, toBinary, toJson } from "@bufbuild/protobuf";
import { Command } from "commander";
import { EventSchema, EventType, type Event } from "rollgate-client/gen/event_pb";
import { verifyChain, type ChainVerdict } from "../domain/audit-chain.js";
import { eventFromProto } from "../service/convert.js";
import { EventSchema as ServerEventSchema } from "../../gen/rollgate/v1/event_pb.js";
import { action, EXIT_OK, EXIT_REFUSED, usageError, type CliContext } from "./cli-context.js";
import { enumName, isoTime } from "./format.js";

interface EventsOptions {
  readonly follow?: boolean;
  readonly verify?: boolean;
  readonly after: string;
}

/** ListEvents page size: the server's maximum. */
const PAGE = 1000;

/** Returns one event as a plain line: seq, time, type, actor, reason. */
export function eventLine(e: Event): string {
  return [String(e.seq).padStart(6), isoTime(e.time), enumName(EventType, e.type).toLowerCase().padEnd(16), (e.actor || "-").padEnd(10), e.reason].join("  ");
}

/** Returns every event of a rollout ("" for all) after a sequence number, paging until the end. */
export async function listAllEvents(ctx: CliContext, name: string, afterSeq: bigint): Promise<Event[]> {
  const all: Event[] = [];
  let after = afterSeq;
  for (;;) {
    const page = (await ctx.client.rollouts.listEvents({ name, afterSeq: after, limit: PAGE })).events;
    if (page.length === 0) return all;
    all.push(...page);
    after = page.at(-1)!.seq;
  }
}

/**
 * Returns the verdict on the hash chains of a list of events, recomputed here from the fields the
 * server sent (the same eventHash the server chains with).
 */
export function verifyEvents(events: readonly Event[]): ChainVerdict {
  return verifyChain(events.map((e) => eventFromProto(fromBinary(ServerEventSchema, toBinary(EventSchema, e)))));
}

/** Returns the `events` command: the audit log, followed live or verified. */
export function eventsCommand(): Command {
  return new Command("events")
    .description("show a rollout's audit log (every rollout's without a name); follow it live, or verify its hash chain")
    .argument("[name]", "rollout name", "")
    .option("--follow", "keep printing events as they are appended (Ctrl-C ends)")
    .option("--verify", "recompute the SHA-256 hash chain from the first event and report the first broken link (exit 1)")
    .option("--after <seq>", "start after this sequence number", "0")
    .action(
      action<EventsOptions>(async (ctx, [name], opts) => {
        if (!/^\d+$/.test(opts.after)) throw usageError(`--after "${opts.after}": must be a sequence number`);
        if (opts.verify === true && opts.follow === true) throw usageError("--verify and --follow do not go together");
        if (opts.verify === true) {
          if (opts.after !== "0") throw usageError("--verify checks the chain from its start: drop --after");
          return verify(ctx, name ?? "");
        }
        const events = await listAllEvents(ctx, name ?? "", BigInt(opts.after));
        if (opts.follow === true) return follow(ctx, name ?? "", events);
        ctx.printData(
          events.map((e) => toJson(EventSchema, e, { alwaysEmitImplicit: true })),
          () => (events.length === 0 ? "no events" : events.map(eventLine).join("\n")),
        );
        return EXIT_OK;
      }),
    );
}

async function verify(ctx: CliContext, name: string): Promise<number> {
  const events = await listAllEvents(ctx, name, 0n);
  const verdict = verifyEvents(events);
  ctx.printData(verdict, () =>
    verdict.ok
      ? `hash chain intact: ${verdict.checked} events verified`
      : `hash chain broken at seq ${verdict.seq}: ${verdict.problem} (${verdict.checked} events before it verified)`,
  );
  return verdict.ok ? EXIT_OK : EXIT_REFUSED;
}

async function follow(ctx: CliContext, name: string, backlog: readonly Event[]): Promise<number> {
  const print = (e: Event) => ctx.out(ctx.options.output === "table" ? eventLine(e) : JSON.stringify(toJson(EventSchema, e, { alwaysEmitImplicit: true })));
  backlog.forEach(print);
  const stop = new AbortController();
  const onSignal = () => stop.abort();
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);
  let last = backlog.at(-1)?.seq ?? 0n;
  try {
    // WatchEvents resumes from any sequence number: after a dropped stream, pick up after the last one printed.
    while (!stop.signal.aborted) {
      try {
        for await (const m of ctx.client.rollouts.watchEvents({ name, afterSeq: last }, { signal: stop.signal, timeoutMs: 0 })) {
          if (m.event === undefined) continue;
          print(m.event);
          last = m.event.seq;
        }
      } catch (e) {
        if (stop.signal.aborted) break;
        throw e;
      }
      // The server ended the stream cleanly (e.g. it is draining): reconnect after a pause.
      await new Promise((resolve) => setTimeout(resolve, 500));
    }
  } finally {
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
  }
  return EXIT_OK;
}
