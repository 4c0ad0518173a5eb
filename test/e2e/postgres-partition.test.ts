// The evaluator cut off from PostgreSQL without its connection closing (a partition, a lost
// host): its lock must not outlive it by the kernel's default hours. Replica A runs in a network
// namespace of its own, reaching PostgreSQL over a veth pair; taking the link down cuts it off
// silently (no FIN, no RST). Another replica must take over within seconds, and A must stop
// judging. Needs root (network namespaces); skipped, saying so, otherwise.
import { execFileSync, spawnSync } from "node:child_process";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startPostgres, type PostgresCluster } from "../helpers/postgres.js";
import { spawnServer, type ServerProcess } from "../helpers/servers.js";

const canNetns = process.getuid?.() === 0 && spawnSync("ip", ["netns", "list"]).status === 0;
const tag = String(process.pid % 10000);
const ns = `rgpart${tag}`;
const hostIf = `rgp${tag}h`;
const nsIf = `rgp${tag}n`;
const subnet = `10.231.${process.pid % 250}`;
const hostIp = `${subnet}.1`;
const nsIp = `${subnet}.2`;
const ip = (...args: string[]) => execFileSync("ip", args, { stdio: "pipe" });

let cluster: PostgresCluster;
const running: ServerProcess[] = [];

beforeAll(async () => {
  if (!canNetns) return;
  ip("netns", "add", ns);
  ip("link", "add", hostIf, "type", "veth", "peer", "name", nsIf);
  ip("link", "set", nsIf, "netns", ns);
  ip("addr", "add", `${hostIp}/30`, "dev", hostIf);
  ip("link", "set", hostIf, "up");
  ip("netns", "exec", ns, "ip", "addr", "add", `${nsIp}/30`, "dev", nsIf);
  ip("netns", "exec", ns, "ip", "link", "set", nsIf, "up");
  ip("netns", "exec", ns, "ip", "link", "set", "lo", "up");
  cluster = await startPostgres({ listen: [hostIp], hba: [`host all all ${subnet}.0/30 trust`] });
});

afterAll(() => {
  for (const p of running.splice(0)) p.child.kill("SIGKILL");
  cluster?.stop();
  if (!canNetns) return;
  spawnSync("ip", ["link", "del", hostIf]);
  spawnSync("ip", ["netns", "del", ns]);
});

const msgs = (p: ServerProcess) => p.logs.map((l) => l.msg);

describe.skipIf(!canNetns)("the evaluator partitioned away from PostgreSQL", () => {
  it("loses its lock within seconds: another replica takes over, and the partitioned one stops judging", async () => {
    const db = await cluster.createDatabase();
    const viaVeth = db.replace("127.0.0.1", hostIp);
    // A first, so that it is the evaluator; it listens on its namespace's own loopback.
    const a = await spawnServer(["--listen", "127.0.0.1:0", "--db", viaVeth, "--replica-id", "a"], {}, ["ip", "netns", "exec", ns]);
    running.push(a);
    await expect.poll(() => msgs(a).includes("became the evaluator"), { timeout: 15_000, interval: 50 }).toBe(true);
    const b = await spawnServer(["--listen", "127.0.0.1:0", "--db", db, "--replica-id", "b"]);
    running.push(b);
    await new Promise((r) => setTimeout(r, 1500));
    expect(msgs(b)).not.toContain("became the evaluator");

    // The cut: no packet passes any more, and no side is told.
    const cutAt = Date.now();
    ip("link", "set", hostIf, "down");
    await expect.poll(() => msgs(b).includes("became the evaluator"), { timeout: 30_000, interval: 50 }).toBe(true);
    const tookOver = (b.logs.find((l) => l.msg === "became the evaluator")!.time as number) - cutAt;
    await expect.poll(() => msgs(a).includes("no longer the evaluator"), { timeout: 30_000, interval: 50 }).toBe(true);
    const steppedDown = (a.logs.find((l) => l.msg === "no longer the evaluator")!.time as number) - cutAt;
    console.log(`partition: the other replica took over after ${tookOver} ms; the partitioned one stopped judging after ${steppedDown} ms`);

    // Healed: A comes back as a follower; B keeps the lock.
    ip("link", "set", hostIf, "up");
    await new Promise((r) => setTimeout(r, 3000));
    expect(a.logs.filter((l) => l.msg === "became the evaluator").length).toBe(1);
    expect(a.child.exitCode).toBeNull();
    expect(b.logs.filter((l) => l.msg === "no longer the evaluator").length).toBe(0);
  }, 90_000);
});
