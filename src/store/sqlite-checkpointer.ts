import { createRequire } from "node:module";
import { Worker } from "node:worker_threads";
import type Database from "better-sqlite3";

/**
 * SQLite's WAL checkpoints, off the event loop. By default SQLite checkpoints inside whichever
 * commit takes the WAL past 1,000 pages: that commit then copies ~4 MB into the database file
 * and syncs both files on the calling thread — 15–40 ms of a stalled event loop every 10–15 s
 * under the soak's load. Instead the serving connection's auto-checkpoint is off, and a worker
 * thread with its own connection to the same file runs a PASSIVE checkpoint (which never blocks
 * a writer nor waits for one) every `everyMs`. Durability is SQLite's either way: a checkpoint
 * syncs the WAL before it copies and the database after. If the worker cannot start or fails, the
 * serving connection's auto-checkpoint is turned back on, so the WAL never grows unbounded.
 */
export interface Checkpointer {
  /** Stops the worker (its connection closed); the serving connection's close checkpoints last. */
  stop(): Promise<void>;
}

/** Every how often the worker checkpoints (a few hundred pages each time under the soak's load). */
export const CHECKPOINT_EVERY_MS = 2000;

// CommonJS, run by the worker (eval): better-sqlite3 resolved by the parent, so that it loads
// whatever the working directory.
const WORKER = `
const { workerData, parentPort } = require("node:worker_threads");
const Database = require(workerData.module);
const db = new Database(workerData.path, { fileMustExist: true });
let failures = 0;
const timer = setInterval(() => {
  try {
    db.pragma("wal_checkpoint(PASSIVE)");
    failures = 0;
  } catch (e) {
    // A full disk or a read-only file: tried again next time; the parent hears of a lasting fault.
    if (++failures === 5) parentPort.postMessage({ failing: String(e && e.message) });
  }
}, workerData.everyMs);
parentPort.on("message", (m) => {
  if (m !== "stop") return;
  clearInterval(timer);
  db.close();
  parentPort.close();
});
`;

/** Starts checkpointing `path` (the database `db` serves) from a worker thread; `warn` hears of faults. */
export function startCheckpointer(db: Database.Database, path: string, warn: (msg: string) => void, everyMs = CHECKPOINT_EVERY_MS): Checkpointer {
  const fallback = () => db.open && db.pragma("wal_autocheckpoint = 1000");
  let worker: Worker;
  try {
    const module = createRequire(import.meta.url).resolve("better-sqlite3");
    worker = new Worker(WORKER, { eval: true, workerData: { module, path, everyMs } });
  } catch (e) {
    warn(`WAL checkpoints stay in commits: cannot start the checkpoint thread: ${(e as Error).message}`);
    return { stop: async () => undefined };
  }
  db.pragma("wal_autocheckpoint = 0");
  let stopping = false;
  worker.on("message", (m: { failing?: string }) => {
    if (m.failing !== undefined) warn(`WAL checkpoint failing: ${m.failing}`);
  });
  worker.on("error", (e) => {
    warn(`WAL checkpoint thread failed, checkpoints back in commits: ${e.message}`);
    fallback();
  });
  const exited = new Promise<void>((resolve) =>
    worker.once("exit", () => {
      if (!stopping) fallback();
      resolve();
    }),
  );
  // The thread never keeps the process alive on its own.
  worker.unref();
  return {
    async stop() {
      if (stopping) return exited;
      stopping = true;
      worker.postMessage("stop");
      const t = setTimeout(() => void worker.terminate(), 5000);
      await exited;
      clearTimeout(t);
    },
  };
}
