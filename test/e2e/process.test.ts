import { join } from "node:path";
import { spawnSync } from "node:child_process";
import * as grpc from "@grpc/grpc-js";
import { afterEach, describe, expect, it } from "vitest";
import { DecisionService } from "../../gen/rollgate/v1/decision_service_pb.js";
import { RolloutService } from "../../gen/rollgate/v1/rollout_service_pb.js";
import { connectJson } from "../helpers/curl.js";
import { grpcJsClient } from "../helpers/grpc-js.js";
import { cliPath, spawnServer, tempDir, type ServerProcess } from "../helpers/servers.js";

const running: ServerProcess[] = [];
const tmps: ReturnType<typeof tempDir>[] = [];
afterEach(() => {
  for (const p of running.splice(0)) p.child.kill("SIGKILL");
  for (const t of tmps.splice(0)) t.cleanup();
});

async function serve(db: string): Promise<ServerProcess & { url: string }> {
  const p = await spawnServer(["--listen", "127.0.0.1:0", "--db", db]);
  running.push(p);
  return Object.assign(p, { url: `http://127.0.0.1:${p.port}` });
}

function tmpDb(): string {
  const t = tempDir();
  tmps.push(t);
  return join(t.dir, "data", "rollgate.db");
}

describe("the server process", () => {
  it("loses nothing acknowledged when killed with SIGKILL right after the answer", async () => {
    const db = tmpDb();
    const first = await serve(db);
    await connectJson(first.url, "rollgate.v1.RolloutService/CreateRollout", { rollout: { name: "durable", stableVersion: "v1", canaryVersion: "v2" } });
    const weights = [700, 1300, 4200];
    for (const w of weights) {
      const r = await connectJson(first.url, "rollgate.v1.RolloutService/SetWeight", { name: "durable", weightBp: w, reason: `to ${w}` });
      expect(r.status).toBe(200);
    }
    first.child.kill("SIGKILL");
    expect((await first.exited).signal).toBe("SIGKILL");

    const second = await serve(db);
    const got = await connectJson(second.url, "rollgate.v1.RolloutService/GetRollout", { name: "durable" });
    expect(got.json).toMatchObject({ rollout: { weightBp: 4200, version: "4" } });
    const events = await connectJson(second.url, "rollgate.v1.RolloutService/ListEvents", { name: "durable" });
    expect((events.json as { events: { reason: string }[] }).events.map((e) => e.reason)).toEqual(["created: v2 over v1, 4 steps, weight 500 bp", "to 700", "to 1300", "to 4200"]);
  });

  it("has written the log line of every change and decision it showed anyone when killed with SIGKILL", async () => {
    const first = await serve(tmpDb());
    const closed = new Promise((resolve) => first.child.stdout!.once("close", resolve));
    await connectJson(first.url, "rollgate.v1.RolloutService/CreateRollout", {
      rollout: {
        name: "logged",
        stableVersion: "v1",
        canaryVersion: "v2",
        gates: [{ name: "errors", minSamples: "50", errorRate: { max: 0.05 } }],
        analysis: { interval: "1s", window: "30s", consecutiveBreaches: 2 },
      },
    });
    // Eight callers at once: their changes share group commits; every answer counts.
    const weights = Array.from({ length: 24 }, (_, i) => 600 + i);
    const answers = await Promise.all(
      Array.from({ length: 8 }, async (_, c) => {
        const got: number[] = [];
        for (let i = c; i < weights.length; i += 8) {
          const r = await connectJson(first.url, "rollgate.v1.RolloutService/SetWeight", { name: "logged", weightBp: weights[i], reason: `w${i}` });
          expect(r.status).toBe(200);
          got.push(Number((r.json as { rollout: { version: string } }).rollout.version));
        }
        return got;
      }),
    );
    expect(answers.flat().sort((a, b) => a - b)).toEqual(weights.map((_, i) => i + 2));
    // A bad canary: the evaluator rolls back; the moment Route shows it, the process dies.
    const outcomes = [
      ...Array.from({ length: 200 }, (_, i) => ({ variant: "VARIANT_CANARY", success: i >= 60, latencyMs: 20 })),
      ...Array.from({ length: 200 }, () => ({ variant: "VARIANT_STABLE", success: true, latencyMs: 20 })),
    ];
    await connectJson(first.url, "rollgate.v1.DecisionService/RecordOutcome", { rollout: "logged", outcomes });
    for (;;) {
      const route = await connectJson(first.url, "rollgate.v1.DecisionService/Route", { rollout: "logged", key: "u" });
      if ((route.json as { reason?: string }).reason === "ROUTE_REASON_ROLLED_BACK") break;
      await new Promise((r) => setTimeout(r, 10));
    }
    first.child.kill("SIGKILL");
    expect((await first.exited).signal).toBe("SIGKILL");
    await closed;
    const changed = first.logs.filter((l) => l.rollout === "logged" && l.event === "weight_changed");
    expect(changed.map((l) => l.reason).sort()).toEqual(weights.map((_, i) => `w${i}`).sort());
    expect(first.logs.filter((l) => l.decision === "rollback" && l.rollout === "logged")).toHaveLength(1);
  }, 60_000);

  it("shuts down on SIGTERM within 10 s with exit 0, ending open streams cleanly", async () => {
    const p = await serve(tmpDb());
    await connectJson(p.url, "rollgate.v1.RolloutService/CreateRollout", { rollout: { name: "watched", stableVersion: "v1", canaryVersion: "v2" } });
    const client = grpcJsClient(RolloutService, `127.0.0.1:${p.port}`);
    const stream = (client.watchEvents as (req: unknown) => grpc.ClientReadableStream<unknown>)({ name: "watched" });
    const ended = new Promise<{ code: number; sawEvent: boolean }>((resolve) => {
      let sawEvent = false;
      stream.on("data", () => {
        sawEvent = true;
        if (p.child.exitCode === null && !p.child.killed) p.child.kill("SIGTERM");
      });
      stream.on("status", (s: grpc.StatusObject) => resolve({ code: s.code, sawEvent }));
      stream.on("error", () => undefined);
    });
    // A WatchHealth stream (served on the gRPC fast path) must end cleanly too.
    const decisions = grpcJsClient(DecisionService, `127.0.0.1:${p.port}`);
    const health = (decisions.watchHealth as (req: unknown) => grpc.ClientReadableStream<unknown>)({ rollout: "watched" });
    const healthEnded = new Promise<number>((resolve) => {
      health.on("data", () => undefined);
      health.on("status", (s: grpc.StatusObject) => resolve(s.code));
      health.on("error", () => undefined);
    });
    const started = Date.now();
    const result = await ended;
    const exit = await p.exited;
    client.close();
    decisions.close();
    expect(await healthEnded).toBe(grpc.status.OK);
    expect(result).toEqual({ code: grpc.status.OK, sawEvent: true });
    expect(exit).toEqual({ code: 0, signal: null });
    expect(Date.now() - started).toBeLessThan(10_000);
    expect(p.logs.some((l) => l.msg === "stopped")).toBe(true);
  });

  it("refuses a non-loopback address without tokens unless --insecure, naming the setting", () => {
    const r = spawnSync(process.execPath, [cliPath, "serve", "--listen", "0.0.0.0:0", "--db", tmpDb()], { encoding: "utf8", timeout: 20_000 });
    expect(r.status).toBe(2);
    expect(r.stderr).toContain("--listen/ROLLGATE_LISTEN");
    expect(r.stderr).toContain("--insecure");
    const env = spawnSync(process.execPath, [cliPath, "serve", "--db", tmpDb()], {
      encoding: "utf8",
      timeout: 20_000,
      env: { ...process.env, ROLLGATE_LISTEN: "nonsense" },
    });
    expect(env.status).toBe(2);
    expect(env.stderr).toContain('"nonsense" must be host:port');
  });

  it("serves beyond loopback with --insecure", async () => {
    const p = await spawnServer(["--listen", "0.0.0.0:0", "--insecure", "--db", tmpDb()]);
    running.push(p);
    const r = await connectJson(`http://127.0.0.1:${p.port}`, "rollgate.v1.RolloutService/ListRollouts", {});
    expect(r.status).toBe(200);
  });
});
