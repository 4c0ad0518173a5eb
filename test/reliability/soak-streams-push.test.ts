import * as grpc from "@grpc/grpc-js";
import { afterEach, describe, expect, it } from "vitest";
import { toBinary } from "@bufbuild/protobuf";
import { DecisionService, HealthUpdateSchema, type HealthUpdate } from "../../gen/rollgate/v1/decision_service_pb.js";
import { setWeight } from "../../src/domain/rollout-machine.js";
import { grpcJsClient } from "../helpers/grpc-js.js";
import { specFixture } from "../helpers/rollouts.js";
import { startTestServer, type TestServer } from "../helpers/servers.js";

/**
 * WatchHealth on the gRPC fast path is push-based (issue 16, point 5): each health is written to
 * every stream in the publisher's turn, one write in flight per stream, and while one is the
 * health feed holds only the latest health per rollout for that stream (src/server/
 * grpc-fast-path.ts pushTo, src/service/fan-out.ts). Through a real port and grpc-js: a reader
 * that keeps up gets every change, numbered 1, 2, 3… in order; one that stops reading gets, when
 * it reads again, what its buffers and flow control let through and then the latest health of
 * each rollout, not the 1,500 changes in between.
 */
let server: TestServer | undefined;
let client: grpc.Client | undefined;
afterEach(async () => {
  client?.close();
  client = undefined;
  await server?.stop();
  server = undefined;
});

type Watch = (req: unknown) => grpc.ClientReadableStream<HealthUpdate>;

/** Collects a stream's updates; `until(p)` resolves once one satisfying p has arrived. */
function collect(call: grpc.ClientReadableStream<HealthUpdate>) {
  const seen: HealthUpdate[] = [];
  const waiters: { p: (u: HealthUpdate) => boolean; resolve: () => void }[] = [];
  call.on("data", (u: HealthUpdate) => {
    seen.push(u);
    for (const w of [...waiters]) {
      if (!w.p(u)) continue;
      waiters.splice(waiters.indexOf(w), 1);
      w.resolve();
    }
  });
  call.on("error", () => undefined);
  return {
    seen,
    until: (p: (u: HealthUpdate) => boolean) =>
      new Promise<void>((resolve) => {
        if (seen.some(p)) return resolve();
        waiters.push({ p, resolve });
      }),
  };
}

async function setWeightOf(s: TestServer, name: string, weightBp: number): Promise<void> {
  await s.engine.change(name, { actor: "tester", reason: "" }, (r, actor) => setWeight(r, weightBp, actor));
}

describe("WatchHealth push delivery (gRPC fast path, grpc-js)", () => {
  it("gives a reader that keeps up every change, with seq 1, 2, 3… in order", async () => {
    server = await startTestServer();
    await server.engine.create(specFixture({ name: "a", salt: "a" }), { actor: "tester", reason: "" });
    client = grpcJsClient(DecisionService, server.address);
    const call = (client as unknown as { watchHealth: Watch }).watchHealth({ rollout: "a" });
    const r = collect(call);
    await r.until(() => true);
    // In lockstep: each change once the previous one has arrived.
    const weights = Array.from({ length: 40 }, (_, i) => 200 + i);
    for (const w of weights) {
      await setWeightOf(server, "a", w);
      await r.until((u) => u.health?.weightBp === w);
    }
    call.cancel();
    expect(r.seen.map((u) => u.seq)).toEqual(r.seen.map((_, i) => BigInt(i + 1)));
    // Every change arrived, in order (an evaluation may repeat the current weight in between).
    const changes = r.seen.slice(1).map((u) => u.health!.weightBp);
    expect([...new Set(changes)]).toEqual(weights);
    await expect.poll(() => server!.engine.subscribers().health).toBe(0);
  }, 60_000);

  it("gives a reader that stopped reading the latest health per rollout when it reads again", async () => {
    server = await startTestServer();
    const names = ["a", "b", "c"];
    for (const name of names) await server.engine.create(specFixture({ name, salt: name }), { actor: "tester", reason: "" });
    // A small stream window, so that flow control stops the server's writes after a few messages.
    client = grpcJsClient(DecisionService, server.address, grpc.credentials.createInsecure(), { "grpc-node.flow_control_window": 1024 });
    const call = (client as unknown as { watchHealth: Watch }).watchHealth({ rollout: "" });
    const r = collect(call);
    await r.until(() => r.seen.length === names.length);
    call.pause();
    const changes = 1500;
    const last = new Map<string, number>();
    for (let i = 0; i < changes; i++) {
      const name = names[i % names.length]!;
      await setWeightOf(server, name, 1000 + i);
      last.set(name, 1000 + i);
    }
    const before = r.seen.length;
    call.resume();
    for (const name of names) await r.until((u) => u.health?.rollout === name && u.health.weightBp === last.get(name));
    call.cancel();
    expect(r.seen.map((u) => u.seq)).toEqual(r.seen.map((_, i) => BigInt(i + 1)));
    console.log(`slow reader: ${before} messages before it read again, ${r.seen.length - before} after`);
    // Per rollout, never an older state after a newer one, and the last one is the newest.
    for (const name of names) {
      const w = r.seen.slice(names.length).filter((u) => u.health?.rollout === name).map((u) => u.health!.weightBp);
      expect(w).toEqual([...w].sort((x, y) => x - y));
      expect(w.at(-1)).toBe(last.get(name));
    }
    // What was let through while it did not read — the client's buffers (node:http2's 16 KiB
    // readable buffer, grpc-js's 16 messages) and the 1 KiB stream window — then one write in
    // flight and the latest of each rollout: a few hundred of the smallest messages at most,
    // not the 1,500 changes.
    const smallest = Math.min(...r.seen.map((u) => toBinary(HealthUpdateSchema, u).length + 5));
    const bound = Math.ceil((16_384 + 1024) / smallest) + 16 + 1 + names.length;
    expect(bound).toBeLessThan(changes / 2);
    expect(r.seen.length - before).toBeLessThanOrEqual(bound);
    await expect.poll(() => server!.engine.subscribers().health).toBe(0);
  }, 120_000);
});
