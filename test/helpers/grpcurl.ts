import { execFile, spawn } from "node:child_process";
import { constants } from "node:fs";
import { access, mkdir, mkdtemp, rename, rm } from "node:fs/promises";
import { delimiter, join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";

/** The grpcurl release the tests install when none is found. */
export const GRPCURL_VERSION = "v1.9.3";

const repoRoot = fileURLToPath(new URL("../../", import.meta.url));
const cacheBin = join(repoRoot, ".cache", "bin");
const run = promisify(execFile);

/** What a grpcurl run printed and how it exited. */
export interface GrpcurlResult {
  /** Exit code; grpcurl exits with 64 + the gRPC status code when a call fails. */
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** Options of one grpcurl run. */
export interface GrpcurlOptions {
  /** Written to grpcurl's stdin (use with `-d @`). */
  readonly stdin?: string;
  /** Kills grpcurl after this long (default 20 s) so a hung call fails the test instead of stalling it. */
  readonly timeoutMs?: number;
}

let found: Promise<string> | undefined;

/**
 * Returns the path of a grpcurl binary: from PATH, `$(go env GOPATH)/bin`, or `<repo>/.cache/bin`,
 * installing it into the latter with `go install` when none exists.
 */
export function grpcurlPath(): Promise<string> {
  found ??= locate();
  return found;
}

/** Runs grpcurl with `args` and returns its exit code and output; a failing call does not throw. */
export async function grpcurl(args: readonly string[], opts: GrpcurlOptions = {}): Promise<GrpcurlResult> {
  const bin = await grpcurlPath();
  return new Promise((resolve, reject) => {
    const child = spawn(bin, args, { stdio: ["pipe", "pipe", "pipe"], timeout: opts.timeoutMs ?? 20_000 });
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (s: string) => (stdout += s));
    child.stderr.setEncoding("utf8").on("data", (s: string) => (stderr += s));
    child.on("error", reject);
    child.on("close", (code, signal) => resolve({ code: code ?? (signal === null ? -1 : 128), stdout, stderr }));
    child.stdin.end(opts.stdin ?? "");
  });
}

async function locate(): Promise<string> {
  const candidates = (process.env.PATH ?? "").split(delimiter).filter((d) => d !== "");
  const gopath = await goEnv("GOPATH");
  if (gopath !== undefined) candidates.push(...gopath.split(delimiter).map((p) => join(p, "bin")));
  candidates.push(cacheBin);
  for (const dir of candidates) {
    const path = join(dir, "grpcurl");
    if (await isExecutable(path)) return path;
  }
  return install();
}

/**
 * Installs grpcurl into `<repo>/.cache/bin`. Each caller builds into its own temporary GOBIN
 * and renames the binary into place, which is atomic: test files racing here (separate
 * processes) never see a half-written binary, and go's build cache keeps a second build cheap.
 */
async function install(): Promise<string> {
  const target = join(cacheBin, "grpcurl");
  await mkdir(cacheBin, { recursive: true });
  const gobin = await mkdtemp(join(cacheBin, ".install-"));
  try {
    await run("go", ["install", `github.com/fullstorydev/grpcurl/cmd/grpcurl@${GRPCURL_VERSION}`], {
      env: { ...process.env, GOBIN: gobin },
      timeout: 10 * 60_000,
    });
    await rename(join(gobin, "grpcurl"), target);
  } catch (e) {
    throw new Error(`grpcurl not found and 'go install' of ${GRPCURL_VERSION} failed: ${(e as Error).message}`);
  } finally {
    await rm(gobin, { recursive: true, force: true });
  }
  return target;
}

async function goEnv(name: string): Promise<string | undefined> {
  try {
    const { stdout } = await run("go", ["env", name]);
    const value = stdout.trim();
    return value === "" ? undefined : value;
  } catch {
    return undefined;
  }
}

async function isExecutable(path: string): Promise<boolean> {
  try {
    await access(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}
