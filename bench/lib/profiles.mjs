// The profiles of a run: Route's always, the others' when their target is missed.
import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { recordOutcomeFrame, routeBatchFrame, routeFrame, writeBody } from "./bodies.mjs";
import { summarize } from "./cpuprofile.mjs";
import { h2load } from "./h2load.mjs";
import { profileRollgate } from "./profile.mjs";
import { createRollout } from "./rollgate.mjs";
import { benchDir, runClient, runPinned, sleep, SERVER_CORE } from "./util.mjs";

const missed = (rows, prefix) => rows.some((r) => r.id.startsWith(prefix) && !r.met);

async function createMany(port, prefix, n, opts) {
  let next = 0;
  await Promise.all(
    Array.from({ length: 8 }, async () => {
      while (next < n) {
        const i = next++;
        await createRollout(port, `${prefix}${i}`, opts);
      }
    }),
  );
}

/** Runs the profiles the results call for; returns [{title, summary} | {title, error}]. */
export async function profiles({ rows, dir, log, quick }) {
  const jobs = [];
  const seconds = quick ? 1.5 : 3;
  jobs.push({
    title: `Route, gRPC fast path, 64 calls in flight (4 connections × 16), ${seconds} s`,
    setup: (rg) => createRollout(rg.port, "checkout", { interval: "10s", window: "300s" }),
    load: (rg) => h2load({ port: rg.port, path: "/rollgate.v1.DecisionService/Route", body: writeBody(dir, "route.bin", routeFrame("checkout", "user-12345")), clients: 4, inFlight: 16, seconds, warmup: 0 }),
  });
  if (missed(rows, "1a")) {
    jobs.push({
      title: `Reference: bare node:http2 echo under the same load, ${seconds} s`,
      bare: true,
      load: (port) => h2load({ port, path: "/rollgate.v1.DecisionService/Route", body: join(dir, "route.bin"), clients: 4, inFlight: 16, seconds, warmup: 0 }),
    });
  }
  if (missed(rows, "2")) jobs.push({ title: "Bucketing microbenchmark (whole process)", micro: true });
  if (missed(rows, "3")) {
    jobs.push({
      title: `RouteBatch of 1,000 keys, 4 connections × 4 in flight, ${seconds} s`,
      setup: (rg) => createRollout(rg.port, "checkout", { interval: "10s", window: "300s" }),
      load: (rg) => h2load({ port: rg.port, path: "/rollgate.v1.DecisionService/RouteBatch", body: writeBody(dir, "route-batch-1000.bin", routeBatchFrame("checkout", 1000)), clients: 4, inFlight: 4, seconds, warmup: 0 }),
    });
  }
  if (missed(rows, "4")) {
    jobs.push({
      title: `RecordOutcome, batches of 500, 2 connections × 4 in flight, ${seconds} s`,
      setup: (rg) => createRollout(rg.port, "checkout", { interval: "1s", window: "60s" }),
      load: (rg) => h2load({ port: rg.port, path: "/rollgate.v1.DecisionService/RecordOutcome", body: writeBody(dir, "record-500.bin", recordOutcomeFrame("checkout", 500, 7)), clients: 2, inFlight: 4, seconds, warmup: 0 }),
    });
  }
  if (missed(rows, "5")) {
    jobs.push({
      title: "WatchHealth: 1,000 subscribers over 100 rollouts at 1 s, 5 s",
      setup: async (rg) => {
        for (let i = 0; i < 100; i++) await createRollout(rg.port, `w-${i}`, { interval: "1s", window: "30s" });
        await sleep(1200);
      },
      load: (rg) => runClient("watch-health.mjs", [rg.port, "w-", 100, 1000, 10, 5, 1]),
    });
  }
  if (missed(rows, "6a")) {
    jobs.push({
      title: "10,000 idle rollouts evaluated every 10 s, 15 s",
      setup: async (rg) => {
        await createMany(rg.port, "s-", 10_000, { interval: "10s", window: "300s" });
        await sleep(2000);
      },
      load: () => sleep(15_000),
    });
  }

  const out = [];
  for (const job of jobs) {
    log(`  profiling: ${job.title}`);
    try {
      let summary;
      if (job.micro) {
        const pdir = mkdtempSync(join(tmpdir(), "rollgate-prof-"));
        try {
          await runPinned(SERVER_CORE, process.execPath, ["--cpu-prof", "--cpu-prof-dir", pdir, join(benchDir, "clients", "bucketing.mjs"), "1", "300000"], { timeoutMs: 120_000 });
          summary = summarize(join(pdir, readdirSync(pdir).find((f) => f.endsWith(".cpuprofile"))), 15);
        } finally {
          rmSync(pdir, { recursive: true, force: true });
        }
      } else if (job.bare) {
        summary = await profileBare(job.load);
      } else {
        summary = await profileRollgate({ setup: job.setup, load: job.load, top: 15 });
      }
      out.push({ title: job.title, summary });
    } catch (e) {
      out.push({ title: job.title, error: e.message.split("\n")[0] });
    }
  }
  return out;
}

async function profileBare(load) {
  const { startPortServer, stop } = await import("./util.mjs");
  const { monotonicUs } = await import("./cpuprofile.mjs");
  const pdir = mkdtempSync(join(tmpdir(), "rollgate-prof-"));
  try {
    const s = await startPortServer(process.execPath, ["--cpu-prof", "--cpu-prof-dir", pdir, join(benchDir, "refs", "bare-http2.mjs")]);
    const fromUs = monotonicUs();
    await load(s.port);
    const toUs = monotonicUs();
    await stop(s.child);
    return summarize(join(pdir, readdirSync(pdir).find((f) => f.endsWith(".cpuprofile"))), 15, { fromUs, toUs });
  } finally {
    rmSync(pdir, { recursive: true, force: true });
  }
}
