import { once } from "node:events";
import { constants as h2, createServer, type Http2Server } from "node:http2";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { envelope, H2Pool, h2Request } from "./fuzz-kit.js";

/**
 * The fuzz suite's own HTTP/2 client must settle every call, whatever comes back: a call that
 * never settles holds the whole run with no timer left (fuzz-2 hung so in CI). A server here
 * answers a Connect stream with an end-of-stream envelope cut short, then resets the stream.
 */
let server: Http2Server;
let pool: H2Pool;
beforeAll(async () => {
  server = createServer((_req, res) => {
    res.writeHead(200, { "content-type": "application/connect+json" });
    const end = envelope(Buffer.from('{"error":{"code":"internal","message":"x"}}'), 2);
    res.write(end.subarray(0, 12));
    setTimeout(() => res.stream.close(h2.NGHTTP2_INTERNAL_ERROR), 20);
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  pool = new H2Pool(`http://127.0.0.1:${(server.address() as AddressInfo).port}`);
});
afterAll(async () => {
  pool.close();
  await new Promise((resolve) => server.close(resolve));
});

describe("the fuzz suite's HTTP/2 client", () => {
  it("settles a Connect stream cut inside its end-of-stream envelope, as a call without a status", async () => {
    const r = await h2Request(pool, { ":path": "/rollgate.v1.DecisionService/WatchHealth", "content-type": "application/connect+json" }, envelope(Buffer.from("{}")), "connect-stream");
    expect(r.code).toBe(-1);
    expect(r.message).toBe("connect stream cut inside an envelope");
  });
});
