// The outcome ledger of the chaos suite: RecordOutcome calls to one rollout at a known rate over
// raw HTTP/2, counting what the server acknowledged (accepted), so that what a crash lost can be
// measured against what the window holds after the restart.
import { connect } from "node:http2";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { RecordOutcomeRequestSchema, RecordOutcomeResponseSchema } from "../../dist/gen/rollgate/v1/decision_service_pb.js";
import { Variant } from "../../dist/gen/rollgate/v1/rollout_pb.js";

/**
 * Starts sending `perBatch` stable outcomes to `rollout` every `everyMs`; returns
 * {acked(), sent(), pause(), resume(port), stop()}. Paused, it sends nothing; calls in flight
 * still count when their answer comes.
 */
export function startLedger({ port, rollout, perBatch = 20, everyMs = 20 }) {
  const outcomes = Array.from({ length: perBatch }, (_, i) => ({ variant: Variant.STABLE, success: true, latencyMs: 10 + i }));
  const msg = toBinary(RecordOutcomeRequestSchema, create(RecordOutcomeRequestSchema, { rollout, outcomes }));
  const body = Buffer.alloc(5 + msg.length);
  body.writeUInt32BE(msg.length, 1);
  body.set(msg, 5);
  let acked = 0;
  let sent = 0;
  let failed = 0;
  let paused = false;
  let inflight = 0;
  let session;
  let base = `http://127.0.0.1:${port}`;
  const sessionOf = () => {
    if (session === undefined || session.closed || session.destroyed) {
      session = connect(base);
      session.on("error", () => undefined);
    }
    return session;
  };
  const timer = setInterval(() => {
    if (paused) return;
    let req;
    try {
      req = sessionOf().request({ ":method": "POST", ":path": "/rollgate.v1.DecisionService/RecordOutcome", "content-type": "application/grpc", te: "trailers" });
    } catch {
      failed++;
      return;
    }
    sent += perBatch;
    inflight++;
    const chunks = [];
    let status;
    req.on("data", (c) => chunks.push(c));
    req.on("trailers", (t) => (status = t["grpc-status"]));
    req.on("error", () => undefined);
    req.on("close", () => {
      inflight--;
      const b = Buffer.concat(chunks);
      if (status === "0" && b.length >= 5) acked += fromBinary(RecordOutcomeResponseSchema, b.subarray(5)).accepted;
      else failed++;
    });
    req.end(body);
  }, everyMs);
  return {
    acked: () => acked,
    sent: () => sent,
    failed: () => failed,
    /** Resolves once no call is in flight (after a crash: every answer that arrived is counted). */
    async settled(ms = 10_000) {
      const until = Date.now() + ms;
      while (inflight > 0 && Date.now() < until) await new Promise((r) => setTimeout(r, 10));
    },
    perSecond: (perBatch * 1000) / everyMs,
    pause() {
      paused = true;
      session?.destroy();
      session = undefined;
    },
    resume() {
      paused = false;
    },
    stop() {
      clearInterval(timer);
      session?.destroy();
    },
  };
}
