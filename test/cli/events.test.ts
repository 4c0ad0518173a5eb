import Database from "better-sqlite3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { join } from "node:path";
import { spawnServer, startTestServer, tempDir, type ServerProcess, type TestServer } from "../helpers/servers.js";
import { runCli, startCli } from "./run-cli.js";

let server: TestServer;
let rollgate: (args: string[], stdin?: string) => ReturnType<typeof runCli>;
beforeAll(async () => {
  server = await startTestServer();
  rollgate = (args, stdin) => runCli(["--server", server.url, ...args], stdin === undefined ? {} : { stdin });
});
afterAll(async () => {
  await server.stop();
});

async function history(name: string): Promise<void> {
  const steps = [
    ["apply", "-f", "-"],
    ["pause", name, "--reason", "hold on"],
    ["resume", name, "--reason", "go on"],
    ["set-weight", name, "20%", "--reason", "more"],
    ["feature", name, "beta", "on", "--reason", "try beta"],
  ];
  for (const args of steps) {
    const r = await rollgate(args, `name: ${name}\nstableVersion: v1\ncanaryVersion: v2\n`);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
  }
}

describe("rollgate events", () => {
  it("lists a rollout's audit log, as lines or as JSON", async () => {
    await history("audited");
    const r = await rollgate(["events", "audited"]);
    expect(r.code).toBe(0);
    const lines = r.stdout.trimEnd().split("\n");
    expect(lines.map((l) => l.trim().split(/\s{2,}/)[2])).toEqual(["created", "paused", "resumed", "weight_changed", "feature_changed"]);
    expect(lines[1]).toMatch(/^\s+\d+\s+\d{4}-\d\d-\d\dT[\d:.]+Z\s+paused\s+local\s+hold on$/);
    const json = JSON.parse((await rollgate(["events", "audited", "-o", "json"])).stdout) as { seq: string; type: string; hash: string; prevHash: string }[];
    expect(json).toHaveLength(5);
    expect(json[0]!.prevHash).toBe("");
    expect(json[1]!.prevHash).toBe(json[0]!.hash);
    const later = JSON.parse((await rollgate(["events", "audited", "--after", json[2]!.seq, "-o", "json"])).stdout) as unknown[];
    expect(later).toHaveLength(2);
  });

  it("without a name lists every rollout's events under a header, with a rollout column (also with --follow)", async () => {
    await history("mixed-a");
    expect((await rollgate(["apply", "-f", "-"], "name: mixed-bb\nstableVersion: v1\ncanaryVersion: v2\n")).code).toBe(0);
    const r = await rollgate(["events"]);
    expect(r.code).toBe(0);
    const lines = r.stdout.trimEnd().split("\n");
    expect(lines[0]).toMatch(/^\s+SEQ {2}TIME\s+ROLLOUT\s+TYPE\s+ACTOR\s+REASON$/);
    const rows = lines.slice(1).map((l) => l.trim().split(/\s{2,}/));
    const of = (name: string) => rows.filter((c) => c[2] === name).map((c) => c[3]);
    expect(of("mixed-a")).toEqual(["created", "paused", "resumed", "weight_changed", "feature_changed"]);
    expect(of("mixed-bb")).toEqual(["created"]);
    // Every row has all six columns, aligned under the header.
    expect(rows.every((c) => c.length === 6)).toBe(true);
    const column = lines[0]!.indexOf("TYPE");
    expect(lines.slice(1).every((l) => /\S/.test(l[column]!) && l[column - 1] === " ")).toBe(true);

    const follow = startCli(["--server", server.url, "events", "--follow"]);
    try {
      await follow.waitFor(/^\s+SEQ {2}TIME\s+ROLLOUT\s+TYPE/);
      await follow.waitFor(/ mixed-bb\s+created\s+local\s+apply: created\n/);
      expect((await rollgate(["halt", "mixed-a", "--reason", "stop a"])).code).toBe(0);
      await follow.waitFor(/ mixed-a\s+halted\s+local\s+stop a\n/);
    } finally {
      follow.child.kill("SIGINT");
    }
    expect((await follow.exited).code).toBe(0);
  }, 90_000); // many CLI processes, each a second or two to start on a loaded machine

  it("--verify recomputes the hash chain: intact exits 0; a tampered row is found, named, and exits 1", async () => {
    await history("tampered");
    await history("bystander");
    const ok = await rollgate(["events", "tampered", "--verify"]);
    expect(ok).toMatchObject({ code: 0, stdout: "hash chain intact: 5 events verified\n" });
    const all = await rollgate(["events", "--verify"]);
    expect(all.code).toBe(0);

    const events = JSON.parse((await rollgate(["events", "tampered", "-o", "json"])).stdout) as { seq: string; reason: string }[];
    const victim = events[3]!;
    // A second connection to the live WAL database, as an intruder with file access would have.
    const db = new Database(server.dbPath);
    try {
      db.exec("DROP TRIGGER events_no_update");
      const changed = db.prepare("UPDATE events SET reason = ? WHERE seq = ?").run("nothing to see here", Number(victim.seq));
      expect(changed.changes).toBe(1);
    } finally {
      db.close();
    }
    const shown = JSON.parse((await rollgate(["events", "tampered", "-o", "json"])).stdout) as { reason: string }[];
    expect(shown[3]!.reason).toBe("nothing to see here");

    const broken = await rollgate(["events", "tampered", "--verify"]);
    expect(broken.code).toBe(1);
    expect(broken.stdout).toMatch(new RegExp(`^hash chain broken at seq ${victim.seq}: hash [0-9a-f]{64} does not match its content \\(recomputed [0-9a-f]{64}\\) \\(3 events before it verified\\)\\n$`));
    const asJson = await rollgate(["events", "tampered", "--verify", "-o", "json"]);
    expect(asJson.code).toBe(1);
    expect(JSON.parse(asJson.stdout)).toMatchObject({ ok: false, checked: 3, seq: Number(victim.seq) });
    // The other rollout's chain is untouched.
    expect((await rollgate(["events", "bystander", "--verify"])).code).toBe(0);
    expect((await rollgate(["events", "--verify"])).code).toBe(1);
  });

  it("--follow prints the backlog, then each new event as it is appended, until interrupted", async () => {
    await history("followed");
    const follow = startCli(["--server", server.url, "events", "followed", "--follow"]);
    try {
      await follow.waitFor(/feature_changed\s+local\s+try beta\n/);
      expect((await rollgate(["halt", "followed", "--reason", "stop the line"])).code).toBe(0);
      await follow.waitFor(/halted\s+local\s+stop the line\n/);
      expect((await rollgate(["resume", "followed", "--reason", "all clear"])).code).toBe(0);
      await follow.waitFor(/resumed\s+local\s+all clear\n/);
    } finally {
      follow.child.kill("SIGINT");
    }
    const done = await follow.exited;
    expect(done.code).toBe(0);
    expect(done.stdout.trimEnd().split("\n")).toHaveLength(7);
  });

  it("--follow reconnects after the stream breaks (server killed with -9, then back), losing and repeating nothing", async () => {
    const tmp = tempDir();
    const db = join(tmp.dir, "rollgate.db");
    const servers: ServerProcess[] = [];
    try {
      const first = await spawnServer(["--listen", "127.0.0.1:0", "--db", db]);
      servers.push(first);
      const url = `http://127.0.0.1:${first.port}`;
      const cli = (args: string[], stdin?: string) => runCli(["--server", url, ...args], stdin === undefined ? {} : { stdin });
      expect((await cli(["apply", "-f", "-"], "name: phoenix\nstableVersion: v1\ncanaryVersion: v2\n")).code).toBe(0);
      const follow = startCli(["--server", url, "events", "phoenix", "--follow"]);
      try {
        await follow.waitFor(/created\s+local/);
        expect((await cli(["pause", "phoenix", "--reason", "before the crash"])).code).toBe(0);
        await follow.waitFor(/paused\s+local\s+before the crash\n/);
        first.child.kill("SIGKILL");
        await first.exited;
        await expect.poll(() => follow.errors(), { timeout: 20_000 }).toMatch(/^rollgate events: stream broke \(\w+: .*\); reconnecting$/m);
        // The same address and database, as a restarted server would have.
        servers.push(await spawnServer(["--listen", `127.0.0.1:${first.port}`, "--db", db]));
        expect((await cli(["resume", "phoenix", "--reason", "after the crash"])).code).toBe(0);
        await follow.waitFor(/resumed\s+local\s+after the crash\n/);
      } finally {
        follow.child.kill("SIGINT");
      }
      const done = await follow.exited;
      expect(done.code).toBe(0);
      expect(done.stdout.trimEnd().split("\n").map((l) => l.trim().split(/\s{2,}/)[2])).toEqual(["created", "paused", "resumed"]);
    } finally {
      for (const s of servers) s.child.kill("SIGKILL");
      tmp.cleanup();
    }
  }, 90_000); // many CLI processes, each a second or two to start on a loaded machine

  it("refuses --verify with --follow or --after (exit 2)", async () => {
    expect((await rollgate(["events", "x", "--verify", "--follow"])).code).toBe(2);
    expect((await rollgate(["events", "x", "--verify", "--after", "3"])).code).toBe(2);
    expect((await rollgate(["events", "x", "--after", "three"])).code).toBe(2);
  });
});
