import { execFile } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { connect as netConnect, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { repoRoot, spawnServer, type ServerProcess } from "../helpers/servers.js";

/**
 * Shared pieces of the reliability suites (fuzz, HTTP abuse, disk faults): a server in a child
 * process (a crash shows as an exit, never takes the test runner down), raw HTTP/2 frames, the
 * Python that speaks for "a plain urllib client", and latency figures.
 */

/** A rollgate server in a child process with its own database directory. */
export interface ChildServer extends ServerProcess {
  readonly url: string;
  readonly dir: string;
  /** True while the process has not exited. */
  alive(): boolean;
  /** Stops the process (SIGTERM, then SIGKILL after 5 s) and removes its directory. */
  stop(): Promise<void>;
}

/** Spawns `rollgate serve` on 127.0.0.1:0 with a database in a fresh directory (or `db`). */
export async function startChild(extra: string[] = [], opts: { db?: string; env?: NodeJS.ProcessEnv } = {}): Promise<ChildServer> {
  const dir = mkdtempSync(join(tmpdir(), "rollgate-rel-"));
  const p = await spawnServer(["--listen", "127.0.0.1:0", "--db", opts.db ?? join(dir, "rollgate.db"), ...extra], opts.env ?? {});
  let exited = false;
  void p.exited.then(() => (exited = true));
  return Object.assign(p, {
    url: `http://${p.address}`,
    dir,
    alive: () => !exited,
    async stop() {
      if (!exited) {
        p.child.kill("SIGTERM");
        const timer = setTimeout(() => p.child.kill("SIGKILL"), 5000);
        await p.exited;
        clearTimeout(timer);
      }
      rmSync(dir, { recursive: true, force: true });
    },
  });
}

/** POSTs Connect JSON over HTTP/1.1 with fetch; returns status and parsed body. */
export async function postJson(url: string, procedure: string, body: unknown): Promise<{ status: number; json: Record<string, unknown> }> {
  const res = await fetch(`${url}/${procedure}`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
  const text = await res.text();
  return { status: res.status, json: text === "" ? {} : (JSON.parse(text) as Record<string, unknown>) };
}

/** Returns the Python interpreter: the repo's .venv when it exists, else python3. */
export function python(): string {
  const venv = join(repoRoot, ".venv", "bin", "python");
  return existsSync(venv) ? venv : "python3";
}

/** Runs a Python script (stdin-less) and resolves with its stdout; rejects on a non-zero exit. */
export function runPython(script: string, args: string[] = []): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(python(), ["-c", script, ...args], { timeout: 60_000 }, (err, stdout, stderr) => {
      if (err !== null) reject(new Error(`python failed: ${err.message}\n${stderr}`));
      else resolve(stdout);
    });
  });
}

/** The HTTP/2 client connection preface. */
export const H2_PREFACE = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "latin1");

/** Returns one HTTP/2 frame: 9-byte header (length, type, flags, stream id) and payload. */
export function h2Frame(type: number, flags: number, streamId: number, payload: Uint8Array = new Uint8Array(0)): Buffer {
  const head = Buffer.alloc(9);
  head.writeUIntBE(payload.length, 0, 3);
  head.writeUInt8(type, 3);
  head.writeUInt8(flags, 4);
  head.writeUInt32BE(streamId & 0x7fffffff, 5);
  return Buffer.concat([head, payload]);
}

/** HTTP/2 frame types used here. */
export const FRAME = { DATA: 0, HEADERS: 1, RST_STREAM: 3, SETTINGS: 4, PING: 6, GOAWAY: 7, WINDOW_UPDATE: 8 } as const;

/** Returns an HPACK block of literal headers, never indexed, new names (no Huffman). */
export function hpackLiterals(headers: readonly (readonly [string, string])[]): Buffer {
  const parts: Buffer[] = [];
  const str = (s: string) => {
    const b = Buffer.from(s, "latin1");
    return Buffer.concat([hpackInt(b.length, 7, 0), b]);
  };
  for (const [name, value] of headers) parts.push(Buffer.from([0x10]), str(name), str(value));
  return Buffer.concat(parts);
}

/** HPACK integer with an N-bit prefix and the given high bits. */
function hpackInt(n: number, prefixBits: number, high: number): Buffer {
  const max = (1 << prefixBits) - 1;
  if (n < max) return Buffer.from([high | n]);
  const out = [high | max];
  n -= max;
  while (n >= 128) {
    out.push((n % 128) + 128);
    n = Math.floor(n / 128);
  }
  out.push(n);
  return Buffer.from(out);
}

/** The request headers of a gRPC call to `path`, as an HPACK block. */
export function grpcHeaders(authority: string, path: string, extra: readonly (readonly [string, string])[] = []): Buffer {
  return hpackLiterals([
    [":method", "POST"],
    [":scheme", "http"],
    [":path", path],
    [":authority", authority],
    ["content-type", "application/grpc"],
    ["te", "trailers"],
    ...extra,
  ]);
}

/** Opens a raw TCP connection that has sent the HTTP/2 preface and an empty SETTINGS; errors are swallowed. */
export function rawH2(port: number): Promise<Socket> {
  return new Promise((resolve) => {
    const s = netConnect({ host: "127.0.0.1", port }, () => {
      s.write(Buffer.concat([H2_PREFACE, h2Frame(FRAME.SETTINGS, 0, 0)]));
      resolve(s);
    });
    s.on("error", () => {});
    // Read and drop whatever the server sends, so its writes never block on us.
    s.resume();
  });
}

/** What a raw HTTP/2 connection has received so far: the GOAWAY frames' error codes, in order. */
export interface Received {
  readonly goaways: number[];
}

/** Parses the frames a raw HTTP/2 connection receives (see {@link rawH2}) and records its GOAWAYs. */
export function watchFrames(s: Socket): Received {
  const goaways: number[] = [];
  let buf = Buffer.alloc(0);
  s.on("data", (d: Buffer) => {
    buf = Buffer.concat([buf, d]);
    let at = 0;
    while (at + 9 <= buf.length) {
      const len = buf.readUIntBE(at, 3);
      if (at + 9 + len > buf.length) break;
      if (buf[at + 3] === FRAME.GOAWAY && len >= 8) goaways.push(buf.readUInt32BE(at + 13));
      at += 9 + len;
    }
    buf = buf.subarray(at);
  });
  return { goaways };
}

/** Latency figures of a run of calls. */
export interface Figures {
  readonly calls: number;
  readonly errors: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly maxMs: number;
}

/** Returns count, errors and p50/p99/max of latencies in milliseconds. */
export function figures(latencies: number[], errors: number): Figures {
  const s = [...latencies].sort((a, b) => a - b);
  const at = (q: number) => (s.length === 0 ? 0 : s[Math.min(s.length - 1, Math.floor(q * s.length))]!);
  const r = (x: number) => Math.round(x * 10) / 10;
  return { calls: s.length + errors, errors, p50Ms: r(at(0.5)), p99Ms: r(at(0.99)), maxMs: r(s.at(-1) ?? 0) };
}

/** Resolves after `ms`. */
export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
