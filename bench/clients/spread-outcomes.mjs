// Traffic over many rollouts: RecordOutcome calls (gRPC, raw HTTP/2) at a fixed rate, round
// robin over rollouts <prefix>0..<prefix>N-1, each call a batch of outcomes whose latencies are
// spread log-uniformly over 1 µs .. 10^8 ms (every bin of the latency sketch can be hit) —
// the traffic that would grow memory if anything per rollout were unbounded.
// Usage: node spread-outcomes.mjs <port> <prefix> <rollouts> <outcomes per call> <calls per sec> <seconds>
// Prints {"calls", "outcomes", "errors", "rolloutsTouched", "seconds"}.
import { connect } from "node:http2";
import { create, toBinary } from "@bufbuild/protobuf";
import { RecordOutcomeRequestSchema } from "../../dist/gen/rollgate/v1/decision_service_pb.js";

const [port, prefix, rolloutsArg, perCallArg, rateArg, secondsArg] = process.argv.slice(2);
const rollouts = Number(rolloutsArg);
const perCall = Number(perCallArg);
const rate = Number(rateArg);
const seconds = Number(secondsArg);

let x = 12345;
const rnd = () => ((x = (Math.imul(x, 1664525) + 1013904223) >>> 0) / 4294967296);
// log10 latency uniform in [-3, 8]: 1 µs .. 10^8 ms.
const outcomes = () =>
  Array.from({ length: perCall }, (_, i) => ({ variant: i % 2 === 0 ? 1 : 2, success: rnd() > 0.01, latencyMs: 10 ** (-3 + 11 * rnd()) }));
function frame(rollout) {
  const bytes = toBinary(RecordOutcomeRequestSchema, create(RecordOutcomeRequestSchema, { rollout, outcomes: outcomes() }));
  const f = Buffer.allocUnsafe(5 + bytes.length);
  f[0] = 0;
  f.writeUInt32BE(bytes.length, 1);
  f.set(bytes, 5);
  return f;
}

const session = connect(`http://127.0.0.1:${port}`);
await new Promise((resolve, reject) => session.once("connect", resolve).once("error", reject));
const headers = { ":method": "POST", ":path": "/rollgate.v1.DecisionService/RecordOutcome", "content-type": "application/grpc", te: "trailers" };
let calls = 0;
let errors = 0;
let inFlight = 0;
let lastStatus;
function call(body) {
  inFlight++;
  return new Promise((resolve) => {
    const req = session.request(headers);
    let status;
    req.on("response", (h) => h["grpc-status"] !== undefined && (status = h["grpc-status"]));
    req.on("trailers", (t) => (status = t["grpc-status"]));
    req.on("data", () => {});
    req.on("error", () => {});
    req.on("close", () => {
      inFlight--;
      calls++;
      if (status !== "0") {
        errors++;
        lastStatus = status;
      }
      resolve();
    });
    req.end(body);
  });
}

const t0 = performance.now();
const total = Math.round(rate * seconds);
const pending = [];
for (let k = 0; k < total; k++) {
  // Paced: call k leaves at t0 + k / rate.
  const due = t0 + (k * 1000) / rate;
  const wait = due - performance.now();
  if (wait > 1) await new Promise((r) => setTimeout(r, wait));
  pending.push(call(frame(`${prefix}${k % rollouts}`)));
  if (pending.length > 1000) await Promise.all(pending.splice(0, 500));
}
await Promise.all(pending);
session.close();
process.stdout.write(
  JSON.stringify({ calls, outcomes: calls * perCall, errors, lastStatus, rolloutsTouched: Math.min(rollouts, total), seconds: (performance.now() - t0) / 1000 }) + "\n",
);
