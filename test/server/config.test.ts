import { spawn } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { ConfigError, keepaliveMsOf, loadConfig, parseBoolean } from "../../src/server/config.js";
import { cliPath, spawnServer, tempDir, type ServerProcess } from "../helpers/servers.js";

const tmps: ReturnType<typeof tempDir>[] = [];
const running: ServerProcess[] = [];
afterEach(() => {
  for (const p of running.splice(0)) p.child.kill("SIGKILL");
  for (const t of tmps.splice(0)) t.cleanup();
});
function dir(): string {
  const t = tempDir();
  tmps.push(t);
  return t.dir;
}

/** Runs `rollgate serve` expecting it to stop at start; resolves with its exit code and stderr. */
function serveFails(args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [cliPath, "serve", "--listen", "127.0.0.1:0", ...args], {
      env: { ...process.env, LOG_LEVEL: "silent", ...env },
      stdio: ["ignore", "ignore", "pipe"],
    });
    let stderr = "";
    child.stderr.setEncoding("utf8").on("data", (s: string) => (stderr += s));
    const killer = setTimeout(() => child.kill("SIGKILL"), 20_000);
    child.once("exit", (code) => {
      clearTimeout(killer);
      resolve({ code, stderr });
    });
  });
}

describe("boolean settings", () => {
  it("read every spelling of on and off, any case, and nothing else", () => {
    for (const v of ["1", "true", "TRUE", "yes", "on", "On"]) expect(parseBoolean("X", v)).toBe(true);
    for (const v of ["0", "false", "no", "off", "OFF"]) expect(parseBoolean("X", v)).toBe(false);
    expect(parseBoolean("X", undefined)).toBeUndefined();
    expect(parseBoolean("X", "")).toBeUndefined();
    expect(() => parseBoolean("ROLLGATE_X", "maybe")).toThrow(new ConfigError('ROLLGATE_X: "maybe" must be one of on, off, true, false, yes, no, 1, 0'));
  });

  it("are validated the same way for ROLLGATE_INSECURE and ROLLGATE_GRPC_FAST_PATH, even under a flag", () => {
    const db = join(dir(), "r.db");
    expect(() => loadConfig({ db }, { ROLLGATE_INSECURE: "maybe" })).toThrow(/^ROLLGATE_INSECURE: "maybe" must be one of/);
    expect(() => loadConfig({ db }, { ROLLGATE_GRPC_FAST_PATH: "nah" })).toThrow(/^ROLLGATE_GRPC_FAST_PATH: "nah" must be one of/);
    expect(() => loadConfig({ db, insecure: true }, { ROLLGATE_INSECURE: "maybe" })).toThrow(/ROLLGATE_INSECURE/);
    expect(loadConfig({ db, listen: "0.0.0.0:0" }, { ROLLGATE_INSECURE: "on" }).insecure).toBe(true);
    expect(loadConfig({ db }, { ROLLGATE_INSECURE: "no" }).insecure).toBe(false);
    expect(loadConfig({ db }, { ROLLGATE_GRPC_FAST_PATH: "no" }).grpcFastPath).toBe(false);
    expect(loadConfig({ db }, {}).grpcFastPath).toBe(true);
  });

  it("stop the server process with exit 2 and a message naming the variable", async () => {
    const r = await serveFails(["--db", join(dir(), "r.db")], { ROLLGATE_INSECURE: "maybe" });
    expect(r.code).toBe(2);
    expect(r.stderr).toBe('rollgate serve: ROLLGATE_INSECURE: "maybe" must be one of on, off, true, false, yes, no, 1, 0\n');
  });
});

describe("the HTTP/2 keep-alive setting", () => {
  it("takes a duration from flag or environment, 15 s by default, 0 for off", () => {
    const db = join(dir(), "rollgate.db");
    expect(loadConfig({ db }, {}).http2KeepaliveMs).toBe(15_000);
    expect(loadConfig({ db }, { ROLLGATE_HTTP2_KEEPALIVE: "2s" }).http2KeepaliveMs).toBe(2000);
    expect(loadConfig({ db, http2Keepalive: "500ms" }, { ROLLGATE_HTTP2_KEEPALIVE: "2s" }).http2KeepaliveMs).toBe(500);
    expect(keepaliveMsOf("1m")).toBe(60_000);
    expect(keepaliveMsOf("0")).toBe(0);
    expect(keepaliveMsOf("0s")).toBe(0);
  });
  it("refuses what is not a duration from 100 ms to 1 h, naming the setting", () => {
    for (const bad of ["15", "fast", "50ms", "2h", "-1s", "1.5s"]) {
      expect(() => keepaliveMsOf(bad)).toThrow(ConfigError);
      expect(() => keepaliveMsOf(bad)).toThrow(/--http2-keepalive\/ROLLGATE_HTTP2_KEEPALIVE/);
    }
  });
});

describe("the database setting", () => {
  it("refuses a directory, naming the setting and the path", async () => {
    const d = dir();
    expect(() => loadConfig({ db: d }, {})).toThrow(new ConfigError(`--db/ROLLGATE_DB: ${d} is a directory; give the path of the database file, e.g. ${d}/rollgate.db`));
    const r = await serveFails([], { ROLLGATE_DB: d });
    expect(r.code).toBe(2);
    expect(r.stderr).toBe(`rollgate serve: --db/ROLLGATE_DB: ${d} is a directory; give the path of the database file, e.g. ${d}/rollgate.db\n`);
  });

  it("refuses a file that is not an SQLite database, naming the setting and the path", async () => {
    const file = join(dir(), "notes.txt");
    writeFileSync(file, "these are not the tables you are looking for\n");
    const r = await serveFails([], { ROLLGATE_DB: file });
    expect(r.code).toBe(2);
    expect(r.stderr).toBe(`rollgate serve: --db/ROLLGATE_DB: ${file} is not an SQLite database (its first bytes are not "SQLite format 3")\n`);
  });

  it("names the setting and the path when SQLite itself cannot open the file", async () => {
    // The right first bytes, then garbage: only SQLite can tell.
    const file = join(dir(), "broken.db");
    writeFileSync(file, Buffer.concat([Buffer.from("SQLite format 3\0", "latin1"), Buffer.alloc(4096, 0xff)]));
    const r = await serveFails(["--db", file]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(new RegExp(`^rollgate serve: --db/ROLLGATE_DB: cannot open the SQLite database ${file}: \\w.+\n$`));
  });

  it("accepts a missing file (created at start) and an empty one", () => {
    const d = dir();
    expect(loadConfig({ db: join(d, "sub", "new.db") }, {}).dbPath).toBe(join(d, "sub", "new.db"));
    mkdirSync(join(d, "x"));
    writeFileSync(join(d, "x", "empty.db"), "");
    expect(loadConfig({ db: join(d, "x", "empty.db") }, {}).dbPath).toBe(join(d, "x", "empty.db"));
  });
});

describe("the no-tokens warning", () => {
  it("says loopback only on a loopback address", async () => {
    const p = await spawnServer(["--listen", "127.0.0.1:0", "--db", join(dir(), "r.db")]);
    running.push(p);
    const warn = p.logs.find((l) => l.level === 40);
    expect(warn?.msg).toBe("no tokens configured: every caller is the local admin; serving loopback only");
  });

  it("says every address is served without authentication with --insecure on 0.0.0.0", async () => {
    const p = await spawnServer(["--listen", "0.0.0.0:0", "--insecure", "--db", join(dir(), "r.db")]);
    running.push(p);
    const warn = p.logs.find((l) => l.level === 40);
    expect(warn?.msg).toBe("no tokens configured and --insecure: serving every address of this host without authentication; every caller is the admin");
    expect(JSON.stringify(p.logs)).not.toContain("loopback only");
  });
});
