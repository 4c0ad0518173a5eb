// Target 4: ingest through RecordOutcome (gRPC fast path, batches of 500, several in flight)
// and StreamOutcomes (client streaming, connect-node), with gates evaluating every second.
import { h2load, h2loadCommand } from "../lib/h2load.mjs";
import { recordOutcomeFrame, streamOutcomesFrame, writeBody } from "../lib/bodies.mjs";
import { createRollout, rollgateCommand, startRollgate } from "../lib/rollgate.mjs";
import { commandText, connectJson, cpuSeconds, runClient, CLIENT_CORE } from "../lib/util.mjs";

const RECORD = "/rollgate.v1.DecisionService/RecordOutcome";
export const BATCH = 500;

/** Runs both ingest paths interleaved, round by round; returns outcomes/s and server CPU. */
export async function ingestCase({ dir, seconds, rounds, log }) {
  const rg = await startRollgate({});
  try {
    await createRollout(rg.port, "checkout", { interval: "1s", window: "60s" });
    const recordBody = writeBody(dir, "record-500.bin", recordOutcomeFrame("checkout", BATCH, 7));
    const streamBody = writeBody(dir, "stream-500.bin", streamOutcomesFrame("checkout", BATCH, 7));
    const check = await runClient("unary-latency.mjs", [rg.port, RECORD, recordBody, 5, 0]);
    if (check.errors > 0) throw new Error(`RecordOutcome: grpc-status ${check.lastStatus}`);
    const clients = 2;
    const inFlight = 4;
    const streams = 4;
    await h2load({ port: rg.port, path: RECORD, body: recordBody, clients, inFlight, requests: 400 });
    await runClient("stream-outcomes.mjs", [rg.port, streamBody, BATCH, streams, 0.5]);

    const out = { record: { perSec: [], perCpuSec: [], cpuShare: [] }, stream: { perSec: [], perCpuSec: [], cpuShare: [] } };
    for (let round = 0; round < rounds; round++) {
      {
        const cpu0 = cpuSeconds(rg.pid);
        const t0 = performance.now();
        const res = await h2load({ port: rg.port, path: RECORD, body: recordBody, clients, inFlight, seconds, warmup: 0 });
        const wall = (performance.now() - t0) / 1000;
        const cpu = cpuSeconds(rg.pid) - cpu0;
        out.record.perSec.push(res.rps * BATCH);
        out.record.perCpuSec.push((res.done * BATCH) / cpu);
        out.record.cpuShare.push(cpu / wall);
      }
      {
        const cpu0 = cpuSeconds(rg.pid);
        const t0 = performance.now();
        const res = await runClient("stream-outcomes.mjs", [rg.port, streamBody, BATCH, streams, seconds]);
        const wall = (performance.now() - t0) / 1000;
        const cpu = cpuSeconds(rg.pid) - cpu0;
        if (res.status !== "0") throw new Error(`StreamOutcomes: grpc-status ${res.status}`);
        out.stream.perSec.push(res.outcomesPerSec);
        out.stream.perCpuSec.push(res.accepted / cpu);
        out.stream.cpuShare.push(cpu / wall);
      }
      log(`  ingest round ${round + 1}/${rounds}: RecordOutcome ${Math.round(out.record.perSec.at(-1))}/s, StreamOutcomes ${Math.round(out.stream.perSec.at(-1))}/s`);
    }
    // The gates really were evaluating during the run: the health was computed within the last
    // interval or two and counts the window's samples.
    const h = (await connectJson(rg.port, "rollgate.v1.DecisionService/Health", { rollout: "checkout" })).health;
    const evaluatedAgoMs = Date.now() - Date.parse(h.evaluatedAt);
    const evaluation = { evaluatedAgoMs, samples: h.samples, gates: h.gates.map((g) => `${g.name}: ${g.verdict}`) };
    const commands = [
      rollgateCommand({}),
      "# rollout \"checkout\": error-rate and p99-latency gates, interval 1s, window 60s",
      h2loadCommand({ port: "<port>", path: RECORD, body: "record-500.bin", clients, inFlight, seconds, warmup: 0 }),
      commandText(CLIENT_CORE, "node", ["bench/clients/stream-outcomes.mjs", "<port>", "stream-500.bin", String(BATCH), String(streams), String(seconds)]),
    ];
    return { ...out, evaluation, clients, inFlight, streams, commands };
  } finally {
    await rg.stop();
  }
}
