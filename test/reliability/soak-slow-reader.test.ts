import { connect } from "node:http2";
import { afterEach, describe, expect, it } from "vitest";
import { setWeight } from "../../src/domain/rollout-machine.js";
import { specFixture } from "../helpers/rollouts.js";
import { startTestServer, type TestServer } from "../helpers/servers.js";

/**
 * Regression test of the second defect the streams-under-pressure suite found (issue 16): on the
 * gRPC fast path a WatchHealth stream whose reader stopped reading had up to 16 KiB of stale
 * updates queued in the server (the stream's highWaterMark) on top of what HTTP/2 flow control
 * lets through; 10,000 slow streams meant 160 MiB and updates delivered a minute late. Now one
 * message at most waits in the server per stream: a reader that never read gets, once it reads,
 * what the flow-control window let through (here: nothing, the client's window stays closed while
 * it does not read) plus the newest state, nothing more.
 */
let server: TestServer | undefined;
afterEach(async () => {
  await server?.stop();
  server = undefined;
});

const WINDOW = 65_535; // HTTP/2's initial stream window, which node:http2 clients keep

describe("a WatchHealth reader that stops reading", () => {
  it("has at most one message queued for it in the server, and gets the newest state", async () => {
    server = await startTestServer();
    await server.engine.create(specFixture(), { actor: "tester", reason: "" });
    const session = connect(server.url);
    session.on("error", () => {});
    const req = session.request({ ":method": "POST", ":path": "/rollgate.v1.DecisionService/WatchHealth", "content-type": "application/grpc", te: "trailers" });
    req.end(Buffer.from([0, 0, 0, 0, 10, 10, 8, ...Buffer.from("checkout")]));
    req.pause(); // never read until the burst is over
    await new Promise((r) => req.once("response", r));
    // 1,500 changes, each publishing a health of about 100 bytes: more than twice the window.
    // Changes are committed in groups a turn apart (group commit), so the stream's writes
    // complete between them and the client's flow-control window fills up first.
    for (let i = 0; i < 1500; i++) {
      const weightBp = 100 + i;
      await server.engine.change("checkout", { actor: "tester", reason: "" }, (r, actor) => setWeight(r, weightBp, actor));
    }
    let bytes = 0;
    let largest = 0;
    let last: Buffer | undefined;
    let buf = Buffer.alloc(0);
    req.on("data", (chunk: Buffer) => {
      bytes += chunk.length;
      buf = Buffer.concat([buf, chunk]);
      while (buf.length >= 5 && buf.length >= 5 + buf.readUInt32BE(1)) {
        const len = buf.readUInt32BE(1);
        largest = Math.max(largest, 5 + len);
        last = buf.subarray(5, 5 + len);
        buf = buf.subarray(5 + len);
      }
    });
    req.resume();
    // Quiet for a while: everything the server held has arrived.
    let seen = -1;
    while (seen !== bytes) {
      seen = bytes;
      await new Promise((r) => setTimeout(r, 500));
    }
    session.destroy();
    // What the window let through, plus at most a message or so held in the server. Before the
    // fix the server held 16,622 bytes more (the stream's 16 KiB highWaterMark of stale updates).
    expect(largest).toBeGreaterThan(0);
    expect(bytes).toBeLessThanOrEqual(WINDOW + 4 * largest);
    // The last message is the newest state: weight 100 + 1,499 = 1,599 (varint 0xbf 0x0c).
    expect(last?.includes(Buffer.from([0x40, 0xbf, 0x0c]))).toBe(true);
  }, 120_000);
});
