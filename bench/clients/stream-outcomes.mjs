// StreamOutcomes load: `streams` client-streaming gRPC calls over one HTTP/2 connection, each
// writing the same pre-encoded StreamOutcomesRequest frame as fast as flow control lets it for
// `seconds`, then half-closing and reading the StreamOutcomesResponse.
// Usage: node stream-outcomes.mjs <port> <body-file> <outcomes per message> <streams> <seconds>
// Prints {"accepted", "ignored", "batches", "seconds", "outcomesPerSec", "status"}.
import { connect } from "node:http2";
import { readFileSync } from "node:fs";
import { fromBinary } from "@bufbuild/protobuf";
import { StreamOutcomesResponseSchema } from "../../dist/gen/rollgate/v1/decision_service_pb.js";

const [port, bodyFile, perMsgArg, streamsArg, secondsArg] = process.argv.slice(2);
const frame = readFileSync(bodyFile);
const streams = Number(streamsArg);
const seconds = Number(secondsArg);
const session = connect(`http://127.0.0.1:${port}`);
await new Promise((resolve, reject) => session.once("connect", resolve).once("error", reject));
const headers = {
  ":method": "POST",
  ":path": "/rollgate.v1.DecisionService/StreamOutcomes",
  "content-type": "application/grpc",
  te: "trailers",
};

const t0 = process.hrtime.bigint();
const deadline = Date.now() + seconds * 1000;
let sent = 0;
function one() {
  return new Promise((resolve, reject) => {
    const req = session.request(headers);
    const chunks = [];
    let status;
    req.on("response", (h) => h["grpc-status"] !== undefined && (status = h["grpc-status"]));
    req.on("trailers", (t) => (status = t["grpc-status"]));
    req.on("data", (c) => chunks.push(c));
    req.on("error", reject);
    req.on("end", () => {
      const body = Buffer.concat(chunks);
      if (status !== "0" || body.length < 5) return resolve({ status, accepted: 0n, ignored: 0n, batches: 0n });
      resolve({ status, ...fromBinary(StreamOutcomesResponseSchema, body.subarray(5, 5 + body.readUInt32BE(1))) });
    });
    const pump = () => {
      while (Date.now() < deadline) {
        sent++;
        if (!req.write(frame)) return req.once("drain", pump);
      }
      req.end();
    };
    pump();
  });
}
const results = await Promise.all(Array.from({ length: streams }, one));
const elapsed = Number(process.hrtime.bigint() - t0) / 1e9;
session.close();
const sum = (k) => results.reduce((a, r) => a + Number(r[k]), 0);
const bad = results.find((r) => r.status !== "0");
process.stdout.write(
  JSON.stringify({
    accepted: sum("accepted"),
    ignored: sum("ignored"),
    batches: sum("batches"),
    sentMessages: sent,
    seconds: elapsed,
    outcomesPerSec: sum("accepted") / elapsed,
    status: bad === undefined ? "0" : bad.status,
  }) + "\n",
);
