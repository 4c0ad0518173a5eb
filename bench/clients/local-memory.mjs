// Memory a local-mode client holds for the routing state of 1,000 rollouts. A first client
// (watching one rollout) loads every module and warms the JIT and is kept open; then, heap after
// a full GC is read before and after opening (b) a client watching one rollout and (a) a client
// watching every rollout; (a) is the whole cost of a client with 1,000 rollouts (its connection included),
// (a) − (b) the routing state alone. Run with --expose-gc.
// Usage: node --expose-gc local-memory.mjs <port> <rollouts expected> <prefix>
// Prints {"rollouts", "clientBytes", "oneRolloutClientBytes", "stateBytes", "perRolloutBytes", "rss"}.
import { createLocalRollgateClient } from "../../clients/typescript/dist/index.js";

const [port, expectedArg, prefix] = process.argv.slice(2);
const expected = Number(expectedArg);
const baseUrl = `http://127.0.0.1:${port}`;
const quiet = { warn: () => {} };
const settle = async () => {
  for (let i = 0; i < 6; i++) {
    globalThis.gc();
    await new Promise((r) => setTimeout(r, 50));
  }
  return process.memoryUsage().heapUsed;
};
const open = async (rollouts) => {
  const c = createLocalRollgateClient({ baseUrl, local: { logger: quiet, ...(rollouts === undefined ? {} : { rollouts }) } });
  if (!(await c.ready(30_000))) throw new Error("no state within 30 s");
  const want = rollouts === undefined ? expected : rollouts.length;
  while (c.stats().rollouts < want) await new Promise((r) => setTimeout(r, 50));
  for (let i = 0; i < expected; i++) c.route(`${prefix}${i}`, "user-1");
  return c;
};

const warm = await open([`${prefix}0`]);
const h0 = await settle();
const one = await open([`${prefix}0`]);
const h1 = await settle();
const all = await open(undefined);
const h2 = await settle();
const rollouts = all.stats().rollouts;
const rss = process.memoryUsage().rss;
for (const c of [warm, all, one]) await c.close();
const oneRolloutClientBytes = h1 - h0;
const clientBytes = h2 - h1;
const stateBytes = clientBytes - oneRolloutClientBytes;
process.stdout.write(JSON.stringify({ rollouts, clientBytes, oneRolloutClientBytes, stateBytes, perRolloutBytes: stateBytes / (rollouts - 1), rss }) + "\n");
process.exit(0);
