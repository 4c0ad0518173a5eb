// Issue 17, point 3: durable changes beside the bare SQLite commit floor, without the network —
// the engine's SetWeight with 1 and 8 concurrent callers in one process pinned to the server
// core, and the floor in the same process right after (bench/clients/engine-commits.mjs), in
// interleaved rounds. BENCH_BASELINE_DIST=<another tree's dist/> runs that build too, in the same
// rounds (an A/B). Over HTTP, SetWeight is measured in the scale case (7b, 7c).
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { benchDir, commandText, repoRoot, runPinned, SERVER_CORE } from "../lib/util.mjs";

export async function durabilityCase({ rounds, seconds, log }) {
  const builds = { head: join(repoRoot, "dist") };
  if (process.env.BENCH_BASELINE_DIST) builds.baseline = process.env.BENCH_BASELINE_DIST;
  const out = {};
  for (const b of Object.keys(builds)) out[b] = { 1: [], 8: [], ratio1: [], ratio8: [] };
  for (let r = 0; r < rounds; r++) {
    const order = r % 2 === 0 ? Object.keys(builds) : Object.keys(builds).reverse();
    for (const b of order) {
      for (const c of [1, 8]) {
        const dir = mkdtempSync(join(tmpdir(), "rollgate-bench-engine-"));
        try {
          const res = JSON.parse((await runPinned(SERVER_CORE, process.execPath, [join(benchDir, "clients", "engine-commits.mjs"), builds[b], dir, String(c), String(seconds)])).trim().split("\n").at(-1));
          out[b][c].push(res.perSec);
          out[b][`ratio${c}`].push(res.perSec / res.floorPerSec);
          log(`  durability ${b} round ${r + 1}/${rounds}, ${c} caller${c === 1 ? "" : "s"}: ${Math.round(res.perSec)} SetWeight/s, floor ${Math.round(res.floorPerSec)} commits/s (${(res.perSec / res.floorPerSec).toFixed(2)}×)`);
        } finally {
          rmSync(dir, { recursive: true, force: true });
        }
      }
    }
  }
  return { ...out, command: commandText(SERVER_CORE, "node", ["bench/clients/engine-commits.mjs", "<dist>", "<tmp>", "1|8", String(seconds)]) };
}
