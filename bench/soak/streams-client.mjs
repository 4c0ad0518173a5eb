// WatchHealth streams under pressure (issue 16, point 5): one group of `streams` WatchHealth
// streams over `connections` HTTP/2 connections, subscriber i watching `<prefix><i mod rollouts>`.
//   mode "read":   every message is read; for each one after the first (the current health),
//                  delay = arrival - health.evaluated_at (same machine, same clock), in ms.
//   mode "noread": nothing is ever read (no 'data' listener, the streams stay paused), so their
//                  HTTP/2 flow-control windows fill up and the server's writes back up.
// The "vanish" group is a "read" group whose process the suite stops (SIGSTOP: the kernel still
// holds its sockets open, nothing answers) and later kills.
// Prints {"event":"subscribed"} once every stream has its first message (or, for "noread", its
// response headers), then on SIGUSR2 (and at SIGTERM, with "final": true) a JSON line of
// {messages, errors, closed, open, delays: {n, p50Ms, p99Ms, maxMs}} since the previous one.
// Usage: node streams-client.mjs '<json {port, prefix, rollouts, streams, connections, mode}>'
import { connect } from "node:http2";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { HealthUpdateSchema, WatchHealthRequestSchema } from "../../dist/gen/rollgate/v1/decision_service_pb.js";

const o = JSON.parse(process.argv[2]);
const nowMs = () => performance.timeOrigin + performance.now();
const sessions = await Promise.all(
  Array.from({ length: o.connections }, () => {
    const s = connect(`http://127.0.0.1:${o.port}`);
    s.on("error", () => undefined);
    return new Promise((resolve, reject) => s.once("connect", () => resolve(s)).once("error", reject));
  }),
);

let ready = 0;
let messages = 0;
let errors = 0;
let closed = 0;
let delays = [];
const frame = (bytes) => {
  const f = Buffer.alloc(5 + bytes.length);
  f.writeUInt32BE(bytes.length, 1);
  f.set(bytes, 5);
  return f;
};

for (let i = 0; i < o.streams; i++) {
  const req = sessions[i % o.connections].request({ ":method": "POST", ":path": "/rollgate.v1.DecisionService/WatchHealth", "content-type": "application/grpc", te: "trailers" });
  req.end(frame(toBinary(WatchHealthRequestSchema, create(WatchHealthRequestSchema, { rollout: `${o.prefix}${i % o.rollouts}` }))));
  req.on("error", () => errors++);
  req.on("close", () => closed++);
  if (o.mode === "noread") {
    req.once("response", () => ready++);
    req.pause();
    continue;
  }
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
      messages++;
      if (first) {
        first = false;
        ready++;
        continue;
      }
      const at = msg.health?.evaluatedAt;
      if (at !== undefined) delays.push(arrived - (Number(at.seconds) * 1000 + at.nanos / 1e6));
    }
  });
}

const q = (sorted, p) => (sorted.length === 0 ? null : sorted[Math.min(sorted.length - 1, Math.ceil(p * sorted.length) - 1)]);
function report(final) {
  const d = delays.sort((a, b) => a - b);
  delays = [];
  process.stdout.write(`${JSON.stringify({ mode: o.mode, final, messages, errors, closed, open: o.streams - closed, delays: { n: d.length, p50Ms: q(d, 0.5), p99Ms: q(d, 0.99), maxMs: d.at(-1) ?? null } })}\n`);
}
process.on("SIGUSR2", () => report(false));
process.on("SIGTERM", () => {
  report(true);
  for (const s of sessions) s.destroy();
  process.exit(0);
});
while (ready < o.streams) await new Promise((r) => setTimeout(r, 50));
process.stdout.write(`${JSON.stringify({ event: "subscribed", ready })}\n`);
