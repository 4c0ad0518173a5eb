// The server on PostgreSQL end to end: `--db postgres://…` against a PostgreSQL this file starts,
// real processes on real ports, driven over Connect, gRPC (grpc-js) and the CLI.
import { spawnSync } from "node:child_process";
import { readdirSync } from "node:fs";
import { Writable } from "node:stream";
import { pino } from "pino";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import * as grpc from "@grpc/grpc-js";
import { DecisionService } from "../../gen/rollgate/v1/decision_service_pb.js";
import { RolloutService } from "../../gen/rollgate/v1/rollout_service_pb.js";
import { loadConfig } from "../../src/server/config.js";
import { startServer } from "../../src/server/server.js";
import { runCli } from "../cli/run-cli.js";
import { connectJson, curl } from "../helpers/curl.js";
import { grpcJsClient, unary } from "../helpers/grpc-js.js";
import { freePort, startPostgres, type PostgresCluster } from "../helpers/postgres.js";
import { cliPath, spawnServer, tempDir, type ServerProcess } from "../helpers/servers.js";

let cluster: PostgresCluster;
beforeAll(async () => {
  cluster = await startPostgres();
});
afterAll(() => cluster?.stop());

const running: ServerProcess[] = [];
afterEach(() => {
  for (const p of running.splice(0)) p.child.kill("SIGKILL");
});

async function serve(db: string, extra: string[] = []): Promise<ServerProcess & { url: string }> {
  const p = await spawnServer(["--listen", "127.0.0.1:0", "--db", db, ...extra]);
  running.push(p);
  return Object.assign(p, { url: `http://127.0.0.1:${p.port}` });
}

/** Routes keys over gRPC (grpc-js, so the fast path) and returns their variants. */
async function routeAll(address: string, rollout: string, keys: string[]): Promise<string[]> {
  const client = grpcJsClient(DecisionService, address);
  try {
    return await Promise.all(keys.map(async (key) => String((await unary<{ variant: number }>(client, "route", { rollout, key })).variant)));
  } finally {
    client.close();
  }
}

/** Creates an error-gated rollout on the first replica and waits until every replica knows it. */
async function createOnAll(replicas: readonly (ServerProcess & { url: string })[], name: string, analysis: object): Promise<void> {
  const created = await connectJson(replicas[0]!.url, "rollgate.v1.RolloutService/CreateRollout", {
    rollout: { name, stableVersion: "v1", canaryVersion: "v2", gates: [{ name: "errors", minSamples: "50", errorRate: { max: 0.05 } }], analysis },
  });
  expect(created.status).toBe(200);
  for (const p of replicas) {
    await expect.poll(async () => (await connectJson(p.url, "rollgate.v1.RolloutService/GetRollout", { name })).status, { timeout: 15_000, interval: 50 }).toBe(200);
  }
}

/**
 * Sends 20 canary outcomes (30% errors) and 20 stable ones to each replica: under the gate's 50
 * samples on any one of three replicas, 60 in all.
 */
async function spreadBadCanary(replicas: readonly (ServerProcess & { url: string })[], rollout: string): Promise<void> {
  const canary = Array.from({ length: 20 }, (_, i) => ({ variant: "VARIANT_CANARY", success: i >= 6, latencyMs: 20 }));
  const stable = Array.from({ length: 20 }, () => ({ variant: "VARIANT_STABLE", success: true, latencyMs: 18 }));
  for (const p of replicas) {
    expect((await connectJson(p.url, "rollgate.v1.DecisionService/RecordOutcome", { rollout, outcomes: [...canary, ...stable] })).json).toEqual({ accepted: 40 });
  }
}

describe("the server on PostgreSQL", () => {
  it("serves, keeps its state across a restart, and its audit log verifies", async () => {
    const db = await cluster.createDatabase();
    const first = await serve(db);
    expect(first.logs.find((l) => l.msg === "listening")?.db).toBe(db);
    const created = await connectJson(first.url, "rollgate.v1.RolloutService/CreateRollout", {
      rollout: { name: "checkout", stableVersion: "v1", canaryVersion: "v2" },
    });
    expect(created.status).toBe(200);
    for (const w of [700, 4200]) {
      const r = await connectJson(first.url, "rollgate.v1.RolloutService/SetWeight", { name: "checkout", weightBp: w, reason: `to ${w}` });
      expect(r.status).toBe(200);
    }
    const stale = await connectJson(first.url, "rollgate.v1.RolloutService/DeleteRollout", {
      name: "checkout",
      expectedVersion: "2",
      reason: "stale",
    });
    expect(stale.json).toMatchObject({ code: "aborted" });
    const keys = Array.from({ length: 200 }, (_, i) => `user-${i}`);
    const before = await routeAll(first.address, "checkout", keys);
    expect(new Set(before).size).toBe(2);
    await connectJson(first.url, "rollgate.v1.RolloutService/CreateRollout", { rollout: { name: "gone", stableVersion: "v1", canaryVersion: "v2" } });
    expect((await connectJson(first.url, "rollgate.v1.RolloutService/DeleteRollout", { name: "gone", reason: "not needed" })).status).toBe(200);

    first.child.kill("SIGTERM");
    expect((await first.exited).code).toBe(0);

    const second = await serve(db);
    const got = await connectJson(second.url, "rollgate.v1.RolloutService/GetRollout", { name: "checkout" });
    expect(got.json).toMatchObject({ rollout: { weightBp: 4200, version: "3" } });
    expect(await routeAll(second.address, "checkout", keys)).toEqual(before);
    expect((await connectJson(second.url, "rollgate.v1.RolloutService/GetRollout", { name: "gone" })).json).toMatchObject({ code: "not_found" });
    const events = await connectJson(second.url, "rollgate.v1.RolloutService/ListEvents", { name: "checkout" });
    expect((events.json as { events: { reason: string }[] }).events.map((e) => e.reason)).toEqual([
      "created: v2 over v1, 4 steps, weight 500 bp",
      "to 700",
      "to 4200",
    ]);
    const verify = await runCli(["--server", second.url, "events", "checkout", "--verify"]);
    expect(verify.stderr).toBe("");
    expect(verify.code).toBe(0);
    const verifyAll = await runCli(["--server", second.url, "events", "--verify"]);
    expect(verifyAll.code).toBe(0);
    // A kill -9 right after the answers loses nothing acknowledged.
    expect((await connectJson(second.url, "rollgate.v1.RolloutService/SetWeight", { name: "checkout", weightBp: 1234, reason: "last" })).status).toBe(200);
    second.child.kill("SIGKILL");
    await second.exited;
    const third = await serve(db);
    expect((await connectJson(third.url, "rollgate.v1.RolloutService/GetRollout", { name: "checkout" })).json).toMatchObject({
      rollout: { weightBp: 1234, version: "4" },
    });
  }, 120_000);

  it("refuses a database URL of another scheme, naming the setting, and creates no file", () => {
    const t = tempDir();
    try {
      for (const [args, env] of [
        [["--db", "mysql://db.example/rollgate"], {}],
        [[], { ROLLGATE_DB: "redis://127.0.0.1:6379" }],
        [["--db", "postgres:rollgate"], {}],
      ] as const) {
        const r = spawnSync(process.execPath, [cliPath, "serve", "--listen", "127.0.0.1:0", ...args], {
          cwd: t.dir,
          env: { ...process.env, ...env },
          encoding: "utf8",
          timeout: 20_000,
        });
        expect(r.status).toBe(2);
        expect(r.stderr).toContain("--db/ROLLGATE_DB");
      }
      expect(readdirSync(t.dir)).toEqual([]);
    } finally {
      t.cleanup();
    }
  });

  it("gives up on an unreachable PostgreSQL after a bounded, logged retry", async () => {
    const port = await freePort();
    const lines: Record<string, unknown>[] = [];
    const sink = new Writable({
      write(chunk: Buffer, _enc, done) {
        for (const l of chunk.toString().split("\n")) if (l !== "") lines.push(JSON.parse(l) as Record<string, unknown>);
        done();
      },
    });
    const url = `postgresql://rollgate:hunter2@127.0.0.1:${port}/rollgate`;
    const config = loadConfig({ listen: "127.0.0.1:0", db: url }, {});
    const started = startServer(config, { logger: pino({ level: "info" }, sink), dbConnectAttempts: 4 });
    await expect(started).rejects.toThrow(/cannot reach PostgreSQL at postgresql:\/\/rollgate:\*\*\*@127\.0\.0\.1:\d+\/rollgate after 4 attempt/);
    const retries = lines.filter((l) => l.msg === "database not reachable; retrying");
    expect(retries.map((l) => l.attempt)).toEqual([1, 2, 3]);
    expect(JSON.stringify(lines)).not.toContain("hunter2");
  });

  it("never logs a password given as a query parameter", async () => {
    const port = await freePort();
    const lines: string[] = [];
    const sink = new Writable({
      write(chunk: Buffer, _enc, done) {
        lines.push(chunk.toString());
        done();
      },
    });
    const url = `postgres://rollgate@127.0.0.1:${port}/rollgate?password=hunter3&sslmode=disable`;
    const config = loadConfig({ listen: "127.0.0.1:0", db: url }, {});
    const started = startServer(config, { logger: pino({ level: "info" }, sink), dbConnectAttempts: 2 });
    const err = await started.then(
      () => undefined,
      (e: Error) => e,
    );
    expect(err?.message).toContain("password=***");
    expect(err?.message).not.toContain("hunter3");
    expect(lines.some((l) => l.includes("database not reachable; retrying"))).toBe(true);
    expect(lines.join("")).not.toContain("hunter3");
  });

  it("exits 1 with the reason when PostgreSQL cannot be reached at start", async () => {
    const port = await freePort();
    // A stopped cluster's port: the server retries, logs each attempt, then gives up.
    const r = await new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
      const res = spawnSync(process.execPath, [cliPath, "serve", "--listen", "127.0.0.1:0", "--db", `postgres://127.0.0.1:${port}/x`], {
        encoding: "utf8",
        timeout: 60_000,
        env: { ...process.env, LOG_LEVEL: "info" },
      });
      resolve({ code: res.status, stdout: res.stdout, stderr: res.stderr });
    });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/cannot reach PostgreSQL at postgres:\/\/127\.0\.0\.1:\d+\/x after 8 attempt/);
    expect(r.stdout.split("\n").filter((l) => l.includes("database not reachable; retrying")).length).toBe(7);
  }, 60_000);

  it("keeps routing while PostgreSQL is down, refuses changes with UNAVAILABLE, and is ready again once it is back", async () => {
    const db = await cluster.createDatabase();
    const p = await serve(db);
    const rollout = (w?: number) => connectJson(p.url, "rollgate.v1.RolloutService/GetRollout", { name: "checkout" }).then((r) => {
      if (w !== undefined) expect(r.json).toMatchObject({ rollout: { weightBp: w } });
      return r;
    });
    await connectJson(p.url, "rollgate.v1.RolloutService/CreateRollout", { rollout: { name: "checkout", stableVersion: "v1", canaryVersion: "v2" } });
    expect((await connectJson(p.url, "rollgate.v1.RolloutService/SetWeight", { name: "checkout", weightBp: 2000, reason: "up" })).status).toBe(200);
    const keys = Array.from({ length: 50 }, (_, i) => `k${i}`);
    const routed = await routeAll(p.address, "checkout", keys);
    const readyz = async () => (await curl([`${p.url}/readyz`])).status;
    const waitFor = async (status: number) => {
      for (let i = 0; i < 300 && (await readyz()) !== status; i++) await new Promise((r) => setTimeout(r, 100));
      expect(await readyz()).toBe(status);
    };
    expect(await readyz()).toBe(200);
    cluster.kill();
    try {
      await waitFor(503);
      expect(await routeAll(p.address, "checkout", keys)).toEqual(routed);
      const refused = await connectJson(p.url, "rollgate.v1.RolloutService/SetWeight", { name: "checkout", weightBp: 9000, reason: "down" });
      expect(refused.json).toMatchObject({ code: "unavailable" });
      await rollout(2000);
      expect(p.logs.some((l) => l.msg === "database unreachable")).toBe(true);
      // Health says the evaluator is paused.
      const health = await connectJson(p.url, "rollgate.v1.DecisionService/Health", { rollout: "checkout" });
      expect((health.json as { health: { message: string } }).health.message).toMatch(/^evaluation paused: the database is unreachable; /);
    } finally {
      cluster.start();
    }
    await waitFor(200);
    expect(p.logs.some((l) => l.msg === "database reachable again")).toBe(true);
    const resumed = await connectJson(p.url, "rollgate.v1.DecisionService/Health", { rollout: "checkout" });
    expect((resumed.json as { health: { message: string } }).health.message).not.toContain("paused");
    expect((await connectJson(p.url, "rollgate.v1.RolloutService/SetWeight", { name: "checkout", weightBp: 3000, reason: "back" })).status).toBe(200);
    await rollout(3000);
    const events = await connectJson(p.url, "rollgate.v1.RolloutService/ListEvents", { name: "checkout" });
    expect((events.json as { events: { reason: string }[] }).events.map((e) => e.reason).slice(1)).toEqual(["up", "back"]);
    expect(p.child.exitCode).toBe(null);
  }, 120_000);

  it("three replicas on one database: a change on one is routed by the others, the log stays one chain", async () => {
    const db = await cluster.createDatabase();
    const replicas = await Promise.all(["r1", "r2", "r3"].map((id) => serve(db, ["--replica-id", id])));
    const [a, b, c] = replicas as [ServerProcess & { url: string }, ServerProcess & { url: string }, ServerProcess & { url: string }];
    expect(a.logs.find((l) => l.msg === "ready")?.replica).toBe("r1");
    expect((await curl([`${c.url}/metrics`])).body).toMatch(/rollgate_rpc_requests_total\{[^}]*replica="r3"|replica="r3"/);
    const getOn = (p: ServerProcess) => {
      const client = grpcJsClient(RolloutService, p.address);
      return {
        weight: () =>
          unary<{ rollout?: { weightBp: number } }>(client, "getRollout", { name: "checkout" }).then(
            (r) => r.rollout?.weightBp ?? -1,
            () => -1,
          ),
        close: () => client.close(),
      };
    };
    const readers = replicas.map(getOn);
    /** Waits until every replica answers `weight`; returns how long the slowest took (ms). */
    const propagated = async (weight: number): Promise<number> => {
      const started = Date.now();
      let worst = 0;
      for (const r of readers) {
        while ((await r.weight()) !== weight && Date.now() - started < 15_000) await new Promise((res) => setTimeout(res, 10));
        expect(await r.weight()).toBe(weight);
        worst = Math.max(worst, Date.now() - started);
      }
      return worst;
    };
    try {
      expect((await connectJson(a.url, "rollgate.v1.RolloutService/CreateRollout", { rollout: { name: "checkout", stableVersion: "v1", canaryVersion: "v2" } })).status).toBe(200);
      const times = [await propagated(500)];
      // A WatchEvents stream on one replica carries the changes made on the others.
      const watcher = grpcJsClient(RolloutService, c.address);
      const stream = (watcher.watchEvents as (req: unknown) => grpc.ClientReadableStream<{ event?: { reason: string; seq: bigint } }>)({ name: "checkout" });
      const streamed: string[] = [];
      stream.on("data", (m: { event?: { reason: string } }) => {
        if (m.event !== undefined) streamed.push(m.event.reason);
      });
      stream.on("error", () => undefined);
      for (const [i, w] of [1500, 2500, 3500].entries()) {
        const on = replicas[(i + 1) % 3]!;
        expect((await connectJson(on.url, "rollgate.v1.RolloutService/SetWeight", { name: "checkout", weightBp: w, reason: `to ${w} on ${i}` })).status).toBe(200);
        times.push(await propagated(w));
      }
      await expect.poll(() => streamed, { timeout: 15_000, interval: 50 }).toEqual([
        "created: v2 over v1, 4 steps, weight 500 bp",
        "to 1500 on 0",
        "to 2500 on 1",
        "to 3500 on 2",
      ]);
      stream.cancel();
      watcher.close();
      process.stderr.write(`change propagation across 3 replicas (ms, slowest replica): ${times.join(", ")}\n`);
      const keys = Array.from({ length: 100 }, (_, i) => `u${i}`);
      const routed = await Promise.all(replicas.map((p) => routeAll(p.address, "checkout", keys)));
      expect(routed[1]).toEqual(routed[0]);
      expect(routed[2]).toEqual(routed[0]);
      // A stale expected_version is refused whichever replica is asked.
      expect((await connectJson(b.url, "rollgate.v1.RolloutService/DeleteRollout", { name: "checkout", expectedVersion: "1", reason: "stale" })).json).toMatchObject({
        code: "aborted",
      });
      for (const p of replicas) expect((await runCli(["--server", p.url, "events", "--verify"])).code).toBe(0);
      const events = await connectJson(c.url, "rollgate.v1.RolloutService/ListEvents", { name: "checkout" });
      expect((events.json as { events: { seq: string }[] }).events.map((e) => Number(e.seq))).toEqual([1, 2, 3, 4]);
      // Deleted on one, gone on all.
      expect((await connectJson(c.url, "rollgate.v1.RolloutService/DeleteRollout", { name: "checkout", reason: "done" })).status).toBe(200);
      await propagated(-1);
    } finally {
      for (const r of readers) r.close();
    }
  }, 180_000);

  it("three replicas: one evaluator at a time, and another takes over when it is killed", async () => {
    const db = await cluster.createDatabase();
    const replicas = await Promise.all(["e1", "e2", "e3"].map((id) => serve(db, ["--replica-id", id])));
    const leaders = () => replicas.filter((p) => p.child.exitCode === null && p.child.signalCode === null && p.logs.some((l) => l.msg === "became the evaluator"));
    const waitForLeaders = async (n: number) => {
      for (let i = 0; i < 300 && leaders().length < n; i++) await new Promise((r) => setTimeout(r, 20));
      return leaders();
    };
    const first = await waitForLeaders(1);
    expect(first.length).toBe(1);
    const failovers: number[] = [];
    let alive = [...replicas];
    for (let round = 0; round < 2; round++) {
      const leader = alive.find((p) => p.logs.some((l) => l.msg === "became the evaluator"))!;
      const killedAt = Date.now();
      leader.child.kill("SIGKILL");
      await leader.exited;
      alive = alive.filter((p) => p !== leader);
      let next: (typeof alive)[number] | undefined;
      for (let i = 0; i < 500 && next === undefined; i++) {
        next = alive.find((p) => p.logs.some((l) => l.msg === "became the evaluator"));
        if (next === undefined) await new Promise((r) => setTimeout(r, 20));
      }
      expect(next, "a surviving replica became the evaluator").toBeDefined();
      failovers.push(Date.now() - killedAt);
      // Only one of the survivors leads.
      expect(alive.filter((p) => p.logs.some((l) => l.msg === "became the evaluator")).length).toBe(1);
    }
    process.stderr.write(`evaluator failover after kill -9 (ms): ${failovers.join(", ")}\n`);
  }, 180_000);

  it("three replicas: outcomes spread over all of them are judged together, and a bad canary is rolled back once", async () => {
    const db = await cluster.createDatabase();
    const replicas = await Promise.all(["w1", "w2", "w3"].map((id) => serve(db, ["--replica-id", id])));
    const [a] = replicas as [ServerProcess & { url: string }];
    await createOnAll(replicas, "spread", { interval: "1s", window: "60s", consecutiveBreaches: 2 });
    await spreadBadCanary(replicas, "spread");
    for (const p of replicas) {
      await expect
        .poll(async () => ((await connectJson(p.url, "rollgate.v1.RolloutService/GetRollout", { name: "spread" })).json as { rollout: { stage: string } }).rollout.stage, {
          timeout: 30_000,
          interval: 100,
        })
        .toBe("STAGE_ROLLED_BACK");
    }
    // Give a second evaluator (were there one) time to act too, then count.
    await new Promise((r) => setTimeout(r, 2500));
    const events = await connectJson(a.url, "rollgate.v1.RolloutService/ListEvents", { name: "spread" });
    const types = (events.json as { events: { type: string }[] }).events.map((e) => e.type);
    expect(types.filter((t) => t === "EVENT_TYPE_ROLLED_BACK").length).toBe(1);
    for (const p of replicas) expect((await runCli(["--server", p.url, "events", "--verify"])).code).toBe(0);
  }, 180_000);

  it("three replicas: Health and WatchHealth on every one show every replica's outcomes and the evaluator's breach count", async () => {
    const db = await cluster.createDatabase();
    const replicas = await Promise.all(["h1", "h2", "h3"].map((id) => serve(db, ["--replica-id", id])));
    // Never rolled back within the test: breaches are counted, one per evaluation.
    await createOnAll(replicas, "seen", { interval: "1s", window: "120s", consecutiveBreaches: 100 });
    // WatchHealth on every replica, over gRPC.
    const seen = replicas.map(() => [] as { canary: number; breaches: number }[]);
    const clients = replicas.map((p) => grpcJsClient(DecisionService, p.address));
    const calls = clients.map((c, i) => {
      type Update = { health?: { samples?: { canary?: string }; consecutiveBreaches?: number } };
      const call = (c.watchHealth as (req: unknown) => grpc.ClientReadableStream<Update>)({ rollout: "seen" });
      call.on("data", (u) => seen[i]!.push({ canary: Number(u.health?.samples?.canary ?? 0), breaches: u.health?.consecutiveBreaches ?? 0 }));
      call.on("error", () => undefined);
      return call;
    });
    try {
      await spreadBadCanary(replicas, "seen");
      // Every replica, the two that are not the evaluator included, shows the merged window and
      // the breaches the evaluator has recorded (it alone counts them).
      for (const p of replicas) {
        await expect
          .poll(
            async () => {
              const h = (await connectJson(p.url, "rollgate.v1.DecisionService/Health", { rollout: "seen" })).json as { health: { samples: { canary: string }; consecutiveBreaches?: number } };
              return Number(h.health.samples.canary) === 60 && (h.health.consecutiveBreaches ?? 0) >= 2;
            },
            { timeout: 30_000, interval: 200 },
          )
          .toBe(true);
      }
      for (const s of seen) await expect.poll(() => s.some((u) => u.canary === 60 && u.breaches >= 2), { timeout: 15_000, interval: 100 }).toBe(true);
    } finally {
      for (const c of calls) c.cancel();
      for (const c of clients) c.close();
    }
  }, 120_000);

  it("three replicas: a kill -9 in the middle of a burst of SetWeight calls loses no acknowledged change", async () => {
    const db = await cluster.createDatabase();
    const replicas = await Promise.all(["k1", "k2", "k3"].map((id) => serve(db, ["--replica-id", id])));
    expect((await connectJson(replicas[0]!.url, "rollgate.v1.RolloutService/CreateRollout", { rollout: { name: "burst", stableVersion: "v1", canaryVersion: "v2" } })).status).toBe(200);
    for (const p of replicas) {
      await expect.poll(async () => (await connectJson(p.url, "rollgate.v1.RolloutService/GetRollout", { name: "burst" })).status, { timeout: 15_000, interval: 50 }).toBe(200);
    }
    const victim = replicas[1]!;
    const acknowledged: string[] = [];
    let sent = 0;
    // Four callers per replica, each sending SetWeight after SetWeight; the victim dies mid-way.
    const caller = async (p: (typeof replicas)[number], c: number) => {
      for (let i = 0; i < 15; i++) {
        const reason = `${p.port}-${c}-${i}`;
        sent++;
        const r = await connectJson(p.url, "rollgate.v1.RolloutService/SetWeight", { name: "burst", weightBp: 100 + ((sent * 37) % 9000), reason }).catch(() => undefined);
        if (r?.status === 200) acknowledged.push(reason);
      }
    };
    const burst = replicas.flatMap((p) => [0, 1, 2, 3].map((c) => caller(p, c)));
    await expect.poll(() => acknowledged.filter((r) => r.startsWith(`${victim.port}-`)).length, { timeout: 30_000, interval: 5 }).toBeGreaterThan(3);
    victim.child.kill("SIGKILL");
    await Promise.all(burst);
    await victim.exited;
    const survivor = replicas[0]!;
    const events = await connectJson(survivor.url, "rollgate.v1.RolloutService/ListEvents", { name: "burst", limit: 1000 });
    const logged = new Set((events.json as { events: { reason: string }[] }).events.map((e) => e.reason));
    const lost = acknowledged.filter((r) => !logged.has(r));
    expect(lost).toEqual([]);
    expect(acknowledged.length).toBeGreaterThan(10);
    // The rollout's version counts every change in the log, and both survivors agree on it.
    const version = async (p: (typeof replicas)[number]) =>
      Number(((await connectJson(p.url, "rollgate.v1.RolloutService/GetRollout", { name: "burst" })).json as { rollout: { version: string } }).rollout.version);
    await expect.poll(() => version(replicas[2]!), { timeout: 15_000, interval: 50 }).toBe(await version(survivor));
    expect(await version(survivor)).toBe(logged.size);
    expect((await runCli(["--server", survivor.url, "events", "--verify"])).code).toBe(0);
  }, 180_000);

  it("three replicas: kill -9 each in turn, the evaluator included, and the others still roll a bad canary back", async () => {
    const db = await cluster.createDatabase();
    const ids = ["t1", "t2", "t3"];
    const replicas = await Promise.all(ids.map((id) => serve(db, ["--replica-id", id])));
    // The evaluator first, then the others.
    await expect.poll(() => replicas.filter((p) => p.logs.some((l) => l.msg === "became the evaluator")).length, { timeout: 15_000, interval: 20 }).toBe(1);
    const leader = replicas.findIndex((p) => p.logs.some((l) => l.msg === "became the evaluator"));
    const order = [leader, ...[0, 1, 2].filter((i) => i !== leader)];
    for (const round of order) {
      const victim = replicas[round]!;
      victim.child.kill("SIGKILL");
      await victim.exited;
      const alive = replicas.filter((p) => p !== victim);
      const name = `bad-${round}`;
      const created = await connectJson(alive[0]!.url, "rollgate.v1.RolloutService/CreateRollout", {
        rollout: {
          name,
          stableVersion: "v1",
          canaryVersion: "v2",
          gates: [{ name: "errors", minSamples: "40", errorRate: { max: 0.05 } }],
          analysis: { interval: "1s", window: "60s", consecutiveBreaches: 2 },
        },
      });
      expect(created.status).toBe(200);
      for (const p of alive) {
        await expect.poll(async () => (await connectJson(p.url, "rollgate.v1.RolloutService/GetRollout", { name })).status, { timeout: 15_000, interval: 50 }).toBe(200);
      }
      const canary = Array.from({ length: 25 }, (_, i) => ({ variant: "VARIANT_CANARY", success: i >= 8, latencyMs: 20 }));
      const stable = Array.from({ length: 25 }, () => ({ variant: "VARIANT_STABLE", success: true, latencyMs: 18 }));
      for (const p of alive) expect((await connectJson(p.url, "rollgate.v1.DecisionService/RecordOutcome", { rollout: name, outcomes: [...canary, ...stable] })).json).toEqual({ accepted: 50 });
      for (const p of alive) {
        await expect
          .poll(async () => ((await connectJson(p.url, "rollgate.v1.RolloutService/GetRollout", { name })).json as { rollout: { stage: string } }).rollout.stage, {
            timeout: 30_000,
            interval: 100,
          })
          .toBe("STAGE_ROLLED_BACK");
      }
      const events = await connectJson(alive[0]!.url, "rollgate.v1.RolloutService/ListEvents", { name });
      expect((events.json as { events: { type: string }[] }).events.filter((e) => e.type === "EVENT_TYPE_ROLLED_BACK").length).toBe(1);
      // The victim comes back (same replica id) before the next round.
      replicas[round] = await serve(db, ["--replica-id", ids[round]!]);
    }
  }, 300_000);
});
