// The server's log destination (src/server/log-destination.ts): lines gathered and written in
// order; a stdout whose reader stops reading makes it drop lines after a bounded wait, and say
// so, rather than stop the process.
import { spawn } from "node:child_process";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { repoRoot } from "../helpers/servers.js";

const module = join(repoRoot, "dist", "src", "server", "log-destination.js");

// The child writes 4 MiB of numbered lines to a stdout nobody reads, says so on stderr, waits for
// a line on stdin, then writes one more line.
const child = `
import { createLogDestination } from ${JSON.stringify(module)};
const d = createLogDestination(1);
const pad = "x".repeat(100);
const t0 = Date.now();
for (let i = 0; i < 40000; i++) d.write(JSON.stringify({ i, pad }) + "\\n");
d.flushSync();
process.stderr.write(JSON.stringify({ stalledMs: Date.now() - t0 }) + "\\n");
process.stdin.once("data", () => {
  d.write(JSON.stringify({ after: true }) + "\\n");
  d.flushSync();
  process.exit(0);
});
`;

describe("log destination", () => {
  it("drops lines after a bounded wait when stdout does not drain, keeps order, and says how much it dropped", async () => {
    const p = spawn(process.execPath, ["--input-type=module", "-e", child], { stdio: ["pipe", "pipe", "pipe"] });
    p.stdout.pause();
    const stalled = await new Promise<{ stalledMs: number }>((resolve, reject) => {
      let err = "";
      p.stderr.setEncoding("utf8").on("data", (s: string) => {
        err += s;
        if (err.includes("\n")) resolve(JSON.parse(err.split("\n")[0]!) as { stalledMs: number });
      });
      p.once("exit", (code) => reject(new Error(`child exited ${code}: ${err}`)));
    });
    // One bounded wait (about a second), not one per line and not for ever.
    expect(stalled.stalledMs).toBeLessThan(10_000);
    let out = "";
    p.stdout.setEncoding("utf8").on("data", (s: string) => (out += s));
    const ended = new Promise((resolve) => p.stdout.once("end", resolve));
    const exited = new Promise((resolve) => p.once("exit", resolve));
    p.stdout.resume();
    // Once the pipe is drained (nothing more for a moment), the child writes again.
    let seen = -1;
    while (seen !== out.length) {
      seen = out.length;
      await new Promise((r) => setTimeout(r, 300));
    }
    p.stdin.write("go\n");
    const code = await exited;
    await ended;
    expect(code).toBe(0);
    const lines = out.trim().split("\n").map((l) => JSON.parse(l) as { i?: number; msg?: string; droppedBytes?: number; after?: boolean });
    const numbered = lines.filter((l) => l.i !== undefined).map((l) => l.i!);
    // What was written came out whole and in order, from the first line on.
    expect(numbered.length).toBeGreaterThan(0);
    expect(numbered.length).toBeLessThan(40000);
    expect(numbered).toEqual(numbered.map((_, k) => k));
    const notice = lines.find((l) => l.msg === "log lines dropped: stdout did not drain");
    expect(notice?.droppedBytes).toBeGreaterThan(0);
    expect(lines.at(-1)).toEqual({ after: true });
  }, 30_000);
});
