import type Database from "better-sqlite3";
import { DomainError } from "../domain/errors.js";

/**
 * What a failing SQLite disk means to a caller. A full disk is RESOURCE_EXHAUSTED; a read-only
 * file or filesystem, another process holding the write lock too long, or an I/O error are
 * UNAVAILABLE. Each says "the change was not made" (the transaction rolled back; memory is
 * changed only after a commit), so a client knows a retry is safe once the fault is gone.
 */

/** How long a write waits for another process's write lock before it fails UNAVAILABLE. */
export const LOCK_WAIT_MS = 5000;

/**
 * SQLite's own busy wait: short, because better-sqlite3 is synchronous and a busy wait blocks
 * the event loop (Route with it). Longer waits are retried asynchronously up to LOCK_WAIT_MS.
 */
export const BUSY_TIMEOUT_MS = 20;

/** Returns the short reason of a SQLite fault ("database: disk full"), or undefined for other errors. */
export function faultReason(e: unknown): string | undefined {
  const code = (e as { code?: unknown } | null)?.code;
  if (typeof code !== "string" || !code.startsWith("SQLITE_")) return undefined;
  if (code === "SQLITE_FULL") return "database: disk full";
  if (code.startsWith("SQLITE_READONLY")) return "database: read-only";
  if (code.startsWith("SQLITE_BUSY") || code.startsWith("SQLITE_LOCKED")) return "database: locked by another process";
  if (code.startsWith("SQLITE_IOERR") || code === "SQLITE_CANTOPEN" || code === "SQLITE_PROTOCOL") return "database: I/O error";
  return undefined;
}

/** Returns the domain error a caller sees for a SQLite fault; other errors unchanged. */
export function asFaultError(e: unknown, waitedMs = 0): unknown {
  const reason = faultReason(e);
  if (reason === undefined) return e;
  const code = (e as { code: string }).code;
  const detail = code.startsWith("SQLITE_BUSY") && waitedMs > 0 ? ` for over ${Math.round(waitedMs / 100) / 10} s` : "";
  return new DomainError(
    code === "SQLITE_FULL" ? "resource_exhausted" : "unavailable",
    `${reason}${detail} (${code}); the change was not made: retry once the fault is gone`,
  );
}

function isBusy(e: unknown): boolean {
  const code = (e as { code?: unknown } | null)?.code;
  return typeof code === "string" && code.startsWith("SQLITE_BUSY");
}

/**
 * Runs a write transaction, retrying while another process holds the write lock (each try
 * waits BUSY_TIMEOUT_MS inside SQLite, then the event loop runs) for up to `budgetMs`; a fault
 * becomes its domain error (asFaultError).
 */
export async function writeWithRetry<T>(fn: () => T, budgetMs = LOCK_WAIT_MS): Promise<T> {
  const started = Date.now();
  for (let delay = 5; ; delay = Math.min(delay * 2, 100)) {
    try {
      return fn();
    } catch (e) {
      const waited = Date.now() - started;
      if (!isBusy(e) || waited >= budgetMs) throw asFaultError(e, waited);
    }
    await new Promise((resolve) => setTimeout(resolve, delay));
  }
}

/**
 * Checks that the database can be written now: takes the write lock and, after a failed write
 * (`probeWrite`), commits a no-op change (user_version rewritten) so that a full or read-only
 * disk is seen to have recovered. Throws the fault's domain error.
 */
export function checkWritable(db: Database.Database, probeWrite: boolean): void {
  try {
    if (probeWrite) {
      const v = db.pragma("user_version", { simple: true }) as number;
      db.transaction(() => db.pragma(`user_version = ${v}`)).immediate();
    } else {
      db.transaction(() => undefined).immediate();
    }
  } catch (e) {
    throw asFaultError(e);
  }
}
