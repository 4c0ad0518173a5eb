import { writeSync } from "node:fs";

/**
 * The server's log destination (docs/design.md, "Durability and the log"): pino's lines are
 * gathered in memory and written out in one `write(2)` per turn of the event loop, from the main
 * thread (so lines never reorder), instead of one synchronous write per line. `flushSync` writes
 * out what is gathered at once: the engine calls it after the log lines of committed changes and
 * decisions and before anyone is answered, so a process killed with SIGKILL has lost no line of a
 * change anyone saw. Whatever is gathered is written on exit as well (SIGTERM and SIGINT end in
 * process.exit, an uncaught exception ends in "exit" too); only a SIGKILL can lose lines, and
 * then only access lines of the last event-loop turn. A stdout whose reader stops reading for
 * more than STALL_MS makes the log drop lines (and say so later), not the server stop.
 */
export interface LogDestination {
  /** pino's stream interface: one serialized line. */
  write(line: string): boolean;
  /** Writes everything gathered so far, synchronously. */
  flushSync(): void;
  /** Writes what is gathered and stops writing on exit (the server stopped; its last lines are out). */
  close(): void;
}

/** Gathered text beyond which a write goes out at once rather than at the end of the turn. */
const FLUSH_AT_CHARS = 64 * 1024;

/**
 * How long one write-out waits for a full stdout pipe to take more (its reader stalled) before
 * the rest is dropped: the server keeps serving rather than stopping behind its log. While
 * stalled, later write-outs try once and drop at once, until a write goes through; then a line
 * says how much was dropped.
 */
const STALL_MS = 1000;

/** Waits `ms` synchronously (a full non-blocking pipe: EAGAIN). */
function pause(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/** Returns a gathering destination writing to file descriptor `fd` (1: stdout). */
export function createLogDestination(fd = 1): LogDestination {
  // Node opens stdout as a stream when first asked for it, and a pipe's end is then made
  // non-blocking: a stalled reader gives EAGAIN (bounded below) rather than a write that blocks
  // the process for ever (pino's own destination relies on the same).
  if (fd === 1) void process.stdout.fd;
  let gathered = "";
  let scheduled = false;

  let stalled = false;
  let droppedBytes = 0;
  // The rest of a line cut by a partial write before a drop: written first next time, so that
  // the log holds whole lines only.
  let cut: Buffer | undefined;
  const flushSync = (): void => {
    if (gathered.length === 0 && cut === undefined) return;
    if (droppedBytes > 0) {
      gathered = `${JSON.stringify({ level: 40, time: Date.now(), service: "rollgate", msg: "log lines dropped: stdout did not drain", droppedBytes })}\n${gathered}`;
      droppedBytes = 0;
    }
    let buf = cut === undefined ? Buffer.from(gathered, "utf8") : Buffer.concat([cut, Buffer.from(gathered, "utf8")]);
    cut = undefined;
    gathered = "";
    let atLineStart = true;
    let deadline = 0;
    while (buf.length > 0) {
      try {
        const n = writeSync(fd, buf);
        if (n > 0) atLineStart = buf[n - 1] === 0x0a;
        buf = buf.subarray(n);
        stalled = false;
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        // stdout may be a non-blocking pipe whose reader is slow: wait for room, as a
        // synchronous destination would, but not for ever.
        if ((code === "EAGAIN" || code === "EBUSY") && !stalled) {
          const now = performance.now();
          if (deadline === 0) deadline = now + STALL_MS;
          if (now < deadline) {
            pause(1);
            continue;
          }
          stalled = true;
        }
        // Stalled too long, or nowhere to write (EPIPE: the reader went away): drop the rest
        // rather than stop the server, whole lines only.
        if (!atLineStart) {
          const end = buf.indexOf(0x0a) + 1;
          cut = Buffer.from(end > 0 ? buf.subarray(0, end) : buf);
          buf = buf.subarray(cut.length);
        }
        droppedBytes += buf.length;
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
    close() {
      flushSync();
      process.off("exit", flushSync);
    },
  };
}
