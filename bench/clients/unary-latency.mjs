// Latency at one call in flight: N sequential unary gRPC calls over one HTTP/2 connection,
// each timed with process.hrtime from request to trailers. Checks every answer's grpc-status.
// Usage: node unary-latency.mjs <port> <path> <body-file> <calls> <warm-up calls>
// Prints {"p50Us", "p99Us", "meanUs", "maxUs", "calls", "errors", "lastStatus"}.
import { connect } from "node:http2";
import { readFileSync } from "node:fs";

const [port, path, bodyFile, callsArg, warmArg] = process.argv.slice(2);
const body = readFileSync(bodyFile);
const calls = Number(callsArg);
const warm = Number(warmArg);
const session = connect(`http://127.0.0.1:${port}`);
await new Promise((resolve, reject) => session.once("connect", resolve).once("error", reject));
const headers = { ":method": "POST", ":path": path, "content-type": "application/grpc", te: "trailers" };

function call() {
  return new Promise((resolve, reject) => {
    const req = session.request(headers);
    let status;
    req.on("response", (h) => {
      if (h["grpc-status"] !== undefined) status = h["grpc-status"]; // trailers-only
    });
    req.on("trailers", (t) => (status = t["grpc-status"]));
    req.on("data", () => {});
    req.on("end", () => resolve(status));
    req.on("error", reject);
    req.end(body);
  });
}

let errors = 0;
let lastStatus;
for (let i = 0; i < warm; i++) if ((lastStatus = await call()) !== "0") errors++;
const times = new Float64Array(calls);
for (let i = 0; i < calls; i++) {
  const t0 = process.hrtime.bigint();
  const s = await call();
  times[i] = Number(process.hrtime.bigint() - t0) / 1000;
  if (s !== "0") {
    errors++;
    lastStatus = s;
  }
}
session.close();
times.sort();
const q = (p) => times[Math.min(calls - 1, Math.ceil(p * calls) - 1)];
const mean = times.reduce((a, b) => a + b, 0) / calls;
process.stdout.write(JSON.stringify({ p50Us: q(0.5), p99Us: q(0.99), meanUs: mean, maxUs: times[calls - 1], calls, errors, lastStatus }) + "\n");
