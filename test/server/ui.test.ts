import { connect as h2connect, type ClientHttp2Session } from "node:http2";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { gzipSync } from "node:zlib";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { chainEvent, eventHash, verifyChain, type NewEvent } from "../../src/domain/audit-chain.js";
import { eventToProto } from "../../src/service/convert.js";
import { toJson } from "@bufbuild/protobuf";
import { EventSchema } from "../../gen/rollgate/v1/event_pb.js";
import { DASHBOARD_CSP, loadDashboardAssets } from "../../src/server/ui.js";
import { pino } from "pino";
import { loadConfig } from "../../src/server/config.js";
import { startServer } from "../../src/server/server.js";
import { repoRoot, startTestServer, tempDir, type TestServer } from "../helpers/servers.js";

const uiDir = join(repoRoot, "ui");

let server: TestServer;
beforeAll(async () => {
  server = await startTestServer();
});
afterAll(async () => {
  await server.stop();
});

/** The security headers every dashboard answer must carry. */
function expectSecurityHeaders(res: Response): void {
  expect(res.headers.get("content-security-policy")).toBe(DASHBOARD_CSP);
  expect(res.headers.get("x-content-type-options")).toBe("nosniff");
}

describe("the dashboard's assets", () => {
  it("are served from memory with their content types, an ETag, no-cache and a strict CSP", async () => {
    const want: Record<string, string> = {
      "/ui/": "text/html; charset=utf-8",
      "/ui/rollouts/checkout": "text/html; charset=utf-8",
      "/ui/app.js": "text/javascript; charset=utf-8",
      "/ui/connect.js": "text/javascript; charset=utf-8",
      "/ui/style.css": "text/css; charset=utf-8",
      "/ui/favicon.svg": "image/svg+xml",
    };
    for (const [path, type] of Object.entries(want)) {
      const res = await fetch(`${server.url}${path}`);
      expect(res.status, path).toBe(200);
      expect(res.headers.get("content-type"), path).toBe(type);
      expect(res.headers.get("etag"), path).toMatch(/^"[\w-]{32}"$/);
      expect(res.headers.get("cache-control"), path).toBe("no-cache");
      expectSecurityHeaders(res);
    }
    const index = await (await fetch(`${server.url}/ui/`)).text();
    expect(index).toBe(readFileSync(join(uiDir, "index.html"), "utf8"));
    expect(await (await fetch(`${server.url}/ui/rollouts/any-name`)).text()).toBe(index);
  });

  it("answers a matching If-None-Match with 304 and no body, and gzip when asked", async () => {
    const first = await fetch(`${server.url}/ui/app.js`, { headers: { "accept-encoding": "identity" } });
    const etag = first.headers.get("etag")!;
    const body = Buffer.from(await first.arrayBuffer());
    expect(body.equals(readFileSync(join(uiDir, "app.js")))).toBe(true);
    expect(first.headers.get("content-length")).toBe(String(body.length));
    const again = await fetch(`${server.url}/ui/app.js`, { headers: { "if-none-match": etag } });
    expect(again.status).toBe(304);
    expect(await again.text()).toBe("");
    expectSecurityHeaders(again);
    const other = await fetch(`${server.url}/ui/app.js`, { headers: { "if-none-match": '"something-else"' } });
    expect(other.status).toBe(200);
    // node's fetch decodes gzip itself; the raw answer says what was sent.
    const zipped = await new Promise<{ encoding: string | undefined; length: number }>((resolve, reject) => {
      import("node:http").then(({ get }) =>
        get(`${server.url}/ui/app.js`, { headers: { "accept-encoding": "gzip, br" } }, (res) => {
          let length = 0;
          res.on("data", (c: Buffer) => (length += c.length));
          res.on("end", () => resolve({ encoding: res.headers["content-encoding"], length }));
        }).on("error", reject),
      );
    });
    expect(zipped.encoding).toBe("gzip");
    expect(zipped.length).toBeLessThan(body.length);
  });

  it("are small: every asset together is at most 200 KB gzipped", () => {
    const assets = loadDashboardAssets(uiDir);
    expect(assets.missing).toBeUndefined();
    const names = [...assets.files.keys()];
    expect(names).toEqual(expect.arrayContaining(["index.html", "app.js", "connect.js", "chain.js", "plot.js", "format.js", "dom.js", "style.css", "favicon.svg"]));
    const total = [...assets.files.values()].reduce((n, a) => n + a.gzip.length, 0);
    const each = readdirSync(uiDir).reduce((n, f) => n + gzipSync(readFileSync(join(uiDir, f)), { level: 9 }).length, 0);
    expect(total).toBe(each); // every file in ui/ is served, none left out of the count
    expect(total).toBeLessThanOrEqual(200 * 1024);
  });

  it("reference nothing outside the server: no CDN, no external fonts, no inline script or style", () => {
    for (const f of readdirSync(uiDir)) {
      const text = readFileSync(join(uiDir, f), "utf8");
      // The only absolute URL allowed is the SVG namespace, which is a name, not a request.
      const urls = [...text.matchAll(/\b(?:https?:)?\/\/[a-z0-9.-]+\.[a-z]{2,}[^\s"'`)]*/gi)].map((m) => m[0]).filter((u) => !u.startsWith("http://www.w3.org/2000/svg"));
      const allowed = urls.filter((u) => u.startsWith("https://connectrpc.com/docs/protocol")); // a comment in connect.js
      expect(urls, f).toEqual(allowed);
      expect(text, f).not.toMatch(/@import|url\(\s*["']?https?:/i);
      if (f.endsWith(".html")) {
        expect(text, f).not.toMatch(/<script(?![^>]*\bsrc=)[^>]*>/i);
        expect(text, f).not.toMatch(/<style\b|\sstyle=|\son[a-z]+=/i);
      }
      if (f.endsWith(".js")) expect(text, f).not.toMatch(/innerHTML|outerHTML|insertAdjacentHTML|document\.write|eval\(|new Function|setAttribute\(\s*["']style/);
    }
  });
});

describe("the dashboard's routes", () => {
  it("GET / redirects to /ui/, as does /ui; other paths and methods are left to the API", async () => {
    for (const path of ["/", "/ui", "/?x=1"]) {
      const res = await fetch(`${server.url}${path}`, { redirect: "manual" });
      expect(res.status, path).toBe(302);
      expect(res.headers.get("location"), path).toBe("/ui/");
    }
    const missing = await fetch(`${server.url}/ui/nope.js`);
    expect(missing.status).toBe(404);
    expectSecurityHeaders(missing);
    const post = await fetch(`${server.url}/ui/`, { method: "POST", body: "x" });
    expect(post.status).toBe(405);
    expect(post.headers.get("allow")).toBe("GET, HEAD");
    const head = await fetch(`${server.url}/ui/style.css`, { method: "HEAD" });
    expect(head.status).toBe(200);
    expect(await head.text()).toBe("");
    // The API and the plain endpoints are unchanged.
    expect((await fetch(`${server.url}/healthz`)).status).toBe(200);
    const list = await fetch(`${server.url}/rollgate.v1.RolloutService/ListRollouts`, { method: "POST", headers: { "content-type": "application/json" }, body: "{}" });
    expect(list.status).toBe(200);
    expect((await fetch(`${server.url}/uix`)).status).not.toBe(200);
  });

  it("is served over h2c too: the gRPC fast path takes only gRPC streams, so GET /ui/ reaches the handler", async () => {
    const session: ClientHttp2Session = h2connect(server.url);
    try {
      const res = await new Promise<{ status: number; type: string; csp: string; body: string }>((resolve, reject) => {
        const req = session.request({ ":method": "GET", ":path": "/ui/" });
        let body = "";
        let head: Record<string, unknown> = {};
        req.on("response", (h) => (head = h));
        req.setEncoding("utf8");
        req.on("data", (c: string) => (body += c));
        req.on("end", () => resolve({ status: Number(head[":status"]), type: String(head["content-type"]), csp: String(head["content-security-policy"]), body }));
        req.on("error", reject);
        req.end();
      });
      expect(res).toMatchObject({ status: 200, type: "text/html; charset=utf-8", csp: DASHBOARD_CSP });
      expect(res.body).toContain('<script type="module" src="/ui/app.js"></script>');
    } finally {
      session.close();
    }
  });

  it("answers 404 saying why when its assets are not installed, and the server still serves", async () => {
    const tmp = tempDir();
    const s = await startServer(loadConfig({ listen: "127.0.0.1:0", db: join(tmp.dir, "rollgate.db"), logLevel: "silent" }, {}), {
      logger: pino({ level: "silent" }),
      dashboardDir: join(tmp.dir, "no-such-ui-folder"),
    });
    try {
      const res = await fetch(`${s.url}/ui/`);
      expect(res.status).toBe(404);
      expect(await res.text()).toContain("no-such-ui-folder does not exist");
      expect((await fetch(`${s.url}/readyz`)).status).toBe(200);
    } finally {
      await s.close();
      tmp.cleanup();
    }
  });
});

/** The browser's chain module, loaded as the page loads it (an ES module, WebCrypto for SHA-256). */
interface ChainModule {
  timestampNs(text: string | undefined): string;
  eventHash(fields: Record<string, string>): Promise<string>;
  chainFields(e: unknown): Record<string, string>;
  verifyChain(events: unknown[]): Promise<{ ok: boolean; checked: number; seq?: number; problem?: string }>;
}

describe("the dashboard's hash-chain check (ui/chain.js)", () => {
  const load = async () => (await import(pathToFileURL(join(uiDir, "chain.js")).href)) as ChainModule;
  const base: NewEvent = { timeNs: 1796136285863123456n, rollout: "r", type: "rolled_back", actor: "deployer", reason: "pager: «latency» 🚀", fingerprint: "ab", snapshot: '{"a":1,"b":"\\u2028"}' };

  it("computes the server's hash from the protobuf JSON of an event, nanoseconds and Unicode included", async () => {
    const chain = await load();
    const events = [chainEvent({ ...base, type: "created", reason: "" }, 1, "")];
    events.push(chainEvent({ ...base }, 7, events[0]!.hash));
    events.push(chainEvent({ ...base, timeNs: 1796136285000000000n, rollout: "other" }, 9, ""));
    events.push(chainEvent({ ...base, timeNs: 1796136285120000000n, type: "decision" }, 12, events[1]!.hash));
    const json = events.map((e) => toJson(EventSchema, eventToProto(e)));
    for (const [i, e] of events.entries()) {
      expect(await chain.eventHash(chain.chainFields(json[i]))).toBe(eventHash(e));
    }
    expect(await chain.verifyChain(json)).toEqual(verifyChain(events));
    expect(chain.timestampNs("2026-12-01T14:44:45.863Z")).toBe("1796136285863000000");
    expect(chain.timestampNs("1970-01-01T00:00:00Z")).toBe("0");
  });

  it("finds the same first broken link, with the same words, as verifyChain", async () => {
    const chain = await load();
    const a = chainEvent({ ...base, type: "created" }, 1, "");
    const b = chainEvent({ ...base, type: "paused" }, 2, a.hash);
    const c = chainEvent({ ...base, type: "resumed" }, 3, b.hash);
    const cases = [
      [a, { ...b, reason: "edited" }, c],
      [a, { ...b, prevHash: "00" }, c],
      [a, c],
      [a, b, { ...c, seq: 2 }],
    ];
    for (const events of cases) {
      const json = events.map((e) => toJson(EventSchema, eventToProto(e)));
      const want = verifyChain(events);
      expect(want.ok).toBe(false);
      expect(await chain.verifyChain(json)).toEqual(want);
    }
  });
});

/** The browser's Connect module: its envelope reader, fed chunks cut anywhere. */
interface ConnectModule {
  envelopeReader(): { push(chunk: Uint8Array): { flags: number; data: Uint8Array }[] };
}

describe("the dashboard's Connect stream reader (ui/connect.js)", () => {
  it("returns each envelope once it is complete, however the bytes are cut", async () => {
    const { envelopeReader } = (await import(pathToFileURL(join(uiDir, "connect.js")).href)) as ConnectModule;
    const frame = (flags: number, text: string) => {
      const data = new TextEncoder().encode(text);
      const out = new Uint8Array(5 + data.length);
      out[0] = flags;
      new DataView(out.buffer).setUint32(1, data.length);
      out.set(data, 5);
      return out;
    };
    const messages = ['{"seq":"1"}', "", '{"event":{"reason":"ünïcødé 🚀"}}', "x".repeat(70_000)];
    const frames = [...messages.map((m) => frame(0, m)), frame(2, "{}")];
    const all = new Uint8Array(frames.reduce((n, f) => n + f.length, 0));
    frames.reduce((at, f) => (all.set(f, at), at + f.length), 0);
    for (const cut of [1, 2, 5, 7, 4096, all.length]) {
      const reader = envelopeReader();
      const got: { flags: number; text: string }[] = [];
      for (let i = 0; i < all.length; i += cut) {
        for (const f of reader.push(all.slice(i, i + cut))) got.push({ flags: f.flags, text: new TextDecoder().decode(f.data) });
      }
      expect(got, `chunks of ${cut}`).toEqual([...messages.map((text) => ({ flags: 0, text })), { flags: 2, text: "{}" }]);
    }
  });
});
