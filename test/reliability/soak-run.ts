import { spawn } from "node:child_process";
import { join } from "node:path";
import { repoRoot } from "../helpers/servers.js";

/**
 * Runs one of the reliability suites (bench/soak.mjs, bench/chaos.mjs, bench/soak-streams.mjs)
 * in its short form, as `npm run soak` etc. would but printing its summary as JSON and leaving
 * bench/*.md alone, and returns that summary. The suite's own exit code (its pass verdict,
 * timings included) is not what a test checks: each test asserts only what timing noise cannot
 * change (counts, acknowledged changes, memory bounds).
 */
export function runSuite(script: string, args: string[], timeoutMs: number): Promise<Record<string, any>> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [join(repoRoot, "bench", script), ...args, "--json", "--no-write", "--no-build"], {
      cwd: repoRoot,
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    let err = "";
    child.stdout.setEncoding("utf8").on("data", (s: string) => (out += s));
    child.stderr.setEncoding("utf8").on("data", (s: string) => (err = (err + s).slice(-6000)));
    const timer = setTimeout(() => child.kill("SIGTERM"), timeoutMs);
    child.once("exit", (code, signal) => {
      clearTimeout(timer);
      const line = out.trim().split("\n").at(-1) ?? "";
      try {
        resolve(JSON.parse(line) as Record<string, any>);
      } catch {
        reject(new Error(`${script} exited ${code ?? signal} without a summary:\n${err}`));
      }
    });
  });
}
