// Target 2: bucketing in process, beside flagd-core's fractional evaluation.
import { join } from "node:path";
import { benchDir, commandText, runPinned, SERVER_CORE } from "../lib/util.mjs";

/** Runs the microbenchmark in one process pinned to the server core; ns per decision per round. */
export async function bucketingCase({ rounds, calls, log }) {
  const args = [join(benchDir, "clients", "bucketing.mjs"), String(rounds), String(calls)];
  const res = JSON.parse((await runPinned(SERVER_CORE, process.execPath, args, { timeoutMs: 300_000 })).trim().split("\n").at(-1));
  for (const [k, v] of Object.entries(res.rounds)) log(`  bucketing ${k}: ${v.map((x) => `${Math.round(x)} ns`).join(", ")}`);
  return { ...res, commands: [commandText(SERVER_CORE, "node", ["bench/clients/bucketing.mjs", String(rounds), String(calls)])] };
}
