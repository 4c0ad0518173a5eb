import { readFileSync } from "node:fs";
import { rename, writeFile } from "node:fs/promises";
import { fromJson, toJson, type JsonValue } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import type { RollgateClient } from "./client.js";
import {
  RouteStateSchema,
  type RouteState,
  type WatchRoutesResponse,
} from "./gen/rollgate/v1/decision_service_pb.js";
import { bucketFast, compileRouteState, isValidKey, MalformedStateError, routeTable, type LocalTable } from "./local-routing.js";
import type { OutcomeStats } from "./outcome-buffer.js";
import type { OutcomeInput } from "./outcome-input.js";
import { backoffMs, sleep, type RetryPolicy } from "./retry.js";
import type { RouteResult, VariantName } from "./route-result.js";

/** Where local mode logs what it has to say (default: console). */
export interface LocalLogger {
  warn(message: string, details?: Record<string, unknown>): void;
}

/** Settings of local mode. */
export interface LocalModeOptions {
  /** Rollouts to hold (at most 1,000, each must exist); default every rollout, including later ones. */
  readonly rollouts?: readonly string[];
  /** How long `ready()` waits for the first state by default. Default 5,000 ms. */
  readonly startupTimeoutMs?: number;
  /** What `route` answers while it has no state for a rollout (reason "fallback"). Default "stable". */
  readonly fallback?: VariantName;
  /**
   * A file to keep the last state in (written at most once a second, atomically). At boot, when
   * the server cannot be reached, routing starts from it.
   */
  readonly persistPath?: string;
  /** The state counts as stale after this long without word from the server. Default 30,000 ms. */
  readonly staleAfterMs?: number;
  /** Called when the state becomes stale, and again when it is fresh. Default: a log line. */
  readonly onStaleChange?: (stale: boolean, stats: LocalStats) => void;
  /**
   * A stream that sends nothing for this long (the server sends a heartbeat every 5 s) is taken
   * for a dead connection that never closed: it is aborted and reopened. Default 20,000 ms.
   */
  readonly idleTimeoutMs?: number;
  /** Backoff between reconnects. Default 250 ms doubling up to 10 s. */
  readonly reconnect?: Partial<Omit<RetryPolicy, "maxAttempts">>;
  readonly logger?: LocalLogger;
}

/** What local mode can tell about itself. */
export interface LocalStats {
  /** True once it holds a state (from the server or the persisted file). */
  readonly ready: boolean;
  /** Where the state came from: nothing yet, the persisted file, or the server. */
  readonly source: "none" | "file" | "server";
  /** The WatchRoutes revision the state is at. */
  readonly revision: bigint;
  /** Rollouts held. */
  readonly rollouts: number;
  /** True while a WatchRoutes stream is open and has answered. */
  readonly connected: boolean;
  /** Milliseconds since the server was last heard from (any message, heartbeats included); since start when never. */
  readonly sinceLastHeardMs: number;
  /** True when sinceLastHeardMs is past staleAfterMs. */
  readonly stale: boolean;
  /** Streams that ended and were reopened. */
  readonly reconnects: number;
  /** Stream messages refused as malformed (the last good state was kept). */
  readonly malformed: number;
  /** Decisions answered locally from the state. */
  readonly decisions: number;
  /** Fallback answers, by cause. */
  readonly fallbacks: { readonly notReady: number; readonly unknownRollout: number; readonly invalidKey: number };
  /** The outcome buffer's counters (sent, dropped, buffered, ...). */
  readonly outcomes: OutcomeStats;
}

/** A client that routes in process from a WatchRoutes stream. */
export interface LocalRollgateClient {
  /**
   * Where a key goes, answered in process: synchronous, never throws, never waits on the
   * network. Without a state for the rollout it answers the fallback with reason "fallback".
   */
  route(rollout: string, key: string): RouteResult;
  /** Resolves true once a state is held, false if none arrived within `timeoutMs` (default startupTimeoutMs); never rejects. */
  ready(timeoutMs?: number): Promise<boolean>;
  /** Buffers one outcome, as the remote client does (bounded, counted, delivered after an outage). */
  recordOutcome(rollout: string, outcome: OutcomeInput): void;
  /** Sends every buffered outcome now. */
  flush(): Promise<void>;
  /** Counters: readiness, staleness, reconnects, fallbacks, outcomes. */
  stats(): LocalStats;
  /** Stops the stream, writes the state file, flushes outcomes and closes the connection. */
  close(): Promise<void>;
  /** The remote client underneath (remote Route, control plane, health), sharing the connection and outcome buffer. */
  readonly remote: RollgateClient;
  /** Returns the compiled state of a rollout, or undefined when none is held. */
  table(rollout: string): LocalTable | undefined;
  /** Returns the names of the rollouts held. */
  rolloutNames(): string[];
  /** Calls `listener` on every later change and connection change; returns the way to stop. */
  subscribe(listener: LocalListener): () => void;
}

/** Hears what local mode's state does (the OpenFeature provider's events come from here). */
export interface LocalListener {
  /** Rollouts whose state changed (added, changed or removed) in one update after the first state. */
  changed?(rollouts: readonly string[]): void;
  /** The stream dropped (false) or answered again (true). */
  connection?(connected: boolean): void;
}

/** Opens one WatchRoutes stream. */
export type OpenRoutesStream = (req: { rollouts: string[]; afterRevision: bigint }, signal: AbortSignal) => AsyncIterable<WatchRoutesResponse>;

const FILE_FORMAT = "rollgate-routes-v1";
const PERSIST_EVERY_MS = 1000;

/** Applies one stream message to a state; throws MalformedStateError and leaves `tables` untouched for a bad one. */
export function applyRoutesMessage(tables: Map<string, LocalTable>, m: WatchRoutesResponse): Map<string, LocalTable> {
  const compiled = m.routes.map(compileRouteState);
  for (const name of m.removed) if (name === "") throw new MalformedStateError("an empty name in removed");
  const next = m.reset ? new Map<string, LocalTable>() : tables;
  for (const t of compiled) next.set(t.rollout, t);
  if (!m.reset) for (const name of m.removed) next.delete(name);
  return next;
}

/** Returns local mode over a remote client and a way to open WatchRoutes. */
/**
 * Returns local mode over `remote` and a WatchRoutes stream opener; `onIdle` is called when a
 * stream is aborted for silence (past `idleTimeoutMs`), to drop the connection under it.
 */
export function createLocalMode(remote: RollgateClient, open: OpenRoutesStream, options: LocalModeOptions = {}, onIdle?: () => void): LocalRollgateClient {
  const startupTimeoutMs = options.startupTimeoutMs ?? 5000;
  const fallback = options.fallback ?? "stable";
  const staleAfterMs = options.staleAfterMs ?? 30_000;
  const idleTimeoutMs = options.idleTimeoutMs ?? 20_000;
  const logger = options.logger ?? { warn: (msg, details) => console.warn(`rollgate: ${msg}`, details ?? "") };
  const policy: RetryPolicy = {
    maxAttempts: Number.POSITIVE_INFINITY,
    initialBackoffMs: options.reconnect?.initialBackoffMs ?? 250,
    maxBackoffMs: options.reconnect?.maxBackoffMs ?? 10_000,
    multiplier: options.reconnect?.multiplier ?? 2,
  };
  const rollouts = options.rollouts === undefined ? [] : [...options.rollouts];
  const closing = new AbortController();
  const startedAt = Date.now();

  let tables = new Map<string, LocalTable>();
  let revision = 0n;
  let source: LocalStats["source"] = "none";
  let connected = false;
  let lastHeardAt = startedAt;
  let heardOnce = false;
  let stale = false;
  let reconnects = 0;
  let malformed = 0;
  let decisions = 0;
  const fallbacks = { notReady: 0, unknownRollout: 0, invalidKey: 0 };
  const listeners = new Set<LocalListener>();
  let markReady: (() => void) | undefined;
  const readyOnce = new Promise<void>((resolve) => (markReady = resolve));
  const setReady = () => {
    markReady?.();
    markReady = undefined;
  };

  // The persisted state is read at once but used only if the server cannot be reached first.
  const persisted = options.persistPath === undefined ? undefined : readStateFile(options.persistPath, logger);
  const useFile = () => {
    if (persisted === undefined || source !== "none") return;
    tables = persisted.tables;
    revision = persisted.revision;
    source = "file";
    logger.warn("server unreachable at start: routing from the persisted state", { path: options.persistPath, revision: String(revision), rollouts: tables.size });
    setReady();
  };
  const startupTimer = setTimeout(useFile, startupTimeoutMs);
  startupTimer.unref?.();

  let persistTimer: ReturnType<typeof setTimeout> | undefined;
  let persisting: Promise<void> = Promise.resolve();
  const persistNow = () => {
    if (options.persistPath === undefined || source !== "server") return persisting;
    const path = options.persistPath;
    const body = JSON.stringify({
      format: FILE_FORMAT,
      revision: String(revision),
      routes: [...tables.values()].map((t) => toJson(RouteStateSchema, t.state)),
    });
    persisting = persisting
      .then(() => writeFile(`${path}.tmp`, body))
      .then(() => rename(`${path}.tmp`, path))
      .catch((err: unknown) => logger.warn("could not write the state file", { path, error: String(err) }));
    return persisting;
  };
  const schedulePersist = () => {
    if (options.persistPath === undefined || persistTimer !== undefined) return;
    persistTimer = setTimeout(() => {
      persistTimer = undefined;
      void persistNow();
    }, PERSIST_EVERY_MS);
    persistTimer.unref?.();
  };

  const sinceLastHeard = () => Date.now() - lastHeardAt;
  const stats = (): LocalStats => ({
    ready: source !== "none",
    source,
    revision,
    rollouts: tables.size,
    connected,
    sinceLastHeardMs: sinceLastHeard(),
    stale: sinceLastHeard() > staleAfterMs,
    reconnects,
    malformed,
    decisions,
    fallbacks: { ...fallbacks },
    outcomes: remote.outcomeStats(),
  });
  const checkStale = () => {
    const now = sinceLastHeard() > staleAfterMs;
    if (now === stale) return;
    stale = now;
    if (options.onStaleChange !== undefined) options.onStaleChange(stale, stats());
    else if (stale) logger.warn(`routing state is stale: no word from the server for ${Math.round(sinceLastHeard() / 1000)} s`, { revision: String(revision) });
    else logger.warn("routing state is fresh again", { revision: String(revision) });
  };
  const staleTimer = setInterval(checkStale, Math.max(50, Math.min(1000, staleAfterMs / 4)));
  staleTimer.unref?.();

  const apply = (m: WatchRoutesResponse) => {
    lastHeardAt = Date.now();
    heardOnce = true;
    if (!connected) for (const l of listeners) l.connection?.(true);
    connected = true;
    if (stale) checkStale();
    if (!m.reset && m.routes.length === 0 && m.removed.length === 0 && m.revision === revision) return;
    const before = listeners.size === 0 || source === "none" ? undefined : new Map(tables);
    try {
      tables = applyRoutesMessage(tables, m);
    } catch (e) {
      if (!(e instanceof MalformedStateError)) throw e;
      malformed++;
      logger.warn("malformed WatchRoutes message ignored; keeping the last good state", { error: e.message, revision: String(m.revision) });
      return;
    }
    revision = m.revision;
    source = "server";
    setReady();
    schedulePersist();
    if (before !== undefined) {
      const changed = changedRollouts(before, tables);
      if (changed.length > 0) for (const l of listeners) l.changed?.(changed);
    }
  };

  async function run(): Promise<void> {
    let failures = 0;
    const signal = closing.signal;
    while (!signal.aborted) {
      let ended: ConnectError | undefined;
      // Aborted at close, or when the stream has been silent for idleTimeoutMs.
      const stream = new AbortController();
      const onClose = () => stream.abort();
      signal.addEventListener("abort", onClose, { once: true });
      let idle = false;
      const idleTimer = setTimeout(() => {
        idle = true;
        stream.abort();
      }, idleTimeoutMs);
      idleTimer.unref?.();
      try {
        for await (const m of open({ rollouts, afterRevision: revision }, stream.signal)) {
          idleTimer.refresh();
          failures = 0;
          apply(m);
        }
      } catch (e) {
        if (signal.aborted) break;
        if (!idle) ended = ConnectError.from(e);
      } finally {
        clearTimeout(idleTimer);
        signal.removeEventListener("abort", onClose);
      }
      if (idle) {
        logger.warn(`no message from the server for ${idleTimeoutMs} ms; reconnecting`, { revision: String(revision) });
        onIdle?.();
      }
      if (connected) for (const l of listeners) l.connection?.(false);
      connected = false;
      if (signal.aborted) break;
      if (!heardOnce) useFile();
      if (ended?.code === Code.InvalidArgument && revision !== 0n && ended.rawMessage.includes("after_revision")) {
        // A server on another database (its revisions are not ours), or one whose log has not
        // caught up with our revision yet: start over from a snapshot.
        logger.warn("the server cannot resume from our revision (it is on another database, or has not caught up yet); asking for a snapshot", { revision: String(revision) });
        revision = 0n;
      } else if (ended !== undefined && ended.code !== Code.Unavailable && ended.code !== Code.Canceled) {
        logger.warn("WatchRoutes ended with an error; reconnecting", { code: Code[ended.code], error: ended.rawMessage });
      }
      failures++;
      reconnects++;
      try {
        await sleep(backoffMs(policy, failures), signal);
      } catch {
        break;
      }
    }
  }
  const running = run();

  const fallbackOf = (rollout: string, key: string): RouteResult => ({
    variant: fallback,
    version: "",
    // The bucket under the default salt (the rollout's name); 0 for an invalid key.
    bucket: isValidKey(key) ? bucketFast(rollout, key) : 0,
    weightBp: 0,
    features: [],
    reason: "fallback",
    rolloutVersion: 0n,
  });

  let closed: Promise<void> | undefined;
  return {
    remote,
    route(rollout, key) {
      const t = tables.get(rollout);
      if (t === undefined) {
        if (source === "none") fallbacks.notReady++;
        else fallbacks.unknownRollout++;
        return fallbackOf(rollout, key);
      }
      if (!isValidKey(key)) {
        fallbacks.invalidKey++;
        return fallbackOf(rollout, key);
      }
      decisions++;
      return routeTable(t, key);
    },
    ready(timeoutMs = startupTimeoutMs) {
      if (source !== "none") return Promise.resolve(true);
      return new Promise<boolean>((resolve) => {
        const timer = setTimeout(() => resolve(source !== "none"), timeoutMs);
        void readyOnce.then(() => {
          clearTimeout(timer);
          resolve(true);
        });
      });
    },
    table: (rollout) => tables.get(rollout),
    rolloutNames: () => [...tables.keys()],
    subscribe(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    recordOutcome: (rollout, outcome) => remote.recordOutcome(rollout, outcome),
    flush: () => remote.flush(),
    stats,
    close() {
      closed ??= (async () => {
        closing.abort();
        clearTimeout(startupTimer);
        clearInterval(staleTimer);
        clearTimeout(persistTimer);
        await running;
        await persistNow();
        await remote.close();
      })();
      return closed;
    },
  };
}

/** Returns the rollouts added, removed or at another version between two states. */
function changedRollouts(before: ReadonlyMap<string, LocalTable>, after: ReadonlyMap<string, LocalTable>): string[] {
  const changed: string[] = [];
  for (const [name, t] of after) if (before.get(name)?.rolloutVersion !== t.rolloutVersion) changed.push(name);
  for (const name of before.keys()) if (!after.has(name)) changed.push(name);
  return changed;
}

/** Reads a state file written by persistNow; undefined (logged) when missing or unreadable. */
function readStateFile(path: string, logger: LocalLogger): { tables: Map<string, LocalTable>; revision: bigint } | undefined {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch {
    return undefined;
  }
  try {
    const parsed = JSON.parse(text) as { format?: string; revision?: string; routes?: JsonValue[] };
    if (parsed.format !== FILE_FORMAT || !Array.isArray(parsed.routes)) throw new Error(`not a ${FILE_FORMAT} file`);
    const tables = new Map<string, LocalTable>();
    for (const r of parsed.routes) {
      const t = compileRouteState(fromJson(RouteStateSchema, r) as RouteState);
      tables.set(t.rollout, t);
    }
    return { tables, revision: BigInt(parsed.revision ?? "0") };
  } catch (e) {
    logger.warn("ignoring an unreadable state file", { path, error: e instanceof Error ? e.message : String(e) });
    return undefined;
  }
}

