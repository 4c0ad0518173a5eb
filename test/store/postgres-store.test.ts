// The PostgreSQL store against a real PostgreSQL started for this file: the shared Store
// contract, then what only several writers on one database can show.
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { verifyChain } from "../../src/domain/audit-chain.js";
import { DomainError } from "../../src/domain/errors.js";
import { setWeight } from "../../src/domain/rollout-machine.js";
import { POSTGRES_MIGRATIONS } from "../../src/store/postgres-migrations.js";
import { openPostgresStore, redactUrl, type ChangeNotice, type PostgresStore } from "../../src/store/postgres-store.js";
import { startPostgres, freePort, type PostgresCluster } from "../helpers/postgres.js";
import { rolloutFixture } from "../helpers/rollouts.js";
import { repoRoot } from "../helpers/servers.js";
import { event, storeContract } from "./store-contract.js";

let cluster: PostgresCluster;
beforeAll(async () => {
  cluster = await startPostgres();
});
afterAll(() => cluster?.stop());

const open = async (url: string, replicaId = "r1"): Promise<PostgresStore> => openPostgresStore({ url, replicaId });
const fresh = async (replicaId = "r1") => open(await cluster.createDatabase(), replicaId);

/** Runs SQL on a database directly, as an operator with psql would. */
async function sql(url: string, text: string): Promise<pg.QueryResult> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    return await c.query(text);
  } finally {
    await c.end();
  }
}

storeContract("postgres", () => fresh());

describe("postgres store", () => {
  it("records the schema version and refuses a database from a newer rollgate", async () => {
    const url = await cluster.createDatabase();
    await (await open(url)).close();
    expect((await sql(url, "SELECT version FROM schema_version")).rows).toEqual([{ version: POSTGRES_MIGRATIONS.length }]);
    // Opening again applies nothing and keeps the data.
    const again = await open(url);
    await again.commit({ put: rolloutFixture(), events: [event("checkout", "c")] });
    await again.close();
    const third = await open(url);
    expect((await third.loadRollouts()).map((s) => s.rollout.name)).toEqual(["checkout"]);
    await third.close();
    await sql(url, `UPDATE schema_version SET version = ${POSTGRES_MIGRATIONS.length + 1}`);
    await expect(open(url)).rejects.toThrow(/newer than this rollgate understands/);
  });

  it("makes the event log append-only through SQL", async () => {
    const url = await cluster.createDatabase();
    const store = await open(url);
    await store.commit({ events: [event("a", "1")] });
    await expect(sql(url, "UPDATE events SET reason = 'x'")).rejects.toThrow(/append-only/);
    await expect(sql(url, "DELETE FROM events")).rejects.toThrow(/append-only/);
    await expect(sql(url, "TRUNCATE events")).rejects.toThrow(/append-only/);
    expect((await store.listEvents({ afterSeq: 0, limit: 10 })).map((e) => e.reason)).toEqual(["1"]);
    await store.close();
  });

  it("keeps one valid hash chain when two stores on one database commit at once", async () => {
    const url = await cluster.createDatabase();
    const [a, b] = [await open(url, "a"), await open(url, "b")];
    const burst = (store: PostgresStore, who: string) =>
      Array.from({ length: 40 }, (_, i) =>
        store.commit({ events: [event(i % 2 === 0 ? "x" : "y", `${who}${i}`), event("z", `${who}${i}`)] }),
      );
    const results = await Promise.all([...burst(a, "a"), ...burst(b, "b")]);
    const seqs = results.flat().map((e) => e.seq);
    expect(seqs.length).toBe(160);
    expect(new Set(seqs).size).toBe(160);
    const log = await a.listEvents({ afterSeq: 0, limit: 1000 });
    expect(log.map((e) => e.seq)).toEqual(Array.from({ length: 160 }, (_, i) => i + 1));
    expect(verifyChain(log).ok).toBe(true);
    // Each commit's events are consecutive: nothing of another writer between them.
    for (const r of results) expect(r[1]!.seq).toBe(r[0]!.seq + 1);
    expect(await b.lastSeq()).toBe(160);
    await Promise.all([a.close(), b.close()]);
  });

  it("lets exactly one of two stores apply a change to the same version", async () => {
    const url = await cluster.createDatabase();
    const [a, b] = [await open(url, "a"), await open(url, "b")];
    const v1 = rolloutFixture();
    await a.commit({ put: v1, events: [event("checkout", "created")] });
    const actor = { name: "op", now: 2 };
    for (let round = 0; round < 10; round++) {
      const [current] = await a.loadRollouts();
      const base = current!.rollout;
      const tries = await Promise.allSettled([
        a.commit({ put: setWeight(base, 100 + round, actor).rollout, events: [event("checkout", `a${round}`)] }),
        b.commit({ put: setWeight(base, 200 + round, actor).rollout, events: [event("checkout", `b${round}`)] }),
        a.commit({ put: setWeight(base, 300 + round, actor).rollout, expectedVersion: base.version, events: [event("checkout", `c${round}`)] }),
      ]);
      expect(tries.filter((t) => t.status === "fulfilled").length).toBe(1);
      for (const t of tries) {
        if (t.status === "rejected") {
          expect(t.reason).toBeInstanceOf(DomainError);
          expect((t.reason as DomainError).kind).toBe("aborted");
        }
      }
      const [after] = await b.loadRollouts();
      expect(after!.rollout.version).toBe(base.version + 1);
    }
    // Creating the same rollout twice at once: one wins, the other is told it exists.
    const created = await Promise.allSettled([
      a.commit({ put: rolloutFixture({ name: "twice" }), events: [event("twice", "a")] }),
      b.commit({ put: rolloutFixture({ name: "twice" }), events: [event("twice", "b")] }),
    ]);
    expect(created.filter((t) => t.status === "fulfilled").length).toBe(1);
    expect(created.map((t) => (t.status === "rejected" ? (t.reason as DomainError).kind : "ok")).sort()).toEqual(["already_exists", "ok"]);
    const log = await a.listEvents({ afterSeq: 0, limit: 100 });
    expect(log.length).toBe(1 + 10 + 1);
    expect(verifyChain(log).ok).toBe(true);
    await Promise.all([a.close(), b.close()]);
  });

  it("keys window buckets by replica; a cleared or expired window is so for every replica", async () => {
    const url = await cluster.createDatabase();
    const [a, b] = [await open(url, "a"), await open(url, "b")];
    await a.commit({ put: rolloutFixture(), events: [] });
    const bucket = (startMs: number, byte: number, variant: "stable" | "canary" = "canary") => ({
      rollout: "checkout",
      variant,
      startMs,
      data: new Uint8Array([byte]),
    });
    await a.flushWindows({ buckets: [bucket(1000, 1), bucket(2000, 2), bucket(1000, 7, "stable")], cleared: [], analysis: [] });
    await b.flushWindows({ buckets: [bucket(1000, 3), bucket(3000, 4)], cleared: [], analysis: [] });
    const bytes = async (s: PostgresStore) => (await s.loadWindowBuckets()).map((r) => `${r.variant}@${r.startMs}=${r.data[0]}`).sort();
    expect(await bytes(a)).toEqual(["canary@1000=1", "canary@2000=2", "stable@1000=7"]);
    expect(await bytes(b)).toEqual(["canary@1000=3", "canary@3000=4"]);
    await b.flushWindows({ buckets: [], cleared: [], analysis: [], expired: [{ rollout: "checkout", variant: "canary", beforeMs: 1500 }] });
    expect(await bytes(a)).toEqual(["canary@2000=2", "stable@1000=7"]);
    expect(await bytes(b)).toEqual(["canary@3000=4"]);
    await a.flushWindows({ buckets: [], cleared: [{ rollout: "checkout", variant: "canary" }], analysis: [] });
    expect(await bytes(a)).toEqual(["stable@1000=7"]);
    expect(await bytes(b)).toEqual([]);
    await Promise.all([a.close(), b.close()]);
  });

  it("a replica that is not the evaluator clears only its own buckets and never writes the evaluator state", async () => {
    const url = await cluster.createDatabase();
    const [a, b] = [await open(url, "a"), await open(url, "b")];
    await a.commit({ put: rolloutFixture(), events: [] });
    const [la, lb] = [a.leadership(), b.leadership()];
    expect(await la.tryAcquire()).toBe(true);
    expect(await lb.tryAcquire()).toBe(false);
    const bucket = (startMs: number, byte: number) => ({ rollout: "checkout", variant: "canary" as const, startMs, data: new Uint8Array([byte]) });
    await a.flushWindows({ buckets: [bucket(1000, 1)], cleared: [], analysis: [{ rollout: "checkout", state: '{"by":"a"}' }] });
    await b.flushWindows({ buckets: [bucket(1000, 2)], cleared: [], analysis: [] });
    const bytes = async (s: PostgresStore) => (await s.loadWindowBuckets()).map((r) => `${r.startMs}=${r.data[0]}`);
    const analysis = async () => (await a.loadRollouts())[0]?.analysis;
    // B applies a change that starts the canary afresh: its own window, its own fresh state.
    await b.flushWindows({ buckets: [bucket(2000, 3)], cleared: [{ rollout: "checkout", variant: "canary" }], analysis: [{ rollout: "checkout", state: '{"by":"b"}' }] });
    expect(await bytes(a)).toEqual(["1000=1"]);
    expect(await bytes(b)).toEqual(["2000=3"]);
    expect(await analysis()).toBe('{"by":"a"}');
    // The evaluator's clear empties every replica's window.
    await a.flushWindows({ buckets: [], cleared: [{ rollout: "checkout", variant: "canary" }], analysis: [{ rollout: "checkout", state: '{"by":"a2"}' }] });
    expect(await bytes(a)).toEqual([]);
    expect(await bytes(b)).toEqual([]);
    expect(await analysis()).toBe('{"by":"a2"}');
    // When B becomes the evaluator it writes them.
    await la.release();
    expect(await lb.tryAcquire()).toBe(true);
    await b.flushWindows({ buckets: [], cleared: [], analysis: [{ rollout: "checkout", state: '{"by":"b"}' }] });
    expect(await analysis()).toBe('{"by":"b"}');
    await lb.release();
    await Promise.all([a.close(), b.close()]);
  });

  it("applies the migrations once when several processes open a new database at once", async () => {
    const module = join(repoRoot, "dist", "src", "store", "postgres-store.js");
    expect(existsSync(module), `${module} is missing: run npx tsc -b first (npm test does)`).toBe(true);
    const url = await cluster.createDatabase();
    const script =
      `const { openPostgresStore } = await import(${JSON.stringify(module)});` +
      `const s = await openPostgresStore({ url: process.env.DB, replicaId: "p" + process.pid });` +
      `const e = await s.commit({ events: [{ timeNs: 1n, rollout: "m", type: "updated", actor: "p", reason: String(process.pid), fingerprint: "", snapshot: "{}" }] });` +
      `console.log(e[0].seq); await s.close();`;
    const run = () =>
      new Promise<string>((resolve, reject) => {
        const child = spawn(process.execPath, ["--input-type=module", "-e", script], { env: { ...process.env, DB: url } });
        let out = "";
        let err = "";
        child.stdout.on("data", (d: Buffer) => (out += d.toString()));
        child.stderr.on("data", (d: Buffer) => (err += d.toString()));
        child.on("exit", (code) => (code === 0 ? resolve(out.trim()) : reject(new Error(`exit ${code}: ${err}`))));
      });
    const seqs = await Promise.all(Array.from({ length: 6 }, run));
    expect(seqs.map(Number).sort((x, y) => x - y)).toEqual([1, 2, 3, 4, 5, 6]);
    expect((await sql(url, "SELECT version FROM schema_version")).rows).toEqual([{ version: POSTGRES_MIGRATIONS.length }]);
    const store = await open(url);
    expect(verifyChain(await store.listEvents({ afterSeq: 0, limit: 10 })).ok).toBe(true);
    await store.close();
  });

  it("gives up on an unreachable database after a bounded, reported retry", async () => {
    const port = await freePort();
    const retries: number[] = [];
    const url = `postgresql://rollgate:s3cret@127.0.0.1:${port}/rollgate`;
    const err = await openPostgresStore({ url, replicaId: "r", connectAttempts: 3, retryDelayMs: 10, onRetry: (n) => retries.push(n) }).then(
      () => undefined,
      (e: Error) => e,
    );
    expect(err?.message).toMatch(new RegExp(`cannot reach PostgreSQL at postgresql://rollgate:\\*\\*\\*@127\\.0\\.0\\.1:${port}/rollgate after 3 attempt`));
    expect(err?.message).not.toContain("s3cret");
    expect(retries).toEqual([1, 2]);
    expect(redactUrl("postgres://u:p@h/d")).toBe("postgres://u:***@h/d");
    expect(redactUrl("postgres://u@h:5432/d?sslmode=disable&password=s3cret&x=1")).toBe("postgres://u@h:5432/d?sslmode=disable&password=***&x=1");
    expect(redactUrl("postgresql://u:p@h/d?PASSWORD=a&sslpassword=b")).toBe("postgresql://u:***@h/d?PASSWORD=***&sslpassword=***");
    // The port is not taken for a password.
    expect(redactUrl("postgres://h:5432/d?application_name=a@b")).toBe("postgres://h:5432/d?application_name=a@b");
  });

  it("answers unavailable while the database is down and works again once it is back, without reopening", async () => {
    const url = await cluster.createDatabase();
    const store = await open(url);
    await store.commit({ put: rolloutFixture(), events: [event("checkout", "before")] });
    cluster.kill();
    try {
      const down = await store.commit({ events: [event("checkout", "during")] }).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(down).toBeInstanceOf(DomainError);
      expect((down as DomainError).kind).toBe("unavailable");
      await expect(store.lastSeq()).rejects.toThrow(/unavailable/);
    } finally {
      cluster.start();
    }
    await store.commit({ events: [event("checkout", "after")] });
    const log = await store.listEvents({ afterSeq: 0, limit: 10 });
    expect(log.map((e) => e.reason)).toEqual(["before", "after"]);
    expect(verifyChain(log).ok).toBe(true);
    await store.close();
  });

  it("tells every watcher of each committed change, and of a reconnect after the database came back", async () => {
    const url = await cluster.createDatabase();
    const [a, b] = [await open(url, "a"), await open(url, "b")];
    const seen: ChangeNotice[] = [];
    let reconnects = 0;
    const watch = b.watchChanges((c) => seen.push(c), () => reconnects++);
    await watch.ready;
    const until = async (what: () => boolean) => {
      for (let i = 0; i < 200 && !what(); i++) await new Promise((r) => setTimeout(r, 25));
      expect(what()).toBe(true);
    };
    await a.commit({ put: rolloutFixture(), events: [event("checkout", "created")] });
    await until(() => seen.length === 1);
    expect(seen[0]).toEqual({ rollout: "checkout", seq: 1, replica: "a" });
    // A failed commit notifies nothing.
    await expect(a.commit({ put: rolloutFixture(), events: [event("checkout", "again")] })).rejects.toThrow(/already exists/);
    cluster.kill();
    cluster.start();
    await until(() => reconnects === 1);
    await a.commit({ events: [event("checkout", "after")] });
    await until(() => seen.length === 2);
    expect(seen[1]).toEqual({ rollout: "checkout", seq: 2, replica: "a" });
    await watch.close();
    await Promise.all([a.close(), b.close()]);
  });

  it("lets one replica at a time hold the evaluator's lock, and another take it when the holder goes", async () => {
    const url = await cluster.createDatabase();
    const [a, b, c] = [await open(url, "a"), await open(url, "b"), await open(url, "c")];
    const [la, lb, lc] = [a.leadership(), b.leadership(), c.leadership()];
    const first = await Promise.all([la.tryAcquire(), lb.tryAcquire(), lc.tryAcquire()]);
    expect(first.filter(Boolean).length).toBe(1);
    const holder = [la, lb, lc][first.indexOf(true)]!;
    expect(holder.held).toBe(true);
    expect(await holder.tryAcquire()).toBe(true);
    await holder.release();
    expect(holder.held).toBe(false);
    const others = [la, lb, lc].filter((l) => l !== holder);
    expect((await Promise.all(others.map((l) => l.tryAcquire()))).filter(Boolean).length).toBe(1);
    const next = others.find((l) => l.held)!;
    // The holder's session dies (as when its process is killed): the lock is free again.
    await sql(url, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name LIKE '% leader'");
    for (let i = 0; i < 100 && next.held; i++) await new Promise((r) => setTimeout(r, 20));
    expect(next.held).toBe(false);
    const third = await Promise.all([la, lb, lc].map((l) => l.tryAcquire()));
    expect(third.filter(Boolean).length).toBe(1);
    await Promise.all([la, lb, lc].map((l) => l.release()));
    await Promise.all([a.close(), b.close(), c.close()]);
  });

  it("reads the other replicas' window buckets and pings the database", async () => {
    const url = await cluster.createDatabase();
    const [a, b] = [await open(url, "a"), await open(url, "b")];
    await a.commit({ put: rolloutFixture(), events: [] });
    const bucket = { rollout: "checkout", variant: "canary" as const, startMs: 1000, data: new Uint8Array([5]) };
    await a.flushWindows({ buckets: [bucket], cleared: [], analysis: [] });
    await b.flushWindows({ buckets: [{ ...bucket, data: new Uint8Array([6]) }], cleared: [], analysis: [] });
    expect((await b.loadPeerWindowBuckets()).map((r) => [r.replica, r.startMs, r.data[0]])).toEqual([["a", 1000, 5]]);
    expect((await a.loadPeerWindowBuckets()).map((r) => [r.replica, r.startMs, r.data[0]])).toEqual([["b", 1000, 6]]);
    await a.ping();
    await Promise.all([a.close(), b.close()]);
  });
});
