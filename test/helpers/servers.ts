import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { createInterface } from "node:readline";
import { pino } from "pino";
import type { Clock } from "../../src/domain/clock.js";
import { loadConfig, type ServerFlags, type TokenEntry } from "../../src/server/config.js";
import { startServer, type RunningServer } from "../../src/server/server.js";

/** The repository root. */
export const repoRoot = fileURLToPath(new URL("../../", import.meta.url));

/** Returns a fresh temporary directory, removed by `cleanup`. */
export function tempDir(prefix = "rollgate-test-"): { dir: string; cleanup(): void } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** Bearer tokens the tests use: one per role below admin. */
export const TEST_TOKENS: readonly TokenEntry[] = [
  { name: "deployer", token: "operator-token-0123456789", role: "operator" },
  { name: "app", token: "reporter-token-0123456789", role: "reporter" },
  { name: "dash", token: "reader-token-01234567890", role: "reader" },
];

/** A server running in this process on a free port, with its own temporary database. */
export interface TestServer extends RunningServer {
  readonly dbPath: string;
  /** Stops the server and removes its database. */
  stop(): Promise<void>;
}

/** Starts the real server in-process on 127.0.0.1:0 with a temporary SQLite file. */
export async function startTestServer(
  flags: ServerFlags = {},
  deps: { clock?: Clock; keepaliveMs?: number; evaluationTickMs?: number; dbPath?: string; tokens?: readonly TokenEntry[] } = {},
): Promise<TestServer> {
  const tmp = tempDir();
  const dbPath = deps.dbPath ?? join(tmp.dir, "rollgate.db");
  let tokensFlag: ServerFlags = {};
  if (deps.tokens !== undefined) {
    const file = join(tmp.dir, "tokens.json");
    writeFileSync(file, JSON.stringify(deps.tokens));
    tokensFlag = { tokens: file };
  }
  const config = loadConfig({ listen: "127.0.0.1:0", db: dbPath, logLevel: "silent", ...tokensFlag, ...flags }, {});
  const server = await startServer(config, {
    logger: pino({ level: process.env.TEST_LOG_LEVEL ?? "silent" }),
    ...(deps.clock === undefined ? {} : { clock: deps.clock }),
    ...(deps.keepaliveMs === undefined ? {} : { keepaliveMs: deps.keepaliveMs }),
    ...(deps.evaluationTickMs === undefined ? {} : { evaluationTickMs: deps.evaluationTickMs }),
  });
  return Object.assign(Object.create(null) as object, server, {
    dbPath,
    async stop() {
      await server.close();
      tmp.cleanup();
    },
  }) as TestServer;
}

/** A rollgate server running as a child process (`node dist/src/cli/main.js serve`). */
export interface ServerProcess {
  readonly child: ChildProcess;
  readonly port: number;
  readonly address: string;
  /** Every JSON log line the server printed so far. */
  readonly logs: Record<string, unknown>[];
  /** Resolves with the exit code (or signal) once the process has exited. */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** Path of the built CLI; `npm test` builds it first. */
export const cliPath = join(repoRoot, "dist", "src", "cli", "main.js");

/**
 * Spawns the built server on 127.0.0.1:0 (unless `args` says otherwise) and resolves once it
 * logs "ready", reading the real port from its "listening" line.
 */
export async function spawnServer(args: string[], env: NodeJS.ProcessEnv = {}, prefix: readonly string[] = []): Promise<ServerProcess> {
  if (!existsSync(cliPath)) throw new Error(`${cliPath} is missing: run \`npm run build\` first (npm test does)`);
  // `prefix` runs it through another command that execs it (`ip netns exec NS`), same pid.
  const [cmd, ...argv] = [...prefix, process.execPath, cliPath, "serve", ...args] as [string, ...string[]];
  const child = spawn(cmd, argv, {
    env: { ...process.env, LOG_LEVEL: "info", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const logs: Record<string, unknown>[] = [];
  let stderr = "";
  child.stderr!.setEncoding("utf8").on("data", (s: string) => (stderr += s));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once("exit", (code, signal) => resolve({ code, signal })),
  );
  const ready = new Promise<{ port: number; address: string }>((resolve, reject) => {
    let listening: { port: number; address: string } | undefined;
    createInterface({ input: child.stdout! }).on("line", (line) => {
      let entry: Record<string, unknown>;
      try {
        entry = JSON.parse(line) as Record<string, unknown>;
      } catch {
        return;
      }
      logs.push(entry);
      if (entry.msg === "listening") listening = { port: Number(entry.port), address: String(entry.address) };
      if (entry.msg === "ready" && listening !== undefined) resolve(listening);
    });
    void exited.then(({ code, signal }) => reject(new Error(`server exited (${code ?? signal}) before it was ready: ${stderr}`)));
  });
  const { port, address } = await ready;
  return { child, port, address, logs, exited };
}
