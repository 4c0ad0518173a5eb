import { spawn, type ChildProcess } from "node:child_process";
import { createInterface } from "node:readline";
import { afterEach, describe, expect, it } from "vitest";
import { specFixture } from "../helpers/rollouts.js";
import { repoRoot, startTestServer, type TestServer } from "../helpers/servers.js";

/**
 * Regression test of the defect the streams-under-pressure suite found (issue 16): a client that
 * vanished without closing (here: its process stopped with SIGSTOP, so the kernel keeps its
 * socket open and nothing reads or answers) kept its WatchHealth streams subscribed forever.
 * The server now PINGs every HTTP/2 connection (--http2-keepalive) and closes one that does not
 * answer within a period; a live client, even an idle one, answers and keeps its streams.
 */

/** A client process holding `streams` WatchHealth streams on one HTTP/2 connection; prints "ready". */
const CLIENT = `
import { connect } from "node:http2";
const [port, n] = process.argv.slice(1);
const s = connect("http://127.0.0.1:" + port);
const body = Buffer.from([0, 0, 0, 0, 10, 10, 8, ...Buffer.from("checkout")]);
let ready = 0;
for (let i = 0; i < Number(n); i++) {
  const r = s.request({ ":method": "POST", ":path": "/rollgate.v1.DecisionService/WatchHealth", "content-type": "application/grpc", te: "trailers" });
  r.once("data", () => ++ready === Number(n) && console.log("ready"));
  r.on("error", () => {});
  r.end(body);
}
`;

const children: ChildProcess[] = [];
let server: TestServer | undefined;
afterEach(async () => {
  for (const c of children.splice(0)) c.kill("SIGKILL");
  await server?.stop();
  server = undefined;
});

function client(port: number, streams: number): Promise<ChildProcess> {
  const child = spawn(process.execPath, ["--input-type=module", "-e", CLIENT, String(port), String(streams)], { cwd: repoRoot, stdio: ["ignore", "pipe", "inherit"] });
  children.push(child);
  return new Promise((resolve, reject) => {
    createInterface({ input: child.stdout! }).on("line", (l) => l === "ready" && resolve(child));
    child.once("exit", (code) => reject(new Error(`client exited ${code}`)));
  });
}

async function until(what: () => boolean, ms: number): Promise<boolean> {
  const end = Date.now() + ms;
  while (!what() && Date.now() < end) await new Promise((r) => setTimeout(r, 50));
  return what();
}

describe("HTTP/2 keep-alive", () => {
  it("closes the streams of a client that stopped answering, and keeps a live one's", async () => {
    server = await startTestServer({ http2Keepalive: "1s" });
    await server.engine.create(specFixture(), { actor: "tester", reason: "" });
    const health = () => server!.engine.subscribers().health;
    const live = await client(server.port, 5);
    const vanishing = await client(server.port, 20);
    expect(health()).toBe(25);
    vanishing.kill("SIGSTOP");
    // Cleaned up while the process is still stopped (its socket open): only the PING can tell.
    expect(await until(() => health() === 5, 15_000)).toBe(true);
    // The live client answered every PING meanwhile: its streams are all still there, and stay.
    await new Promise((r) => setTimeout(r, 2500));
    expect(health()).toBe(5);
    expect(live.exitCode).toBeNull();
  }, 40_000);

  it("is off with 0: a stopped client's streams then stay", async () => {
    server = await startTestServer({ http2Keepalive: "0" });
    await server.engine.create(specFixture(), { actor: "tester", reason: "" });
    const vanishing = await client(server.port, 3);
    vanishing.kill("SIGSTOP");
    await new Promise((r) => setTimeout(r, 1500));
    expect(server.engine.subscribers().health).toBe(3);
  }, 40_000);
});
