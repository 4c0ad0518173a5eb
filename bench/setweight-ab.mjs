// SetWeight over HTTP (Connect JSON, 8 Go callers; case 7c without the scale case's 10,000
// rollouts) for this build and another beside it, in interleaved rounds, each round also
// measuring the bare SQLite commit floor: changes/s, their ratio to the floor of the same
// round, and server CPU per change (/proc/<pid>/stat), the steadier figure on a shared machine.
// Usage: node bench/setweight-ab.mjs <other build's dist/> [rounds=3] [seconds=4] [callers=8]
// Prints one line per run and a JSON summary (medians) at the end.
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { createRollout, startRollgate } from "./lib/rollgate.mjs";
import { benchDir, cliPath, cpuSeconds, runPinned, sleep, CLIENT_CORE, SERVER_CORE } from "./lib/util.mjs";

const [otherDist, roundsArg = "3", secondsArg = "4", callersArg = "8"] = process.argv.slice(2);
if (otherDist === undefined) throw new Error("usage: node bench/setweight-ab.mjs <other build's dist/> [rounds] [seconds] [callers]");
const builds = { this: cliPath, other: join(resolve(otherDist), "src", "cli", "main.js") };
const rounds = Number(roundsArg);
const seconds = Number(secondsArg);
const callers = Number(callersArg);

const tmp = mkdtempSync(join(tmpdir(), "rollgate-setweight-ab-"));
const client = join(tmp, "set-weight");
execFileSync("go", ["build", "-o", client, "."], { cwd: join(benchDir, "clients", "set-weight-go"), stdio: ["ignore", "ignore", "inherit"] });
const floorDb = join(tmp, "floor.db");

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const out = { this: { perSec: [], cpuUs: [], ratio: [] }, other: { perSec: [], cpuUs: [], ratio: [] }, floor: [], load: [] };
try {
  for (let r = 0; r < rounds; r++) {
    const order = r % 2 === 0 ? ["this", "other"] : ["other", "this"];
    const got = {};
    for (const b of order) {
      const rg = await startRollgate({ cli: builds[b] });
      try {
        await createRollout(rg.port, "w");
        // Warm-up: the JIT and the connection pool, not measured.
        await runPinned(CLIENT_CORE, client, [rg.port, "w", callers, 1].map(String));
        await sleep(200);
        const c0 = cpuSeconds(rg.pid);
        const res = JSON.parse((await runPinned(CLIENT_CORE, client, [rg.port, "w", callers, seconds].map(String))).trim());
        const cpu = cpuSeconds(rg.pid) - c0;
        if (res.errors > 0) throw new Error(`${b}: ${res.errors} calls failed: ${res.lastError}`);
        got[b] = { perSec: res.perSec, cpuUs: (cpu / res.calls) * 1e6 };
      } finally {
        await rg.stop();
      }
    }
    const f = JSON.parse((await runPinned(SERVER_CORE, process.execPath, [join(benchDir, "clients", "sqlite-floor.mjs"), floorDb, "2"])).trim());
    for (const s of ["", "-wal", "-shm"]) rmSync(floorDb + s, { force: true });
    out.floor.push(f.commitsPerSec);
    out.load.push(loadavg()[0]);
    for (const b of order) {
      out[b].perSec.push(got[b].perSec);
      out[b].cpuUs.push(got[b].cpuUs);
      out[b].ratio.push(got[b].perSec / f.commitsPerSec);
    }
    const line = (b) => `${b} ${Math.round(got[b].perSec)}/s ${Math.round(got[b].cpuUs)} µs/change ${(got[b].perSec / f.commitsPerSec).toFixed(2)}×`;
    console.log(`round ${r + 1}/${rounds}: ${line("this")}; ${line("other")}; floor ${Math.round(f.commitsPerSec)} commits/s; load ${loadavg()[0].toFixed(1)}`);
  }
} finally {
  rmSync(tmp, { recursive: true, force: true });
}
const summary = (b) => ({ perSec: Math.round(median(out[b].perSec)), cpuUsPerChange: Math.round(median(out[b].cpuUs)), ratioToFloor: +median(out[b].ratio).toFixed(2) });
console.log(JSON.stringify({ callers, this: summary("this"), other: summary("other"), floor: Math.round(median(out.floor)), load: out.load.map((l) => +l.toFixed(1)) }));
