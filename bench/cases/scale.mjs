// Targets 6 and 7: 10,000 rollouts evaluated every 10 s — server CPU idle and under light
// traffic, memory per rollout idle and after traffic, the in-process worst-case bound of a
// rollout's windows — and control-plane mutations/s with synchronous FULL commits (the
// creates themselves, SetWeight on one rollout) beside the bare SQLite commit floor.
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { createRollout, rollgateCommand, startRollgate } from "../lib/rollgate.mjs";
import { benchDir, commandText, cpuSeconds, rssBytes, runClient, runPinned, sleep, CLIENT_CORE, SERVER_CORE } from "../lib/util.mjs";

export const SCALE_ROLLOUTS = 10_000;
const CREATE_CONCURRENCY = 8;

/** Asks the server's probe (bench/lib/probe.mjs) for memory after a full GC. */
function probe(rg) {
  return new Promise((resolve, reject) => {
    const lines = createInterface({ input: rg.child.stdout });
    const timer = setTimeout(() => reject(new Error("probe: no answer")), 10_000);
    lines.on("line", (line) => {
      if (!line.startsWith('{"probe"')) return;
      clearTimeout(timer);
      lines.close();
      // close() pauses the stream: keep reading the server's log, or its writes stall once the pipe is full.
      rg.child.stdout.resume();
      resolve(JSON.parse(line).probe);
    });
    rg.child.kill("SIGUSR2");
  });
}

/** Returns the server's CPU share of one core over `seconds`, cut into `parts` periods. */
async function cpuShare(pid, seconds, parts) {
  const shares = [];
  for (let i = 0; i < parts; i++) {
    const c0 = cpuSeconds(pid);
    const t0 = performance.now();
    await sleep((seconds * 1000) / parts);
    shares.push((cpuSeconds(pid) - c0) / ((performance.now() - t0) / 1000));
  }
  return shares;
}

/**
 * Runs the scale case: `idleSeconds` of idle measurement and `trafficSeconds` of light
 * traffic, each cut into `rounds` periods (each at least one 10 s evaluation interval when
 * the durations allow).
 */
export async function scaleCase({ idleSeconds, trafficSeconds, rounds, trafficRate, log }) {
  const rg = await startRollgate({ probe: true });
  try {
    const mem0 = await probe(rg);
    // Create the rollouts over the API: every one is a durable, audited commit.
    let next = 0;
    let created = 0;
    const t0 = performance.now();
    const c0 = cpuSeconds(rg.pid);
    // Creates/s over each third of the 10,000 (three figures for min/median/max).
    const chunkTimes = [];
    const bounds = [1, 2, 3].map((k) => Math.round((SCALE_ROLLOUTS * k) / 3));
    let chunkStart = performance.now();
    let chunkFrom = 0;
    await Promise.all(
      Array.from({ length: CREATE_CONCURRENCY }, async () => {
        while (next < SCALE_ROLLOUTS) {
          const i = next++;
          await createRollout(rg.port, `s-${i}`, { interval: "10s", window: "300s" });
          created++;
          if (created === bounds[chunkTimes.length]) {
            chunkTimes.push((created - chunkFrom) / ((performance.now() - chunkStart) / 1000));
            chunkStart = performance.now();
            chunkFrom = created;
          }
        }
      }),
    );
    const createSeconds = (performance.now() - t0) / 1000;
    const createCpu = (cpuSeconds(rg.pid) - c0) / createSeconds;
    log(`  scale: ${SCALE_ROLLOUTS} rollouts created in ${createSeconds.toFixed(1)} s (${Math.round(SCALE_ROLLOUTS / createSeconds)}/s)`);
    // From the last create on, each rollout is evaluated once in every 10 s: CPU is steady.
    await sleep(2000);
    const idle = await cpuShare(rg.pid, idleSeconds, rounds);
    log(`  scale: idle CPU ${idle.map((s) => `${(s * 100).toFixed(1)}%`).join(", ")} of one core`);
    // Memory idle, once every rollout has been evaluated (and holds its evaluator state).
    const mem1 = await probe(rg);
    const rss1 = rssBytes(rg.pid);

    // Light traffic: paced RecordOutcome calls round robin over every rollout, latencies spread
    // over the sketch's whole range; CPU measured meanwhile.
    const perCall = 50;
    const args = [join(benchDir, "clients", "spread-outcomes.mjs"), rg.port, "s-", SCALE_ROLLOUTS, perCall, trafficRate, trafficSeconds].map(String);
    const traffic = runPinned(CLIENT_CORE, process.execPath, args, { timeoutMs: (trafficSeconds + 60) * 1000 });
    await sleep(200);
    const busy = await cpuShare(rg.pid, trafficSeconds - 0.5, rounds);
    const sent = JSON.parse((await traffic).trim().split("\n").at(-1));
    if (sent.errors > 0) throw new Error(`traffic: ${sent.errors} calls failed (grpc-status ${sent.lastStatus})`);
    log(`  scale: with ${trafficRate} calls/s × ${perCall} outcomes: CPU ${busy.map((s) => `${(s * 100).toFixed(1)}%`).join(", ")}`);
    await sleep(1500);
    const mem2 = await probe(rg);
    const rss2 = rssBytes(rg.pid);

    // Durability: SetWeight on one rollout, one caller and eight, beside the SQLite floor. The
    // callers are goroutines of a Go program (bench/clients/set-weight-go) when Go is installed:
    // eight Node `fetch` loops on one loaded core were the limit, not the server.
    const setWeight = { 1: [], 8: [] };
    const setWeightCpu = { 1: [], 8: [] };
    const floor = [];
    const floorDb = join(tmpdir(), `rollgate-bench-floor-${process.pid}.db`);
    const goClient = buildSetWeightClient(log);
    for (let round = 0; round < rounds; round++) {
      for (const c of [1, 8]) {
        const c0 = cpuSeconds(rg.pid);
        const r =
          goClient === undefined
            ? await runClient("set-weight.mjs", [rg.port, "s-0", c, 2])
            : JSON.parse((await runPinned(CLIENT_CORE, goClient.bin, [rg.port, "s-0", c, 2].map(String))).trim().split("\n").at(-1));
        if (r.errors > 0) throw new Error(`SetWeight: ${r.errors} calls failed (${r.lastError})`);
        setWeight[c].push(r.perSec);
        setWeightCpu[c].push((cpuSeconds(rg.pid) - c0) / r.calls);
      }
      const f = JSON.parse((await runPinned(SERVER_CORE, process.execPath, [join(benchDir, "clients", "sqlite-floor.mjs"), floorDb, "2"])).trim());
      floor.push(f.commitsPerSec);
      const us = (c) => Math.round(setWeightCpu[c].at(-1) * 1e6);
      log(`  durability round ${round + 1}/${rounds}: SetWeight ${Math.round(setWeight[1].at(-1))}/s (1 caller, ${us(1)} µs server CPU each), ${Math.round(setWeight[8].at(-1))}/s (8, ${us(8)} µs), SQLite floor ${Math.round(floor.at(-1))} commits/s`);
    }
    for (const suffix of ["", "-wal", "-shm"]) rmSync(floorDb + suffix, { force: true });
    if (goClient !== undefined) rmSync(goClient.dir, { recursive: true, force: true });

    const commands = [
      rollgateCommand({ probe: true }) + "   # the probe prints memoryUsage() after gc() on SIGUSR2",
      `# ${SCALE_ROLLOUTS} rollouts s-0..s-${SCALE_ROLLOUTS - 1} created over Connect JSON by ${CREATE_CONCURRENCY} concurrent callers: 2 gates, interval 10s, window 300s`,
      commandText(CLIENT_CORE, "node", ["bench/clients/spread-outcomes.mjs", "<port>", "s-", SCALE_ROLLOUTS, perCall, trafficRate, trafficSeconds].map(String)),
      goClient === undefined
        ? commandText(CLIENT_CORE, "node", ["bench/clients/set-weight.mjs", "<port>", "s-0", "1", "2"]) + "   # and 8 callers (Go not installed)"
        : "(cd bench/clients/set-weight-go && go build -o <tmp>/set-weight .); " + commandText(CLIENT_CORE, "<tmp>/set-weight", ["<port>", "s-0", "1", "2"]) + "   # and 8 callers",
      commandText(SERVER_CORE, "node", ["bench/clients/sqlite-floor.mjs", "<tmp>/floor.db", "2"]),
    ];
    return {
      createsPerSec: SCALE_ROLLOUTS / createSeconds,
      createChunks: chunkTimes,
      createCpu,
      createSeconds,
      mem0,
      mem1,
      mem2,
      rss1,
      rss2,
      idle,
      busy,
      traffic: { ...sent, perCall, rate: trafficRate },
      setWeight,
      setWeightCpu,
      setWeightClient: goClient === undefined ? "node fetch" : "Go net/http",
      floor,
      commands,
    };
  } finally {
    await rg.stop();
  }
}

/** Builds bench/clients/set-weight-go into a temporary directory; undefined (and a note) when Go is missing. */
function buildSetWeightClient(log) {
  const dir = mkdtempSync(join(tmpdir(), "rollgate-bench-go-"));
  const bin = join(dir, "set-weight");
  try {
    execFileSync("go", ["build", "-o", bin, "."], { cwd: join(benchDir, "clients", "set-weight-go"), stdio: ["ignore", "ignore", "pipe"] });
    return { dir, bin };
  } catch (e) {
    rmSync(dir, { recursive: true, force: true });
    log(`  durability: no Go client (${String(e.message).split("\n")[0]}); SetWeight from Node fetch loops instead`);
    return undefined;
  }
}

/** The in-process worst-case bound of one rollout's windows (latencies only, and with metrics). */
export async function windowBoundCase({ log }) {
  const out = {};
  for (const mode of ["latency", "metrics"]) {
    const res = JSON.parse(
      (await runPinned(SERVER_CORE, process.execPath, ["--expose-gc", join(benchDir, "clients", "window-memory.mjs"), "20", mode])).trim().split("\n").at(-1),
    );
    out[mode] = res;
    log(`  window bound (${mode}): ${res.fullBytesPerRollout.map((b) => `${Math.round(b / 1024)} KiB`).join(" → ")} per rollout over ${res.fullBytesPerRollout.length} passes`);
  }
  out.command = commandText(SERVER_CORE, "node", ["--expose-gc", "bench/clients/window-memory.mjs", "20", "latency|metrics"]);
  return out;
}
