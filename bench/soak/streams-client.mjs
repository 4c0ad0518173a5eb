// WatchHealth streams under pressure (issue 16, point 5): one group of `streams` WatchHealth
// streams over `connections` HTTP/2 connections, subscriber i watching `<prefix><i mod rollouts>`.
//   mode "read":   every message is read; for each one after the first (the current health),
//                  delay = arrival - health.evaluated_at, in ms: arrival is Date.now() when the
//                  message's 'data' event runs, evaluated_at the server's clock (Date.now() too,
//                  same machine) when the evaluator judged that rollout, so the delay
//                  covers its evaluation, fan-out, both HTTP/2 stacks and this process's own
//                  queueing. Only seq and evaluated_at are decoded, by hand (a full protobuf-es
//                  decode per message made this process, not the server, the bottleneck). A seq
//                  that is not the previous one + 1 counts as a gap (there must be none: seq
//                  numbers what the stream sends). An update the server skipped (the stream was
//                  behind, so it got only the latest health) shows as evaluated_at advancing by
//                  two intervals or more: counted as `skipped` (an estimate: the evaluator ticks
//                  every 250 ms, so a late round can look like one).
//   mode "noread": nothing is ever read (no 'data' listener, the streams stay paused), so their
//                  HTTP/2 flow-control windows fill up and the server's writes back up.
// The "vanish" group is a "read" group whose process the suite stops (SIGSTOP: the kernel still
// holds its sockets open, nothing answers) and later kills.
// Prints {"event":"subscribed"} once every stream has its first message (or, for "noread", its
// response headers), then on SIGUSR2 (and at SIGTERM, with "final": true) a JSON line of
// {messages, gaps, skipped, errors, closed, open, delays: {n, p50Ms, p99Ms, maxMs}, lag: {p99Ms, maxMs}}:
// the delays and this process's own event-loop delay since
// the previous line, the rest totals.
// Usage: node streams-client.mjs '<json {port, prefix, rollouts, streams, connections, mode, intervalMs}>'
import { connect } from "node:http2";
import { monitorEventLoopDelay } from "node:perf_hooks";
import { create, toBinary } from "@bufbuild/protobuf";
import { WatchHealthRequestSchema } from "../../dist/gen/rollgate/v1/decision_service_pb.js";

const o = JSON.parse(process.argv[2]);
const sessions = await Promise.all(
  Array.from({ length: o.connections }, () => {
    const s = connect(`http://127.0.0.1:${o.port}`);
    s.on("error", () => undefined);
    return new Promise((resolve, reject) => s.once("connect", () => resolve(s)).once("error", reject));
  }),
);

let ready = 0;
let messages = 0;
let gaps = 0;
let skipped = 0;
const intervalMs = o.intervalMs ?? 1000;
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
  let seq = 0;
  let lastAt;
  req.on("data", (chunk) => {
    const arrived = Date.now();
    buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk]);
    let at = 0;
    while (buf.length - at >= 5) {
      const len = buf.readUInt32BE(at + 1);
      if (buf.length - at < 5 + len) break;
      const m = readUpdate(buf, at + 5, at + 5 + len);
      at += 5 + len;
      messages++;
      if (m.seq !== seq + 1) gaps++;
      seq = m.seq;
      if (seq === 1) {
        ready++;
        continue;
      }
      if (m.evaluatedAtMs === undefined) continue;
      delays.push(arrived - m.evaluatedAtMs);
      if (lastAt !== undefined) skipped += Math.max(0, Math.floor((m.evaluatedAtMs - lastAt) / intervalMs + 0.25) - 1);
      lastAt = m.evaluatedAtMs;
    }
    buf = at === buf.length ? Buffer.alloc(0) : buf.subarray(at);
  });
}

/** Reads a varint at `pos` (values below 2^53); returns [value, next position]. */
function varint(b, pos) {
  let v = 0;
  let mul = 1;
  for (;;) {
    const x = b[pos++];
    v += (x & 0x7f) * mul;
    if (x < 0x80) return [v, pos];
    mul *= 128;
  }
}

/** Returns the position after the field whose tag's wire type is `wt`, its value starting at `pos`. */
function skip(b, pos, wt) {
  if (wt === 0) return varint(b, pos)[1];
  if (wt === 1) return pos + 8;
  if (wt === 5) return pos + 4;
  if (wt === 2) {
    const [len, p] = varint(b, pos);
    return p + len;
  }
  throw new Error(`unexpected wire type ${wt}`);
}

/**
 * Decodes what the suite needs of a HealthUpdate in b[pos, end): seq (field 1) and
 * health.evaluated_at (HealthUpdate field 2, RolloutHealth field 13, a Timestamp) in ms.
 */
function readUpdate(b, pos, end) {
  let seq = 0;
  let evaluatedAtMs;
  while (pos < end) {
    const [tag, p] = varint(b, pos);
    if (tag === 1 << 3) [seq, pos] = varint(b, p);
    else if (tag === ((2 << 3) | 2)) {
      const [len, q] = varint(b, p);
      evaluatedAtMs = evaluatedAtOf(b, q, q + len);
      pos = q + len;
    } else pos = skip(b, p, tag & 7);
  }
  return { seq, evaluatedAtMs };
}

/** Returns RolloutHealth.evaluated_at in ms from the health in b[pos, end), or undefined. */
function evaluatedAtOf(b, pos, end) {
  while (pos < end) {
    const [tag, p] = varint(b, pos);
    if (tag !== ((13 << 3) | 2)) {
      pos = skip(b, p, tag & 7);
      continue;
    }
    const [len, q] = varint(b, p);
    let seconds = 0;
    let nanos = 0;
    for (let i = q; i < q + len; ) {
      const [t, r] = varint(b, i);
      if (t === 1 << 3) [seconds, i] = varint(b, r);
      else if (t === 2 << 3) [nanos, i] = varint(b, r);
      else i = skip(b, r, t & 7);
    }
    return seconds * 1000 + nanos / 1e6;
  }
  return undefined;
}

const q = (sorted, p) => (sorted.length === 0 ? null : sorted[Math.min(sorted.length - 1, Math.ceil(p * sorted.length) - 1)]);
// This process's own event-loop delay between two reports: a delay the readers measure that
// this shows too was spent here, not in the server or on the wire.
const lag = monitorEventLoopDelay({ resolution: 10 });
lag.enable();
function report(final) {
  const d = delays.sort((a, b) => a - b);
  delays = [];
  const ownLag = { p99Ms: lag.percentile(99) / 1e6, maxMs: lag.max / 1e6 };
  lag.reset();
  process.stdout.write(`${JSON.stringify({ mode: o.mode, final, messages, gaps, skipped, errors, closed, open: o.streams - closed, delays: { n: d.length, p50Ms: q(d, 0.5), p99Ms: q(d, 0.99), maxMs: d.at(-1) ?? null }, lag: ownLag })}\n`);
}
process.on("SIGUSR2", () => report(false));
process.on("SIGTERM", () => {
  report(true);
  for (const s of sessions) s.destroy();
  process.exit(0);
});
while (ready < o.streams) await new Promise((r) => setTimeout(r, 50));
process.stdout.write(`${JSON.stringify({ event: "subscribed", ready })}\n`);
