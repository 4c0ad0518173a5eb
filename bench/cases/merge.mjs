// Issue 17, point 4: what one window aggregate costs after a new outcome (an evaluation, a Health
// call, a health publish) with the closed-bucket cache against merging every bucket's sketch,
// in one process pinned to the server core, the two interleaved round by round.
import { join } from "node:path";
import { benchDir, commandText, runPinned, SERVER_CORE } from "../lib/util.mjs";

export async function mergeCase({ rounds, calls, log }) {
  const res = JSON.parse((await runPinned(SERVER_CORE, process.execPath, [join(benchDir, "clients", "health-merge.mjs"), calls, rounds].map(String))).trim());
  const ratios = res.cachedUs.map((c, i) => c / res.uncachedUs[i]);
  log(`  merge: cached ${res.cachedUs.map((x) => x.toFixed(1)).join(", ")} µs; uncached ${res.uncachedUs.map((x) => x.toFixed(1)).join(", ")} µs`);
  return { ...res, ratios, command: commandText(SERVER_CORE, "node", ["bench/clients/health-merge.mjs", String(calls), String(rounds)]) };
}
