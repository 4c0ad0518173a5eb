#!/usr/bin/env node
// An A/B of the scale case's light traffic (6d): two rollgate servers side by side on the server
// core — this tree's dist/ and another build's — each with 10,000 rollouts (interval 10s, window
// 300s), each driven at the same time by its own spread-outcomes.mjs from the client core (200
// RecordOutcome/s × 50 outcomes over all rollouts), so that both see the same machine load.
// Prints each round's server CPU share of one core. bench/RESULTS.md quotes it (issue 17.4).
// Usage: node bench/scale-ab.mjs <baseline dist dir> [seconds per round = 20] [rounds = 3]
import { join } from "node:path";
import { createRollout, startRollgate } from "./lib/rollgate.mjs";
import { benchDir, cpuSeconds, runPinned, sleep, CLIENT_CORE } from "./lib/util.mjs";
import { SCALE_ROLLOUTS } from "./cases/scale.mjs";

const [baseDist, secArg = "20", roundsArg = "3"] = process.argv.slice(2);
if (baseDist === undefined) {
  console.error("usage: node bench/scale-ab.mjs <baseline dist dir> [seconds] [rounds]");
  process.exit(2);
}
const seconds = Number(secArg);
const servers = { baseline: await startRollgate({ cli: join(baseDist, "src", "cli", "main.js") }), head: await startRollgate({}) };
try {
  await Promise.all(
    Object.values(servers).map(async (rg) => {
      let next = 0;
      await Promise.all(
        Array.from({ length: 8 }, async () => {
          while (next < SCALE_ROLLOUTS) {
            const i = next++;
            await createRollout(rg.port, `s-${i}`, { interval: "10s", window: "300s" });
          }
        }),
      );
    }),
  );
  await sleep(11_000);
  for (let r = 0; r < Number(roundsArg); r++) {
    const c0 = Object.fromEntries(Object.entries(servers).map(([k, rg]) => [k, cpuSeconds(rg.pid)]));
    const t0 = performance.now();
    const sent = await Promise.all(
      Object.values(servers).map(async (rg) =>
        JSON.parse((await runPinned(CLIENT_CORE, process.execPath, [join(benchDir, "clients", "spread-outcomes.mjs"), rg.port, "s-", SCALE_ROLLOUTS, 50, 200, seconds].map(String), { timeoutMs: (seconds + 60) * 1000 })).trim()),
      ),
    );
    const dt = (performance.now() - t0) / 1000;
    if (sent.some((s) => s.errors > 0)) throw new Error(`traffic errors: ${JSON.stringify(sent)}`);
    console.log(`round ${r + 1}: ` + Object.entries(servers).map(([k, rg]) => `${k} ${((100 * (cpuSeconds(rg.pid) - c0[k])) / dt).toFixed(1)}%`).join(", ") + ` (${sent.map((s) => s.calls).join("/")} calls in ${dt.toFixed(1)} s)`);
  }
} finally {
  await Promise.all(Object.values(servers).map((rg) => rg.stop()));
}
