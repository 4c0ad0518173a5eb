import { spawn, type ChildProcess } from "node:child_process";
import { cliPath } from "../helpers/servers.js";

/** What a finished CLI run printed and how it exited. */
export interface CliResult {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Options of one CLI run. */
export interface RunOptions {
  readonly stdin?: string;
  readonly env?: NodeJS.ProcessEnv;
}

/** The environment of every CLI run: no colours unless a test asks, no inherited server or token. */
function cliEnv(env: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const base = { ...process.env };
  delete base.ROLLGATE_SERVER;
  delete base.ROLLGATE_TOKEN;
  delete base.FORCE_COLOR;
  return { ...base, NO_COLOR: "1", ...env };
}

/**
 * Runs the built `rollgate` CLI as a subprocess and resolves when it exits. Asynchronous on
 * purpose: the server under test runs in this process and must keep answering meanwhile.
 */
export function runCli(args: string[], opts: RunOptions = {}): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [cliPath, ...args], { env: cliEnv(opts.env), stdio: ["pipe", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (s: string) => (stdout += s));
    child.stderr.setEncoding("utf8").on("data", (s: string) => (stderr += s));
    child.on("error", reject);
    child.on("close", (code) => resolve({ code, stdout, stderr }));
    child.stdin.end(opts.stdin ?? "");
  });
}

/** A CLI process that keeps running (watch, events --follow), with its output so far. */
export interface LiveCli {
  readonly child: ChildProcess;
  output(): string;
  errors(): string;
  /** Resolves once the output matches, rejects if the process exits first. */
  waitFor(pattern: RegExp | string): Promise<void>;
  readonly exited: Promise<CliResult>;
}

/** Starts a long-running command: `node main.js ...args`, or any program (e.g. `script`). */
export function startCli(args: string[], opts: RunOptions & { command?: string } = {}): LiveCli {
  const child = spawn(opts.command ?? process.execPath, opts.command === undefined ? [cliPath, ...args] : args, {
    env: cliEnv(opts.env),
    stdio: ["pipe", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  const waiters = new Set<() => void>();
  const wake = () => waiters.forEach((w) => w());
  child.stdout!.setEncoding("utf8").on("data", (s: string) => {
    stdout += s;
    wake();
  });
  child.stderr!.setEncoding("utf8").on("data", (s: string) => {
    stderr += s;
    wake();
  });
  const exited = new Promise<CliResult>((resolve) => child.on("close", (code) => resolve({ code, stdout, stderr })));
  let done = false;
  void exited.then(() => {
    done = true;
    wake();
  });
  return {
    child,
    output: () => stdout,
    errors: () => stderr,
    exited,
    waitFor(pattern) {
      const matches = () => (typeof pattern === "string" ? stdout.includes(pattern) : pattern.test(stdout));
      return new Promise((resolve, reject) => {
        const check = () => {
          if (matches()) {
            waiters.delete(check);
            resolve();
          } else if (done) {
            waiters.delete(check);
            reject(new Error(`exited before printing ${String(pattern)}; stdout:\n${stdout}\nstderr:\n${stderr}`));
          }
        };
        waiters.add(check);
        check();
      });
    },
  };
}
