// Control-plane mutations: SetWeight on one rollout over Connect (binary protobuf, HTTP/1.1),
// `concurrency` callers in a loop for `seconds`, a different weight each time so that every call
// really changes the rollout (a committed, audited, synchronous FULL change).
// Usage: node set-weight.mjs <port> <rollout> <concurrency> <seconds>
// Prints {"perSec", "calls", "errors", "seconds"}.
const [port, rollout, concArg, secondsArg] = process.argv.slice(2);
const url = `http://127.0.0.1:${port}/rollgate.v1.RolloutService/SetWeight`;
const end = performance.now() + Number(secondsArg) * 1000;
let calls = 0;
let errors = 0;
let lastError;
let n = 0;
const t0 = performance.now();
await Promise.all(
  Array.from({ length: Number(concArg) }, async () => {
    while (performance.now() < end) {
      const weightBp = 600 + (n++ % 1000); // each call a different weight from the one before
      const res = await fetch(url, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ name: rollout, weightBp, reason: "bench" }),
      });
      await res.arrayBuffer();
      calls++;
      if (res.status !== 200) {
        errors++;
        lastError = res.status;
      }
    }
  }),
);
const seconds = (performance.now() - t0) / 1000;
process.stdout.write(JSON.stringify({ perSec: calls / seconds, calls, errors, lastError, seconds }) + "\n");
