import { toJson } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { Command } from "commander";
import { EventSchema, EventType, type Event } from "rollgate-client/gen/event_pb";
import { verifyChain, type ChainVerdict } from "../domain/audit-chain.js";
import { auditEventFromJson } from "../service/proto-json.js";
import { action, EXIT_OK, EXIT_REFUSED, usageError, type CliContext } from "./cli-context.js";
import { codeName, enumName, isoTime } from "./format.js";

interface EventsOptions {
  readonly follow?: boolean;
  readonly verify?: boolean;
  readonly after: string;
}

/** Pauses before reconnecting a broken --follow stream: doubling from the first to the last. */
const RECONNECT_MIN_MS = 250;
const RECONNECT_MAX_MS = 5000;

/** Refusals that another attempt would only repeat: --follow exits with them instead of retrying. */
const PERMANENT: ReadonlySet<Code> = new Set([
  Code.InvalidArgument,
  Code.NotFound,
  Code.AlreadyExists,
  Code.PermissionDenied,
  Code.FailedPrecondition,
  Code.OutOfRange,
  Code.Unimplemented,
  Code.Unauthenticated,
]);

/** Resolves after `ms`, or at once when the signal aborts. */
function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener("abort", done, { once: true });
  });
}

/** ListEvents page size: the server's maximum. */
const PAGE = 1000;

/**
 * Returns one event as a plain line: seq, time, type, actor, reason; with `rolloutWidth`, the
 * rollout too, in a column that wide (the log of every rollout mixes them).
 */
export function eventLine(e: Event, rolloutWidth?: number): string {
  const rollout = rolloutWidth === undefined ? [] : [e.rollout.padEnd(rolloutWidth)];
  const line = [String(e.seq).padStart(6), isoTime(e.time), ...rollout, enumName(EventType, e.type).toLowerCase().padEnd(16), (e.actor || "-").padEnd(10), e.reason].join("  ");
  return [line, ...crossingLines(e.snapshot)].join("\n");
}

/** A sequential gate's evidence as the audit snapshot keeps it (audit-snapshots.ts). */
interface SequentialSnapshot {
  readonly look: number;
  readonly planned_looks: number;
  readonly crossed: boolean;
  readonly statistic: number;
  readonly boundary: number;
  readonly p_value: number;
  readonly alpha: number;
  readonly alpha_spent: number;
  readonly rate_variation: number;
}

/**
 * Returns, for an event whose snapshot holds a sequential gate that has crossed its boundary
 * (the rollback it caused, its decision or breach), one indented line per such gate with the
 * look's numbers; none for other events.
 */
export function crossingLines(snapshot: string): string[] {
  if (!snapshot.includes('"crossed":true')) return [];
  let gates: { name?: string; sequential?: SequentialSnapshot }[];
  try {
    gates = (JSON.parse(snapshot) as { gates?: typeof gates }).gates ?? [];
  } catch {
    return [];
  }
  const g6 = (x: number) => String(Number(x.toPrecision(3)));
  return gates
    .filter((g) => g.sequential?.crossed === true)
    .map(({ name, sequential: s }) => {
      const q = s!;
      const spread = q.rate_variation > 0 ? `, rate variation ${g6(q.rate_variation)}` : ", no rate variation";
      return `${" ".repeat(8)}${name ?? "?"}: sequential look ${q.look} of ${q.planned_looks} crossed: canary errors ${q.statistic} >= boundary ${q.boundary}, p ${g6(q.p_value)}, alpha spent ${g6(q.alpha_spent)} of ${g6(q.alpha)}${spread}`;
    });
}

/** Returns the header of eventLine's columns, for the log of every rollout. */
export function eventHeader(rolloutWidth: number): string {
  return ["SEQ".padStart(6), "TIME".padEnd(24), "ROLLOUT".padEnd(rolloutWidth), "TYPE".padEnd(16), "ACTOR".padEnd(10), "REASON"].join("  ");
}

/** Returns the width of the rollout column for a list of events: the longest name, at least the header's. */
function rolloutWidth(events: readonly Event[]): number {
  return events.reduce((w, e) => Math.max(w, e.rollout.length), "ROLLOUT".length);
}

/** Returns events as table text: plain lines for one rollout; a header and a rollout column for all. */
export function eventsText(events: readonly Event[], all: boolean): string {
  if (events.length === 0) return "no events";
  if (!all) return events.map((e) => eventLine(e)).join("\n");
  const width = rolloutWidth(events);
  return [eventHeader(width), ...events.map((e) => eventLine(e, width))].join("\n");
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
  return verifyChain(events.map((e) => auditEventFromJson(toJson(EventSchema, e))));
}

/** Returns the `events` command: the audit log, followed live or verified. */
export function eventsCommand(): Command {
  return new Command("events")
    .description("show a rollout's audit log (every rollout's without a name); follow it live, or verify its hash chain")
    .argument("[name]", "rollout name", "")
    .option("--follow", "keep printing events as they are appended, reconnecting if the stream ends or breaks (Ctrl-C ends)")
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
          () => eventsText(events, name === undefined || name === ""),
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
  const table = ctx.options.output === "table";
  // Every rollout's log: a header, and a rollout column as wide as the longest name so far (at
  // least 20, as later names are not known yet).
  const width = name === "" ? Math.max(20, rolloutWidth(backlog)) : undefined;
  if (table && width !== undefined) ctx.out(eventHeader(width));
  const print = (e: Event) => ctx.out(table ? eventLine(e, width) : JSON.stringify(toJson(EventSchema, e, { alwaysEmitImplicit: true })));
  backlog.forEach(print);
  const stop = new AbortController();
  const onSignal = () => stop.abort();
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);
  let last = backlog.at(-1)?.seq ?? 0n;
  let pause = RECONNECT_MIN_MS;
  let noted = "";
  try {
    // WatchEvents resumes from any sequence number: after the stream ends or breaks, pick up
    // after the last event printed, so nothing is lost or printed twice.
    while (!stop.signal.aborted) {
      try {
        for await (const m of ctx.client.rollouts.watchEvents({ name, afterSeq: last }, { signal: stop.signal, timeoutMs: 0 })) {
          if (m.event === undefined) continue;
          print(m.event);
          last = m.event.seq;
          pause = RECONNECT_MIN_MS;
          noted = "";
        }
        // The server ended the stream cleanly (e.g. it is draining): reconnect.
      } catch (e) {
        if (stop.signal.aborted) break;
        const ce = ConnectError.from(e);
        if (PERMANENT.has(ce.code)) throw ce;
        // The server went away or the connection broke: say so once per outage, keep trying.
        const why = `${codeName(ce.code)}: ${ce.rawMessage}`;
        if (why !== noted) process.stderr.write(`rollgate events: stream broke (${why}); reconnecting\n`);
        noted = why;
      }
      await sleep(pause, stop.signal);
      pause = Math.min(pause * 2, RECONNECT_MAX_MS);
    }
  } finally {
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
  }
  return EXIT_OK;
}
