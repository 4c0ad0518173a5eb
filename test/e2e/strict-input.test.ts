import { create, toBinary } from "@bufbuild/protobuf";
import { MethodOptions_IdempotencyLevel } from "@bufbuild/protobuf/wkt";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DecisionService } from "../../gen/rollgate/v1/decision_service_pb.js";
import { GetRolloutRequestSchema, RolloutService } from "../../gen/rollgate/v1/rollout_service_pb.js";
import { ACCEPTED_MEDIA_TYPES } from "../../src/server/media-types.js";
import { connectJson, curl } from "../helpers/curl.js";
import { startTestServer, type TestServer } from "../helpers/servers.js";

let server: TestServer;
beforeAll(async () => {
  server = await startTestServer();
});
afterAll(async () => {
  await server.stop();
});

const UNKNOWN = "zzNotAField";
const methods = [DecisionService, RolloutService].flatMap((s) => s.methods.map((m) => ({ service: s.typeName, m })));

/** Returns one Connect envelope (flags, big-endian length, payload). */
function envelope(flags: number, payload: Uint8Array): Buffer {
  const head = Buffer.alloc(5);
  head.writeUInt8(flags, 0);
  head.writeUInt32BE(payload.length, 1);
  return Buffer.concat([head, payload]);
}

/** Returns the JSON of each envelope of a Connect streaming response body. */
function envelopes(body: Buffer): { flags: number; json: Record<string, unknown> }[] {
  const out: { flags: number; json: Record<string, unknown> }[] = [];
  for (let at = 0; at + 5 <= body.length; ) {
    const len = body.readUInt32BE(at + 1);
    out.push({ flags: body[at]!, json: JSON.parse(body.subarray(at + 5, at + 5 + len).toString("utf8")) as Record<string, unknown> });
    at += 5 + len;
  }
  return out;
}

describe("Connect JSON refuses unknown fields, naming them", () => {
  it("CreateRollout with a misspelt `gate` is INVALID_ARGUMENT, and creates nothing", async () => {
    const r = await connectJson(server.url, "rollgate.v1.RolloutService/CreateRollout", {
      rollout: { name: "typo", stableVersion: "v1", canaryVersion: "v2", gate: [{ name: "errors", minSamples: "100", errorRate: { max: 0.02 } }] },
      reason: "a typo",
    });
    expect(r.status).toBe(400);
    expect(r.json).toEqual({ code: "invalid_argument", message: 'cannot decode message rollgate.v1.Rollout from JSON: key "gate" is unknown' });
    const got = await connectJson(server.url, "rollgate.v1.RolloutService/GetRollout", { name: "typo" });
    expect(got.json).toMatchObject({ code: "not_found" });
  });

  it("a nested unknown field names its message", async () => {
    const r = await connectJson(server.url, "rollgate.v1.RolloutService/CreateRollout", {
      rollout: { name: "nested", stableVersion: "v1", canaryVersion: "v2", gates: [{ name: "errors", errorRate: { maxx: 0.02 } }] },
    });
    expect(r.json).toEqual({ code: "invalid_argument", message: 'cannot decode message rollgate.v1.ErrorRateGate from JSON: key "maxx" is unknown' });
  });

  for (const { service, m } of methods) {
    const path = `${service}/${m.name}`;
    if (m.methodKind === "unary") {
      it(`${path}: POST application/json`, async () => {
        const r = await connectJson(server.url, path, { [UNKNOWN]: 1 });
        expect(r.status).toBe(400);
        expect(r.json).toEqual({ code: "invalid_argument", message: `cannot decode message ${m.input.typeName} from JSON: key "${UNKNOWN}" is unknown` });
      });
    } else {
      it(`${path}: POST application/connect+json (${m.methodKind})`, async () => {
        const res = await fetch(`${server.url}/${path}`, {
          method: "POST",
          headers: { "content-type": "application/connect+json" },
          body: envelope(0, Buffer.from(JSON.stringify({ [UNKNOWN]: 1 }))),
        });
        const frames = envelopes(Buffer.from(await res.arrayBuffer()));
        const end = frames.find((f) => (f.flags & 2) === 2);
        expect(frames.filter((f) => (f.flags & 2) === 0)).toEqual([]);
        expect(end?.json.error).toEqual({ code: "invalid_argument", message: `cannot decode message ${m.input.typeName} from JSON: key "${UNKNOWN}" is unknown` });
      });
    }
    if (m.methodKind === "unary" && m.idempotency === MethodOptions_IdempotencyLevel.NO_SIDE_EFFECTS) {
      it(`${path}: GET ?encoding=json`, async () => {
        const q = new URLSearchParams({ connect: "v1", encoding: "json", message: JSON.stringify({ [UNKNOWN]: 1 }) });
        const r = await curl([`${server.url}/${path}?${q.toString()}`]);
        expect(r.status).toBe(400);
        expect(r.json).toEqual({ code: "invalid_argument", message: `cannot decode message ${m.input.typeName} from JSON: key "${UNKNOWN}" is unknown` });
      });
    }
  }

  it("binary protobuf keeps its unknown-field semantics: an unknown field number is skipped", async () => {
    const known = toBinary(GetRolloutRequestSchema, create(GetRolloutRequestSchema, { name: "absent" }));
    // Field 99, varint 1: a field a newer schema might have.
    const body = Buffer.concat([Buffer.from(known), Buffer.from([0x98, 0x06, 0x01])]);
    const res = await fetch(`${server.url}/rollgate.v1.RolloutService/GetRollout`, { method: "POST", headers: { "content-type": "application/proto" }, body });
    expect(res.status).toBe(404);
    expect(res.headers.get("content-type")).toBe("application/json");
    expect(await res.json()).toEqual({ code: "not_found", message: 'rollout "absent" not found' });
  });

  it("known fields still work (the README's CreateRollout)", async () => {
    const r = await connectJson(server.url, "rollgate.v1.RolloutService/CreateRollout", {
      rollout: { name: "fine", stableVersion: "v1", canaryVersion: "v2", gates: [{ name: "errors", minSamples: "100", errorRate: { max: 0.02 } }] },
      reason: "first canary",
    });
    expect(r.status).toBe(200);
    expect(r.json).toMatchObject({ rollout: { name: "fine", gates: [{ name: "errors" }] } });
  });
});

describe("a request with an unsupported content type", () => {
  const accepted = ACCEPTED_MEDIA_TYPES.join(", ");

  it("without a content-type gets a 415 that says which types are accepted", async () => {
    const res = await fetch(`${server.url}/rollgate.v1.RolloutService/GetRollout`, { method: "POST", body: new Uint8Array(Buffer.from('{"name":"x"}')) });
    expect(res.status).toBe(415);
    expect(res.headers.get("content-type")).toBe("text/plain; charset=utf-8");
    expect(res.headers.get("accept-post")).toBe(accepted);
    const text = await res.text();
    expect(text).toMatch(/^no content-type was sent; rollgate accepts application\/json or application\/proto \(Connect/);
    expect(text).toContain("application/grpc+proto");
  });

  it("with text/plain (curl's -d without -H) names what it got", async () => {
    const r = await curl(["-X", "POST", `${server.url}/rollgate.v1.DecisionService/Route`, "-H", "content-type: text/plain", "-d", '{"rollout":"fine","key":"k"}']);
    expect(r.status).toBe(415);
    expect(r.body).toMatch(/^content-type "text\/plain" is not supported; rollgate accepts application\/json/);
  });

  it("a GET with an unknown encoding still gets the hint", async () => {
    const r = await curl([`${server.url}/rollgate.v1.DecisionService/Route?connect=v1&encoding=xml&message=x`]);
    expect(r.status).toBe(415);
    expect(r.body).toMatch(/^no content-type was sent; rollgate accepts application\/json/);
  });

  it("with an accepted type and parameters is served as before", async () => {
    const r = await curl(["-X", "POST", `${server.url}/rollgate.v1.DecisionService/Route`, "-H", "content-type: application/json; charset=utf-8", "-d", '{"rollout":"fine","key":"k"}']);
    expect(r.status).toBe(200);
    expect(r.json).toMatchObject({ version: expect.any(String) });
  });
});
