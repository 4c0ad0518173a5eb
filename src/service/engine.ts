import type { Logger } from "pino";
import type { AuditEvent, EventType, NewEvent } from "../domain/audit-chain.js";
import type { Clock } from "../domain/clock.js";
import { DomainError, rolloutNotFound } from "../domain/errors.js";
import * as machine from "../domain/rollout-machine.js";
import type { Rollout, RolloutSpec } from "../domain/rollout.js";
import { compileRoutes, route, type RouteDecision, type RouteTable } from "../domain/routing.js";
import type { Store } from "../store/store.js";
import { createEventFeed, type EventFeed } from "./event-feed.js";

/** Who asks for a change and why. */
export interface Caller {
  /** The caller's token name ("evaluator" for automatic decisions). */
  readonly actor: string;
  readonly reason: string;
}

/** One rollout's live state. */
interface Entry {
  rollout: Rollout;
  table: RouteTable;
}

/** Options of createEngine. */
export interface EngineOptions {
  readonly store: Store;
  readonly clock: Clock;
  readonly logger: Logger;
}

/**
 * Returns the rollout engine: the in-memory state of every rollout, kept equal to the store.
 *
 * Reads (Route, Get, List) never touch the store. Every change runs through one queue so that
 * read-modify-write cycles never interleave, is committed durably with its audit events before
 * the caller is answered, and only then becomes visible: the next Route sees it.
 */
export function createEngine(opts: EngineOptions) {
  const { store, clock, logger } = opts;
  const entries = new Map<string, Entry>();
  const feed: EventFeed = createEventFeed();
  let loaded = false;

  let queue: Promise<unknown> = Promise.resolve();
  /** Runs `task` after every earlier change has finished, whatever its outcome. */
  function serial<T>(task: () => Promise<T>): Promise<T> {
    const run = queue.then(task, task);
    queue = run.catch(() => undefined);
    return run;
  }

  function entryOf(name: string): Entry {
    const e = entries.get(name);
    if (e === undefined) throw rolloutNotFound(name);
    return e;
  }

  function snapshotOf(r: Rollout, summary: string): string {
    return JSON.stringify({
      summary,
      stage: r.stage,
      current_step: r.currentStep,
      weight_bp: r.weightBp,
      paused: r.paused,
      version: r.version,
      stable_version: r.stableVersion,
      canary_version: r.canaryVersion,
    });
  }

  function newEvent(r: Rollout, type: EventType, caller: Caller, summary: string): NewEvent {
    return {
      timeNs: BigInt(clock.now()) * 1_000_000n,
      rollout: r.name,
      type,
      actor: caller.actor,
      reason: caller.reason === "" ? summary : caller.reason,
      fingerprint: r.fingerprint,
      snapshot: snapshotOf(r, summary),
    };
  }

  async function persist(r: Rollout, events: NewEvent[]): Promise<AuditEvent[]> {
    const appended = await store.commit({ put: r, events });
    entries.set(r.name, { rollout: r, table: compileRoutes(r) });
    feed.publish(appended);
    return appended;
  }

  return {
    /** Loads every rollout from the store; the engine serves nothing before this resolves. */
    async load(): Promise<void> {
      for (const { rollout } of await store.loadRollouts()) {
        entries.set(rollout.name, { rollout, table: compileRoutes(rollout) });
      }
      loaded = true;
      logger.info({ rollouts: entries.size }, "state loaded");
    },

    /** Returns true once load() has finished. */
    isLoaded(): boolean {
      return loaded;
    },

    /** Returns where a key goes in a rollout. */
    route(name: string, key: string): RouteDecision {
      const e = entries.get(name);
      if (e === undefined) throw rolloutNotFound(name);
      return route(e.table, key);
    },

    /** Returns a rollout's route table (for callers that route many keys). */
    routeTable(name: string): RouteTable {
      return entryOf(name).table;
    },

    /** Returns a rollout. */
    get(name: string): Rollout {
      return entryOf(name).rollout;
    },

    /** Returns every rollout, by name. */
    list(): Rollout[] {
      return [...entries.values()].map((e) => e.rollout).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    },

    /** Creates a rollout at its first step. */
    create(spec: RolloutSpec, caller: Caller): Promise<Rollout> {
      return serial(async () => {
        if (entries.has(spec.name)) throw new DomainError("already_exists", `rollout "${spec.name}" already exists`);
        const r = machine.createRollout(spec, { name: caller.actor, now: clock.now() });
        const summary = `created: ${r.canaryVersion} over ${r.stableVersion}, ${r.steps.length} steps, weight ${r.weightBp} bp`;
        await persist(r, [newEvent(r, "created", caller, summary)]);
        logger.info({ rollout: r.name, actor: caller.actor, version: r.version }, "rollout created");
        return r;
      });
    },

    /**
     * Applies a transition to a rollout. `expectedVersion` (when > 0) must equal the stored
     * version, else ABORTED. A transition that changes nothing bumps nothing and records nothing.
     */
    change(
      name: string,
      caller: Caller,
      transition: (r: Rollout, actor: machine.Actor) => machine.Transition,
      expectedVersion = 0,
    ): Promise<Rollout> {
      return serial(async () => {
        const current = entryOf(name).rollout;
        if (expectedVersion > 0 && expectedVersion !== current.version) {
          throw new DomainError(
            "aborted",
            `rollout "${name}" is at version ${current.version}, not the expected ${expectedVersion}; re-read it and retry`,
          );
        }
        const t = transition(current, { name: caller.actor, now: clock.now() });
        if (t.unchanged === true) return current;
        await persist(t.rollout, [newEvent(t.rollout, t.type, caller, t.summary)]);
        logger.info(
          { rollout: name, actor: caller.actor, event: t.type, version: t.rollout.version, reason: caller.reason },
          t.summary,
        );
        return t.rollout;
      });
    },

    /** Deletes a rollout; its events stay in the log. */
    delete(name: string, caller: Caller, expectedVersion = 0): Promise<void> {
      return serial(async () => {
        const current = entryOf(name).rollout;
        if (expectedVersion > 0 && expectedVersion !== current.version) {
          throw new DomainError("aborted", `rollout "${name}" is at version ${current.version}, not the expected ${expectedVersion}`);
        }
        const event = newEvent(current, "deleted", caller, `deleted at ${current.stage} (version ${current.version})`);
        const appended = await store.commit({ remove: name, events: [event] });
        entries.delete(name);
        feed.publish(appended);
        logger.info({ rollout: name, actor: caller.actor }, "rollout deleted");
      });
    },

    /** Returns events after a sequence number, oldest first. */
    listEvents(rollout: string | undefined, afterSeq: number, limit: number): Promise<AuditEvent[]> {
      return store.listEvents(rollout === undefined ? { afterSeq, limit } : { rollout, afterSeq, limit });
    },

    /** The live fan-out of appended events. */
    events: feed,

    /** Ends every live subscription so that streaming calls finish with OK before shutdown. */
    shutdown(): void {
      feed.closeAll();
    },

    /** Waits for every queued change to finish. */
    async drain(): Promise<void> {
      await serial(async () => undefined);
    },
  };
}

/** The engine type. */
export type Engine = ReturnType<typeof createEngine>;
