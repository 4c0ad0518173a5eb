import { create, toBinary } from "@bufbuild/protobuf";
import type { AuditEvent } from "../domain/audit-chain.js";
import { invalidArgument } from "../domain/errors.js";
import type { Rollout } from "../domain/rollout.js";
import { validateName } from "../domain/validation.js";
import {
  RouteStateSchema,
  WatchRoutesResponseSchema,
  type RouteState,
  type WatchRoutesRequest,
  type WatchRoutesResponse,
} from "../../gen/rollgate/v1/decision_service_pb.js";
import { stageToProto, variantToProto } from "./convert.js";
import type { Engine } from "./engine.js";
import type { Subscription } from "./fan-out.js";

/**
 * WatchRoutes (issue 11): the routing state of rollouts, streamed to clients that route in
 * process.
 *
 * One feed per server holds the single engine subscription every stream shares. Each stream is
 * a watcher with a set of dirty rollout names: the feed marks a name dirty when an audit event
 * shows that rollout's routing state changed, and the stream sends the current state of its
 * dirty rollouts when it is ready to write. A slow reader therefore never holds anything up —
 * the feed does O(1) per watcher per change and never waits — and when it catches up it gets
 * one message with the latest state of what changed meanwhile, bounded by the number of
 * rollouts. `revision` is the audit log's seq: every event the feed has processed is at or
 * below it, so a client that applied a message holds every rollout's state as of at least that
 * revision, and can resume from it (the changes since are replayed from the log, or it gets a
 * reset when there are too many).
 */

/** Most rollout names one WatchRoutes call may name. */
export const MAX_WATCHED_ROLLOUTS = 1000;
/** A heartbeat (the current revision, no routes) goes out after this long without a message. */
export const ROUTES_HEARTBEAT_MS = 5000;
/** Most audit events a resume replays; further behind, the stream starts with a reset. */
export const MAX_ROUTES_REPLAY = 10_000;

/** One message of a WatchRoutes stream, in domain terms. */
export interface RoutesMessage {
  readonly revision: number;
  readonly reset: boolean;
  readonly routes: readonly Rollout[];
  readonly removed: readonly string[];
}

/** Options of the routes feed. */
export interface RoutesFeedOptions {
  readonly engine: Engine;
  readonly heartbeatMs?: number;
  readonly maxReplay?: number;
  /**
   * How long a resume from a revision that is in the log but not yet applied here (another
   * replica wrote it) waits for this replica to catch up before it is answered with a snapshot.
   */
  readonly catchUpWaitMs?: number;
}

interface Watcher {
  readonly accept: (name: string) => boolean;
  readonly dirty: Set<string>;
  /** Set when the stream must start over with a reset. */
  reset: boolean;
  /** Set at shutdown: the stream ends with OK. */
  ended: boolean;
  /** Set by the heartbeat timer when nothing was sent for a whole period. */
  beat: boolean;
  /** When the stream last sent a message (performance.now()). */
  sentAt: number;
  wake: (() => void) | undefined;
}

/** Returns the routes feed of an engine: what both serving paths stream WatchRoutes from. */
export function createRoutesFeed(opts: RoutesFeedOptions) {
  const { engine } = opts;
  const heartbeatMs = opts.heartbeatMs ?? ROUTES_HEARTBEAT_MS;
  const maxReplay = opts.maxReplay ?? MAX_ROUTES_REPLAY;
  const catchUpWaitMs = opts.catchUpWaitMs ?? 5000;
  /** Resumes waiting for `revision` to reach their `at`. */
  const waiting = new Set<{ readonly at: number; readonly done: () => void }>();
  const release = () => {
    for (const x of waiting) if (revision >= x.at) x.done();
  };
  /** Resolves true once `revision` reaches `at`, false after `ms` or when `signal` aborts. */
  const reach = (at: number, ms: number, signal: AbortSignal) =>
    new Promise<boolean>((resolve) => {
      const x = {
        at,
        done: () => {
          clearTimeout(timer);
          signal.removeEventListener("abort", x.done);
          waiting.delete(x);
          resolve(revision >= at);
        },
      };
      if (signal.aborted || revision >= at) return resolve(revision >= at);
      const timer = setTimeout(x.done, ms);
      signal.addEventListener("abort", x.done);
      waiting.add(x);
    });
  const watchers = new Set<Watcher>();
  /** The highest audit seq processed (or in the log when the feed started). Only rises. */
  let revision = 0;
  let sub: Subscription<AuditEvent> | undefined;
  let started: Promise<void> | undefined;
  /** The rollout object each name last routed with, to skip events that changed no routing. */
  const seen = new Map<string, Rollout>();
  // One timer for every stream's heartbeat (not one per stream and wait): it wakes the streams
  // that sent nothing for a whole period.
  let heartbeat: NodeJS.Timeout | undefined;
  const beatIdle = () => {
    const due = performance.now() - heartbeatMs;
    for (const w of watchers) {
      if (w.sentAt > due) continue;
      w.beat = true;
      w.wake?.();
    }
  };

  const current = (name: string): Rollout | undefined => {
    try {
      return engine.get(name);
    } catch {
      return undefined;
    }
  };

  /** Subscribes first, then reads the log's head, so that no change falls in between. */
  function start(): Promise<void> {
    const s = engine.subscribeEvents(undefined);
    sub = s;
    heartbeat = setInterval(beatIdle, Math.max(10, heartbeatMs / 4));
    heartbeat.unref();
    seen.clear();
    for (const r of engine.list()) seen.set(r.name, r);
    void pump(s);
    return engine.lastSeq().then((seq) => {
      if (seq > revision) revision = seq;
    });
  }

  function stop(): void {
    clearInterval(heartbeat);
    heartbeat = undefined;
    sub?.close();
    sub = undefined;
    started = undefined;
  }

  async function pump(s: Subscription<AuditEvent>): Promise<void> {
    try {
      for await (const e of s) {
        if (e.seq > revision) {
          revision = e.seq;
          if (waiting.size > 0) release();
        }
        const name = e.rollout;
        const now = current(name);
        // Gate breaches, decisions in dry run and the like change no routing state.
        if (now === undefined ? !seen.has(name) : seen.get(name) === now) continue;
        if (now === undefined) seen.delete(name);
        else seen.set(name, now);
        for (const w of watchers) {
          if (!w.accept(name)) continue;
          w.dirty.add(name);
          w.wake?.();
        }
      }
      // The engine ended its subscriptions (shutdown): every stream ends with OK.
      if (sub !== s) return;
      stop();
      for (const w of watchers) {
        w.ended = true;
        w.wake?.();
      }
    } catch {
      // Only a reader that never awaits a consumer reads this subscription, so it cannot fall
      // behind in practice; if it ever does, every stream starts over from a reset.
      if (sub !== s) return;
      stop();
      if (watchers.size > 0) started = start();
      for (const w of watchers) {
        w.reset = true;
        w.wake?.();
      }
    }
  }

  return {
    /** Returns the revision the feed has reached. */
    revision: () => revision,

    /** Returns the number of live WatchRoutes streams. */
    watchers: () => watchers.size,

    /**
     * Validates a WatchRoutes request (throwing INVALID_ARGUMENT or NOT_FOUND) and returns its
     * messages: a reset (or, resuming, the changes since `after_revision`), then the changes, and
     * a heartbeat after every quiet `heartbeatMs`. Ends when `signal` aborts or at shutdown.
     */
    watch<T = RoutesMessage>(req: WatchRoutesRequest, signal: AbortSignal, encode: (m: RoutesMessage) => T = (m) => m as T): AsyncIterable<T> {
      if (req.rollouts.length > MAX_WATCHED_ROLLOUTS) {
        throw invalidArgument("rollouts", `must name at most ${MAX_WATCHED_ROLLOUTS} rollouts, not ${req.rollouts.length}`);
      }
      for (let i = 0; i < req.rollouts.length; i++) validateName(`rollouts[${i}]`, req.rollouts[i]!);
      const names = req.rollouts.length === 0 ? undefined : new Set(req.rollouts);
      const after = req.afterRevision;
      // A fresh subscription must name existing rollouts; a resume may name deleted ones (the
      // client was sent them in `removed`, or gets them so in the replay, or absent from a reset).
      if (names !== undefined && after === 0n) for (const n of names) engine.get(n);
      const w: Watcher = { accept: names === undefined ? () => true : (n) => names.has(n), dirty: new Set(), reset: false, ended: false, beat: false, sentAt: performance.now(), wake: undefined };

      const snapshot = (): RoutesMessage => {
        w.reset = false;
        w.dirty.clear();
        const routes = names === undefined ? engine.list() : [...names].map(current).filter((r) => r !== undefined);
        return { revision, reset: true, routes, removed: [] };
      };
      const changes = (): RoutesMessage => {
        const routes: Rollout[] = [];
        const removed: string[] = [];
        for (const n of w.dirty) {
          const r = current(n);
          if (r === undefined) removed.push(n);
          else routes.push(r);
        }
        w.dirty.clear();
        return { revision, reset: false, routes, removed };
      };
      /** The changes since `after`, replayed from the log; undefined when there are too many. */
      const resume = async (from: number): Promise<RoutesMessage | undefined> => {
        const events = await engine.listEvents(undefined, from, maxReplay + 1);
        if (events.length > maxReplay || w.reset) return undefined;
        for (const e of events) if (w.accept(e.rollout)) w.dirty.add(e.rollout);
        return changes();
      };

      // A hand-written iterator rather than async generators: with 1,000 streams every change
      // is 1,000 deliveries, and each generator layer cost a few promise hops apiece.
      let aborted = signal.aborted;
      let finished = false;
      let first: Promise<IteratorResult<T>> | undefined;
      const onAbort = () => {
        aborted = true;
        w.wake?.();
      };
      const finish = (): IteratorResult<T> => {
        if (!finished) {
          finished = true;
          signal.removeEventListener("abort", onAbort);
          watchers.delete(w);
          if (watchers.size === 0) stop();
        }
        return { value: undefined, done: true };
      };
      const sent = (m: RoutesMessage): IteratorResult<T> => {
        w.beat = false;
        w.sentAt = performance.now();
        return { value: encode(m), done: false };
      };
      /** The next message if one is due, the end, or undefined to wait. */
      const take = (): IteratorResult<T> | undefined => {
        if (finished || aborted || w.ended) return finish();
        if (w.reset) return sent(snapshot());
        if (w.dirty.size > 0) return sent(changes());
        if (w.beat) return sent({ revision, reset: false, routes: [], removed: [] });
        return undefined;
      };
      const begin = async (): Promise<IteratorResult<T>> => {
        watchers.add(w);
        signal.addEventListener("abort", onAbort);
        try {
          await (started ??= start());
          let replay = after !== 0n;
          if (after > BigInt(revision)) {
            // Either beyond the log (a server on another database), or written by another
            // replica that this one has not caught up with yet: wait for it, then a snapshot.
            const head = await engine.lastSeq();
            if (after > BigInt(head)) {
              throw invalidArgument("after_revision", `${after} is ahead of the server's revision ${head}; resume from a revision this server sent, or 0 for a snapshot`);
            }
            replay = await reach(Number(after), catchUpWaitMs, signal);
          }
          const m = (replay ? await resume(Number(after)) : undefined) ?? snapshot();
          return aborted ? finish() : sent(m);
        } catch (e) {
          finish();
          throw e;
        }
      };
      const iterator: AsyncIterator<T> = {
        next() {
          if (first === undefined) return (first = begin());
          const now = take();
          if (now !== undefined) return Promise.resolve(now);
          return new Promise((resolve) => {
            w.wake = () => {
              const r = take();
              if (r === undefined) return;
              w.wake = undefined;
              resolve(r);
            };
          });
        },
        return() {
          // Finished first, so that a next() still waiting is woken into the end.
          const done = finish();
          w.wake?.();
          return Promise.resolve(done);
        },
      };
      return { [Symbol.asyncIterator]: () => iterator };
    },
  };
}

/** The routes feed type. */
export type RoutesFeed = ReturnType<typeof createRoutesFeed>;

/** Wire form and encoded bytes of each rollout state, made once however many streams carry it. */
const stateWire = new WeakMap<Rollout, RouteState>();
const stateBytes = new WeakMap<Rollout, Uint8Array>();

/** Returns the RouteState of a rollout (routing spec v1: everything Route needs). */
export function routeStateOf(r: Rollout): RouteState {
  let s = stateWire.get(r);
  if (s === undefined) {
    s = create(RouteStateSchema, {
      rollout: r.name,
      rolloutVersion: BigInt(r.version),
      stage: stageToProto(r.stage),
      weightBp: r.weightBp,
      salt: r.salt,
      stableVersion: r.stableVersion,
      canaryVersion: r.canaryVersion,
      features: Object.fromEntries(r.features),
      overrides: Object.fromEntries([...r.overrides].map(([k, v]) => [k, variantToProto(v)])),
    });
    stateWire.set(r, s);
  }
  return s;
}

/** Returns a WatchRoutes message as its wire message (the Connect path). */
export function routesMessageToProto(m: RoutesMessage): WatchRoutesResponse {
  return create(WatchRoutesResponseSchema, {
    revision: BigInt(m.revision),
    reset: m.reset,
    routes: m.routes.map(routeStateOf),
    removed: m.removed as string[],
  });
}

/**
 * Returns a WatchRoutes message as WatchRoutesResponse bytes (the gRPC fast path): each
 * RouteState is encoded once per rollout version and copied into every stream's message.
 * The output is exactly what toBinary writes (a test locks it).
 */
export function encodeRoutesMessage(m: RoutesMessage): Uint8Array {
  // The common message — one rollout changed — is the same for every stream at one revision.
  if (m.routes.length === 1 && m.removed.length === 0 && !m.reset) {
    const r = m.routes[0]!;
    const hit = changeBytes.get(r);
    if (hit !== undefined && hit.revision === m.revision) return hit.bytes;
    const bytes = encodeParts(m);
    changeBytes.set(r, { revision: m.revision, bytes });
    return bytes;
  }
  return encodeParts(m);
}

const changeBytes = new WeakMap<Rollout, { readonly revision: number; readonly bytes: Uint8Array }>();

function encodeParts(m: RoutesMessage): Uint8Array {
  const parts: Uint8Array[] = [];
  let size = 0;
  const push = (b: Uint8Array) => {
    parts.push(b);
    size += b.length;
  };
  if (m.revision !== 0) push(concat([Uint8Array.of(1 << 3), varint(m.revision)]));
  if (m.reset) push(Uint8Array.of(2 << 3, 1));
  for (const r of m.routes) {
    let b = stateBytes.get(r);
    if (b === undefined) stateBytes.set(r, (b = toBinary(RouteStateSchema, routeStateOf(r))));
    push(Uint8Array.of((3 << 3) | 2));
    push(varint(b.length));
    push(b);
  }
  for (const name of m.removed) {
    const b = encoder.encode(name);
    push(Uint8Array.of((4 << 3) | 2));
    push(varint(b.length));
    push(b);
  }
  return concat(parts, size);
}

const encoder = new TextEncoder();

function varint(v: number): Uint8Array {
  const out: number[] = [];
  let x = BigInt(v);
  while (x > 0x7fn) {
    out.push(Number(x & 0x7fn) | 0x80);
    x >>= 7n;
  }
  out.push(Number(x));
  return Uint8Array.from(out);
}

function concat(parts: readonly Uint8Array[], size = parts.reduce((n, p) => n + p.length, 0)): Uint8Array {
  const out = new Uint8Array(size);
  let pos = 0;
  for (const p of parts) {
    out.set(p, pos);
    pos += p.length;
  }
  return out;
}

