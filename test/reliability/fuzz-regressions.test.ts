import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestServer, type TestServer } from "../helpers/servers.js";
import { H2Pool, envelope, h2Request } from "./fuzz-kit.js";

/**
 * The defects the fuzzer found, each pinned: a request that does not decode is
 * INVALID_ARGUMENT with connect's message on every protocol and both serving paths — connect-es
 * said INTERNAL ("parse binary: …", a compressed flag without grpc-encoding, a body that does
 * not gunzip), so clients retried bad requests and alerts fired for the caller's mistake.
 */

const GARBAGE = Buffer.from([0x0b, 0xff, 0xff]); // a group start with no end, then a truncated varint
let servers: TestServer[];
let pools: H2Pool[];
beforeAll(async () => {
  servers = await Promise.all([startTestServer(), startTestServer({ grpcFastPath: false })]);
  pools = servers.map((s) => new H2Pool(s.url));
});
afterAll(async () => {
  for (const p of pools) p.close();
  await Promise.all(servers.map((s) => s.stop()));
});

describe.each([0, 1])("undecodable requests are INVALID_ARGUMENT (server %i: 0 fast path, 1 connect-node only)", (i) => {
  const grpc = (path: string, body: Buffer, extra: Record<string, string> = {}) =>
    h2Request(pools[i]!, { ":path": path, "content-type": "application/grpc", te: "trailers", ...extra }, body, "grpc", { streaming: path.endsWith("/WatchHealth") });

  it.each(["/rollgate.v1.DecisionService/Route", "/rollgate.v1.DecisionService/Health", "/rollgate.v1.RolloutService/Pause", "/rollgate.v1.DecisionService/StreamOutcomes", "/rollgate.v1.DecisionService/WatchHealth"])(
    "gRPC %s: bad protobuf, compressed flag without grpc-encoding, gzip that is not",
    async (path) => {
      for (const [body, extra, message] of [
        [envelope(GARBAGE), {}, /^parse binary: /],
        [envelope(Buffer.from([0x0a, 0x00]), 1), {}, /^received compressed envelope, but do not know how to decompress$/],
        [envelope(Buffer.from([0x1f, 0x8b, 8, 0, 1, 2, 3]), 1), { "grpc-encoding": "gzip" }, /^decompression failed/],
      ] as const) {
        const r = await grpc(path, body, extra);
        expect([r.code, r.message], path).toEqual([3, expect.stringMatching(message)]);
      }
    },
  );

  it("Connect binary unary and streaming, and gRPC-web", async () => {
    const unary = await h2Request(pools[i]!, { ":path": "/rollgate.v1.RolloutService/GetRollout", "content-type": "application/proto" }, GARBAGE, "connect-unary");
    expect([unary.httpStatus, unary.code, unary.message]).toEqual([400, 3, expect.stringMatching(/^parse binary: /)]);
    const stream = await h2Request(pools[i]!, { ":path": "/rollgate.v1.DecisionService/WatchHealth", "content-type": "application/connect+proto" }, envelope(GARBAGE), "connect-stream", { streaming: true });
    expect([stream.code, stream.message]).toEqual([3, expect.stringMatching(/^parse binary: /)]);
    const web = await fetch(`${servers[i]!.url}/rollgate.v1.DecisionService/Health`, { method: "POST", headers: { "content-type": "application/grpc-web+proto" }, body: envelope(GARBAGE) });
    const text = Buffer.from(await web.arrayBuffer()).toString("latin1");
    expect(text).toMatch(/grpc-status: ?3/);
    expect(text).toMatch(/grpc-message: ?parse(%20| )binary/);
  });
});
