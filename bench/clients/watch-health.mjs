// WatchHealth fan-out: `subscribers` server-streaming WatchHealth calls spread over
// `connections` HTTP/2 connections, subscriber i watching rollout `<prefix><i mod rollouts>`.
// For every update after the first (the current health), delivery delay = wall-clock time of
// arrival - health.evaluated_at (same machine, same clock). The run is cut into `segments`
// equal periods, each summarised on its own.
// Usage: node watch-health.mjs <port> <prefix> <rollouts> <subscribers> <connections> <seconds> <segments>
// Prints {"segments": [{"updates", "p50Ms", "p99Ms", "maxMs"}], "subscribed", "errors", ...}.
import { connect } from "node:http2";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { HealthUpdateSchema, WatchHealthRequestSchema } from "../../dist/gen/rollgate/v1/decision_service_pb.js";

const [port, prefix, rolloutsArg, subsArg, connsArg, secondsArg, segmentsArg] = process.argv.slice(2);
const rollouts = Number(rolloutsArg);
const subscribers = Number(subsArg);
const connections = Number(connsArg);
const seconds = Number(secondsArg);
const segments = Number(segmentsArg);
const nowMs = () => performance.timeOrigin + performance.now();

const sessions = await Promise.all(
  Array.from({ length: connections }, () => {
    const s = connect(`http://127.0.0.1:${port}`);
    s.on("error", () => {});
    return new Promise((resolve, reject) => s.once("connect", () => resolve(s)).once("error", reject));
  }),
);

let subscribed = 0;
let errors = 0;
let firstSeen = 0;
let measuring = false;
let start = 0;
const delays = Array.from({ length: segments }, () => []);
const streams = [];

function frame(bytes) {
  const f = Buffer.allocUnsafe(5 + bytes.length);
  f[0] = 0;
  f.writeUInt32BE(bytes.length, 1);
  f.set(bytes, 5);
  return f;
}

for (let i = 0; i < subscribers; i++) {
  const session = sessions[i % connections];
  const req = session.request({ ":method": "POST", ":path": "/rollgate.v1.DecisionService/WatchHealth", "content-type": "application/grpc", te: "trailers" });
  streams.push(req);
  req.end(frame(toBinary(WatchHealthRequestSchema, create(WatchHealthRequestSchema, { rollout: `${prefix}${i % rollouts}` }))));
  let buf = Buffer.alloc(0);
  let first = true;
  req.on("data", (chunk) => {
    const arrived = nowMs();
    buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk]);
    while (buf.length >= 5) {
      const len = buf.readUInt32BE(1);
      if (buf.length < 5 + len) break;
      const msg = fromBinary(HealthUpdateSchema, buf.subarray(5, 5 + len));
      buf = buf.subarray(5 + len);
      if (first) {
        first = false;
        subscribed++;
        firstSeen++;
        continue;
      }
      if (!measuring) continue;
      const at = msg.health?.evaluatedAt;
      if (at === undefined) continue;
      const evaluatedMs = Number(at.seconds) * 1000 + at.nanos / 1e6;
      if (evaluatedMs < start) continue; // evaluated before the measurement began
      const seg = Math.min(segments - 1, Math.floor(((arrived - start) / (seconds * 1000)) * segments));
      delays[seg].push(arrived - evaluatedMs);
    }
  });
  req.on("error", () => errors++);
  req.on("trailers", (t) => t["grpc-status"] !== "0" && t["grpc-status"] !== "1" && errors++);
}

// Every subscriber has its current health before the clock starts.
const waitUntil = Date.now() + 30_000;
while (subscribed < subscribers && Date.now() < waitUntil) await new Promise((r) => setTimeout(r, 20));
process.stderr.write(JSON.stringify({ subscribed }) + "\n");
// Tell the orchestrator (which reads the server's RSS now) that everyone is subscribed.
process.stdout.write(JSON.stringify({ event: "subscribed", subscribed }) + "\n");
start = nowMs();
measuring = true;
await new Promise((r) => setTimeout(r, seconds * 1000));
measuring = false;
for (const s of streams) s.close();
for (const s of sessions) s.close();

const q = (arr, p) => (arr.length === 0 ? NaN : arr[Math.min(arr.length - 1, Math.ceil(p * arr.length) - 1)]);
const out = delays.map((d) => {
  d.sort((a, b) => a - b);
  return { updates: d.length, p50Ms: q(d, 0.5), p99Ms: q(d, 0.99), maxMs: d.at(-1) ?? NaN };
});
const all = delays.flat().sort((a, b) => a - b);
process.stdout.write(
  JSON.stringify({ segments: out, all: { updates: all.length, p50Ms: q(all, 0.5), p99Ms: q(all, 0.99), maxMs: all.at(-1) ?? NaN }, subscribed, errors, seconds }) + "\n",
);
process.exit(0);
