// WatchRoutes propagation: `subscribers` WatchRoutes streams (every rollout) over `connections`
// HTTP/2 connections; once each has its reset, one SetWeight every `1000/rate` ms, round robin
// over rollouts <prefix>0..; for every stream and change, delay = arrival - the commit instant
// (the rollout's updated_at in the SetWeight answer: set just before the transaction commits,
// same machine and clock), and arrival - the SetWeight call's start. Cut into `segments` periods.
// 20 untimed changes first warm the path up.
// With <writePort> the SetWeight calls go to that server instead (another replica on the same
// database: propagation across replicas).
// Usage: node watch-routes.mjs <port> <prefix> <rollouts> <subscribers> <connections> <seconds> <segments> <rate> [writePort]
// Prints {"segments": [{"arrivals", "p50Ms", "p99Ms", "maxMs"}], "all": {...}, "fromCall": {...}, "changes", "missing", ...}.
import { connect } from "node:http2";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { WatchRoutesRequestSchema, WatchRoutesResponseSchema } from "../../dist/gen/rollgate/v1/decision_service_pb.js";

const [port, prefix, rolloutsArg, subsArg, connsArg, secondsArg, segmentsArg, rateArg, writePortArg] = process.argv.slice(2);
const writePort = writePortArg ?? port;
const rollouts = Number(rolloutsArg);
const subscribers = Number(subsArg);
const connections = Number(connsArg);
const seconds = Number(secondsArg);
const segments = Number(segmentsArg);
const rate = Number(rateArg);
const nowMs = () => performance.timeOrigin + performance.now();

const sessions = await Promise.all(
  Array.from({ length: connections }, () => {
    const s = connect(`http://127.0.0.1:${port}`);
    s.on("error", () => {});
    return new Promise((resolve, reject) => s.once("connect", () => resolve(s)).once("error", reject));
  }),
);

function frame(bytes) {
  const f = Buffer.allocUnsafe(5 + bytes.length);
  f[0] = 0;
  f.writeUInt32BE(bytes.length, 1);
  f.set(bytes, 5);
  return f;
}

/** change key "rollout:weight" → { commitMs, callMs, segment, seen } */
const changes = new Map();
let ready = 0;
let errors = 0;
let resetRoutes = -1;
const arrivals = Array.from({ length: segments }, () => []);
const fromCall = [];
const streams = [];
/** While measuring: arrival time, message bytes, … */
const received = [];
let measuring = false;
const body = frame(toBinary(WatchRoutesRequestSchema, create(WatchRoutesRequestSchema, {})));
for (let i = 0; i < subscribers; i++) {
  const req = sessions[i % connections].request({ ":method": "POST", ":path": "/rollgate.v1.DecisionService/WatchRoutes", "content-type": "application/grpc", te: "trailers" });
  streams.push(req);
  req.end(body);
  let buf = Buffer.alloc(0);
  req.on("data", (chunk) => {
    const arrived = nowMs();
    buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk]);
    while (buf.length >= 5) {
      const len = buf.readUInt32BE(1);
      if (buf.length < 5 + len) break;
      const bytes = buf.subarray(5, 5 + len);
      buf = buf.subarray(5 + len);
      if (!measuring) {
        const msg = fromBinary(WatchRoutesResponseSchema, bytes);
        if (msg.reset) {
          ready++;
          resetRoutes = msg.routes.length;
        }
        continue;
      }
      // Decoded after the run: the arrival time is all that is taken here.
      received.push(arrived, bytes);
    }
  });
  req.on("error", () => errors++);
  req.on("trailers", (t) => t["grpc-status"] !== "0" && t["grpc-status"] !== "1" && errors++);
}

const waitUntil = Date.now() + 60_000;
while (ready < subscribers && Date.now() < waitUntil) await new Promise((r) => setTimeout(r, 20));
process.stdout.write(JSON.stringify({ event: "subscribed", subscribed: ready, resetRoutes }) + "\n");

/** One SetWeight; its arrivals are timed when `measured`. */
async function change(n, rollout, weightBp, segment, measured) {
  const key = `${rollout}:${weightBp}`;
  const c = { callMs: nowMs(), commitMs: undefined, segment, seen: 0, measured };
  changes.set(key, c);
  const res = await fetch(`http://127.0.0.1:${writePort}/rollgate.v1.RolloutService/SetWeight`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ name: rollout, weightBp }),
  });
  const answer = await res.json();
  if (res.status !== 200) throw new Error(`SetWeight: ${JSON.stringify(answer)}`);
  c.commitMs = Date.parse(answer.rollout.updatedAt);
}

measuring = true;
// Warm-up: 20 changes at the same rate, not timed (the JIT settles on the fan-out path).
for (let n = 0; n < 20; n++) {
  await change(n, `${prefix}${(rollouts - 1 - n) % rollouts}`, 9999 - n, 0, false);
  await new Promise((r) => setTimeout(r, 1000 / rate));
}
const start = nowMs();
const fromUs = Number(process.hrtime.bigint() / 1000n);
let n = 0;
const total = Math.round(seconds * rate);
for (; n < total; n++) {
  const due = start + (n * 1000) / rate;
  const wait = due - nowMs();
  if (wait > 0) await new Promise((r) => setTimeout(r, wait));
  await change(n, `${prefix}${n % rollouts}`, 1 + (n % 9990), Math.min(segments - 1, Math.floor((n / total) * segments)), true);
}
// Let the last changes arrive.
await new Promise((r) => setTimeout(r, 1000));
const toUs = Number(process.hrtime.bigint() / 1000n);
for (let i = 0; i < received.length; i += 2) {
  const arrived = received[i];
  const msg = fromBinary(WatchRoutesResponseSchema, received[i + 1]);
  for (const s of msg.routes) {
    const c = changes.get(`${s.rollout}:${s.weightBp}`);
    if (c === undefined) continue;
    c.seen++;
    if (!c.measured) continue;
    arrivals[c.segment].push(arrived - c.commitMs);
    fromCall.push(arrived - c.callMs);
  }
}
for (const s of streams) s.close();
for (const s of sessions) s.close();

const q = (arr, p) => (arr.length === 0 ? NaN : arr[Math.min(arr.length - 1, Math.ceil(p * arr.length) - 1)]);
const sum = (d) => {
  d.sort((a, b) => a - b);
  return { arrivals: d.length, p50Ms: q(d, 0.5), p99Ms: q(d, 0.99), maxMs: d.at(-1) ?? NaN };
};
const missing = [...changes.values()].filter((c) => c.measured).reduce((m, c) => m + (subscribers - Math.min(c.seen, subscribers)), 0);
process.stdout.write(
  JSON.stringify({ segments: arrivals.map((d) => sum([...d])), all: sum(arrivals.flat()), fromCall: sum(fromCall), changes: n, missing, window: { fromUs, toUs }, subscribed: ready, errors, seconds, rate }) + "\n",
);
process.exit(0);
