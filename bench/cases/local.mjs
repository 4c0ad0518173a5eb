// Local evaluation (issue 11): decisions per second of the TypeScript client's local `route`
// beside its remote `route` and flagd-core's in-process fractional evaluation; memory held by a
// client for 1,000 rollouts; propagation from a SetWeight commit to 1,000 WatchRoutes streams.
import { join } from "node:path";
import { createInterface } from "node:readline";
import { createRollout, rollgateCommand, startRollgate } from "../lib/rollgate.mjs";
import { benchDir, commandText, cpuSeconds, CLIENT_CORE, exited, rssBytes, runPinned, spawnPinned, sleep } from "../lib/util.mjs";

export const MEMORY_ROLLOUTS = 1000;
export const PROPAGATION_ROLLOUTS = 1000;
export const PROPAGATION_STREAMS = 1000;
const CONNECTIONS = 10;

const lastJson = (out) => JSON.parse(out.trim().split("\n").at(-1));

/** Local vs remote vs flagd-core decisions, one client process on the client core. */
export async function localRouteCase({ rounds, calls, remoteSeconds, log }) {
  const rg = await startRollgate({});
  try {
    await createRollout(rg.port, "checkout", { interval: "60s" });
    const args = [join(benchDir, "clients", "local-route.mjs"), rg.port, "checkout", rounds, calls, remoteSeconds].map(String);
    const res = lastJson(await runPinned(CLIENT_CORE, process.execPath, args, { timeoutMs: 300_000 }));
    for (const [k, v] of Object.entries(res.rounds)) log(`  ${k}: ${v.map((x) => `${x.toFixed(0)} ns`).join(", ")} per decision (wall)`);
    for (const [k, v] of Object.entries(res.cpuRounds)) log(`  ${k}: ${v.map((x) => `${x.toFixed(0)} ns`).join(", ")} of CPU per decision`);
    const commands = [rollgateCommand({}), commandText(CLIENT_CORE, "node", ["bench/clients/local-route.mjs", "<port>", "checkout", rounds, calls, remoteSeconds].map(String))];
    return { ...res, commands };
  } finally {
    await rg.stop();
  }
}

/** Heap held by a local-mode client for 1,000 rollouts. */
export async function localMemoryCase({ log }) {
  const rg = await startRollgate({});
  try {
    for (let i = 0; i < MEMORY_ROLLOUTS; i++) await createRollout(rg.port, `m-${i}`, { interval: "60s" });
    const args = ["--expose-gc", join(benchDir, "clients", "local-memory.mjs"), String(rg.port), String(MEMORY_ROLLOUTS), "m-"];
    const res = lastJson(await runPinned(CLIENT_CORE, process.execPath, args, { timeoutMs: 120_000 }));
    log(`  memory: a client with ${res.rollouts} rollouts holds ${(res.clientBytes / 1024).toFixed(0)} KiB of heap (one with 1 rollout ${(res.oneRolloutClientBytes / 1024).toFixed(0)} KiB): ${res.perRolloutBytes.toFixed(0)} B per rollout; process RSS ${(res.rss / 2 ** 20).toFixed(0)} MiB`);
    const commands = [rollgateCommand({}), `# ${MEMORY_ROLLOUTS} rollouts m-0..m-${MEMORY_ROLLOUTS - 1}: 2 gates, 1 feature`, commandText(CLIENT_CORE, "node", ["--expose-gc", "bench/clients/local-memory.mjs", "<port>", String(MEMORY_ROLLOUTS), "m-"])];
    return { ...res, commands };
  } finally {
    await rg.stop();
  }
}

/** SetWeight commit → arrival on 1,000 WatchRoutes streams; server RSS before and with them. */
export async function propagationCase({ seconds, rounds, rate, log }) {
  const rg = await startRollgate({});
  try {
    for (let i = 0; i < PROPAGATION_ROLLOUTS; i++) await createRollout(rg.port, `p-${i}`, { interval: "60s", gates: false });
    await sleep(1500);
    const rssBefore = rssBytes(rg.pid);
    const args = [join(benchDir, "clients", "watch-routes.mjs"), rg.port, "p-", PROPAGATION_ROLLOUTS, PROPAGATION_STREAMS, CONNECTIONS, seconds, rounds, rate].map(String);
    const child = spawnPinned(CLIENT_CORE, process.execPath, args);
    let err = "";
    child.stderr.setEncoding("utf8").on("data", (s) => (err += s));
    let result;
    const rssWith = [];
    let cpu0;
    let t0;
    let cpuShare;
    createInterface({ input: child.stdout }).on("line", (line) => {
      const m = JSON.parse(line);
      if (m.event === "subscribed") {
        cpu0 = cpuSeconds(rg.pid);
        t0 = performance.now();
        const timer = setInterval(() => {
          try {
            rssWith.push(rssBytes(rg.pid));
          } catch {
            clearInterval(timer);
          }
        }, 500);
        child.once("exit", () => clearInterval(timer));
      } else if (m.segments !== undefined) {
        cpuShare = (cpuSeconds(rg.pid) - cpu0) / ((performance.now() - t0) / 1000);
        result = m;
      }
    });
    const code = await exited(child);
    if (code !== 0 || result === undefined) throw new Error(`watch-routes client exited ${code}: ${err}`);
    if (result.subscribed < PROPAGATION_STREAMS || result.errors > 0) throw new Error(`propagation: ${result.subscribed}/${PROPAGATION_STREAMS} subscribed, ${result.errors} errors`);
    log(`  propagation: ${result.changes} changes × ${result.subscribed} streams = ${result.all.arrivals} arrivals (${result.missing} missing), p50 ${result.all.p50Ms.toFixed(1)} ms, p99 ${result.all.p99Ms.toFixed(1)} ms, max ${result.all.maxMs.toFixed(1)} ms; server RSS ${(rssBefore / 2 ** 20).toFixed(0)} → ${(Math.max(...rssWith) / 2 ** 20).toFixed(0)} MiB`);
    const commands = [
      rollgateCommand({}),
      `# ${PROPAGATION_ROLLOUTS} rollouts p-0..p-${PROPAGATION_ROLLOUTS - 1}: no gates, interval 60s`,
      commandText(CLIENT_CORE, "node", ["bench/clients/watch-routes.mjs", "<port>", "p-", PROPAGATION_ROLLOUTS, PROPAGATION_STREAMS, CONNECTIONS, seconds, rounds, rate].map(String)),
    ];
    return { ...result, rssBefore, rssWith: Math.max(...rssWith), cpuShare, connections: CONNECTIONS, commands };
  } finally {
    await rg.stop();
  }
}
