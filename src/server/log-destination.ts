import { writeSync } from "node:fs";

/**
 * The server's log destination (docs/design.md, "Durability and the log"): pino's lines are
 * gathered in memory and written out in one `write(2)` per turn of the event loop, from the main
 * thread (so lines never reorder), instead of one synchronous write per line. `flushSync` writes
 * out what is gathered at once: the engine calls it after the log lines of committed changes and
 * decisions and before anyone is answered, so a process killed with SIGKILL has lost no line of a
 * change anyone saw. Whatever is gathered is written on exit as well (SIGTERM and SIGINT end in
 * process.exit, an uncaught exception ends in "exit" too); only a SIGKILL can lose lines, and
 * then only access lines of the last event-loop turn.
 */
export interface LogDestination {
  /** pino's stream interface: one serialized line. */
  write(line: string): boolean;
  /** Writes everything gathered so far, synchronously. */
  flushSync(): void;
}

/** Gathered text beyond which a write goes out at once rather than at the end of the turn. */
const FLUSH_AT_CHARS = 64 * 1024;

/** Waits `ms` synchronously (a full non-blocking pipe: EAGAIN). */
function pause(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/** Returns a gathering destination writing to file descriptor `fd` (1: stdout). */
export function createLogDestination(fd = 1): LogDestination {
  let gathered = "";
  let scheduled = false;

  const flushSync = (): void => {
    if (gathered.length === 0) return;
    let buf = Buffer.from(gathered, "utf8");
    gathered = "";
    while (buf.length > 0) {
      try {
        const n = writeSync(fd, buf);
        buf = buf.subarray(n);
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        // stdout may be a non-blocking pipe whose reader is slow: wait for room, as a
        // synchronous destination would.
        if (code === "EAGAIN" || code === "EBUSY") {
          pause(1);
          continue;
        }
        // Nowhere to write the log (EPIPE: the reader went away): drop it rather than fail the server.
        return;
      }
    }
  };
  const onTurnEnd = (): void => {
    scheduled = false;
    flushSync();
  };
  process.on("exit", flushSync);

  return {
    write(line) {
      gathered += line;
      if (gathered.length >= FLUSH_AT_CHARS) flushSync();
      else if (!scheduled) {
        scheduled = true;
        setImmediate(onTurnEnd);
      }
      return true;
    },
    flushSync,
  };
}
