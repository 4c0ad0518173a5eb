// Target 5: WatchHealth fan-out — 1,000 subscribers over 100 rollouts evaluated every second;
// delay from evaluation to delivery, and the server's RSS.
import { join } from "node:path";
import { createInterface } from "node:readline";
import { createRollout, rollgateCommand, startRollgate } from "../lib/rollgate.mjs";
import { benchDir, commandText, cpuSeconds, rssBytes, spawnPinned, CLIENT_CORE, exited, sleep } from "../lib/util.mjs";

export const ROLLOUTS = 100;
export const SUBSCRIBERS = 1000;
const CONNECTIONS = 10;

/** Runs the fan-out for `seconds` cut into `rounds` periods. */
export async function watchCase({ seconds, rounds, log }) {
  const rg = await startRollgate({});
  try {
    for (let i = 0; i < ROLLOUTS; i++) await createRollout(rg.port, `w-${i}`, { interval: "1s", window: "30s" });
    await sleep(1500);
    const rssBefore = rssBytes(rg.pid);
    const args = [join(benchDir, "clients", "watch-health.mjs"), rg.port, "w-", ROLLOUTS, SUBSCRIBERS, CONNECTIONS, seconds, rounds].map(String);
    const child = spawnPinned(CLIENT_CORE, process.execPath, args);
    let err = "";
    child.stderr.setEncoding("utf8").on("data", (s) => (err += s));
    let result;
    let rssWith = [];
    let cpu0;
    let t0;
    let cpuShare;
    const lines = createInterface({ input: child.stdout });
    lines.on("line", (line) => {
      const m = JSON.parse(line);
      if (m.event === "subscribed") {
        cpu0 = cpuSeconds(rg.pid);
        t0 = performance.now();
        // RSS while every subscriber is live, sampled through the run.
        const timer = setInterval(() => {
          try {
            rssWith.push(rssBytes(rg.pid));
          } catch {
            clearInterval(timer);
          }
        }, 1000);
        child.once("exit", () => clearInterval(timer));
      } else if (m.segments !== undefined) {
        cpuShare = (cpuSeconds(rg.pid) - cpu0) / ((performance.now() - t0) / 1000);
        result = m;
      }
    });
    const code = await exited(child);
    if (code !== 0 || result === undefined) throw new Error(`watch client exited ${code}: ${err}`);
    if (result.subscribed < SUBSCRIBERS || result.errors > 0) throw new Error(`watch: ${result.subscribed}/${SUBSCRIBERS} subscribed, ${result.errors} errors`);
    log(`  watch: ${result.all.updates} updates, p50 ${result.all.p50Ms.toFixed(1)} ms, p99 ${result.all.p99Ms.toFixed(1)} ms, max ${result.all.maxMs.toFixed(1)} ms`);
    const commands = [
      rollgateCommand({}),
      `# ${ROLLOUTS} rollouts w-0..w-${ROLLOUTS - 1}: 2 gates, interval 1s, window 30s`,
      commandText(CLIENT_CORE, "node", ["bench/clients/watch-health.mjs", "<port>", "w-", ROLLOUTS, SUBSCRIBERS, CONNECTIONS, seconds, rounds].map(String)),
    ];
    return { ...result, rssBefore, rssWith: Math.max(...rssWith), cpuShare, connections: CONNECTIONS, commands };
  } finally {
    await rg.stop();
  }
}
