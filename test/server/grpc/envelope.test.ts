import { create, toBinary } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { RouteRequestSchema } from "../../../gen/rollgate/v1/decision_service_pb.js";
import { decodeUnary, FRAME_HEADER, frameInPlace, frameOf, requestBody } from "../../../src/server/grpc/envelope.js";

const route = toBinary(RouteRequestSchema, create(RouteRequestSchema, { rollout: "checkout", key: "user-1" }));

/** Returns the error `fn` throws, as a ConnectError. */
function thrown(fn: () => unknown): ConnectError {
  try {
    fn();
  } catch (e) {
    return ConnectError.from(e);
  }
  throw new Error("did not throw");
}

describe("gRPC framing", () => {
  it("frames a message in the room left before it exactly as frameOf copies it", () => {
    const big = new Uint8Array(70_000).map((_, i) => i & 0xff);
    for (const body of [route, new Uint8Array(0), big]) {
      const roomy = new Uint8Array(FRAME_HEADER + body.length).fill(0xee);
      roomy.set(body, FRAME_HEADER);
      expect(Buffer.from(frameInPlace(roomy)).equals(frameOf(body))).toBe(true);
    }
  });

  it("frames a message: flags 0, 4-byte big-endian length, the bytes", () => {
    const f = frameOf(new Uint8Array([7, 8, 9]));
    expect([...f]).toEqual([0, 0, 0, 0, 3, 7, 8, 9]);
    expect([...frameOf(new Uint8Array(0))]).toEqual([0, 0, 0, 0, 0]);
    expect(frameOf(new Uint8Array(300)).readUInt32BE(1)).toBe(300);
  });

  it("decodes the one message of a unary request", () => {
    const req = decodeUnary(RouteRequestSchema, frameOf(route));
    expect({ rollout: req.rollout, key: req.key }).toEqual({ rollout: "checkout", key: "user-1" });
    // An empty message is a valid request with every field at its default.
    expect(decodeUnary(RouteRequestSchema, frameOf(new Uint8Array(0))).key).toBe("");
  });

  it("refuses malformed bodies with connect's messages; what does not decode is INVALID_ARGUMENT, never INTERNAL", () => {
    const cases: [Buffer, Code, string][] = [
      [Buffer.alloc(0), Code.Unimplemented, "protocol error: missing input message for unary method"],
      [Buffer.from([0, 0, 0]), Code.InvalidArgument, "protocol error: incomplete envelope"],
      [Buffer.from([1, 0, 0, 0, 0]), Code.InvalidArgument, "received compressed envelope, but do not know how to decompress"],
      [Buffer.from([0, 0, 0, 0, 9, 1, 2]), Code.InvalidArgument, "protocol error: promised 9 bytes in enveloped message, got 2 bytes"],
      [Buffer.concat([frameOf(route), frameOf(route)]), Code.Unimplemented, "protocol error: received extra input message for unary method"],
    ];
    for (const [body, code, message] of cases) {
      const e = thrown(() => decodeUnary(RouteRequestSchema, body));
      expect([e.code, e.rawMessage]).toEqual([code, message]);
    }
    const bad = thrown(() => decodeUnary(RouteRequestSchema, frameOf(new Uint8Array([0xff, 0xff, 0xff]))));
    expect(bad.code).toBe(Code.InvalidArgument);
    expect(bad.rawMessage).toMatch(/^parse binary: /);
  });
});

describe("request body", () => {
  it("gathers chunks into the bytes received, one buffer", () => {
    const framed = frameOf(route);
    const b = requestBody(1024);
    for (const piece of [framed.subarray(0, 2), framed.subarray(2, 9), framed.subarray(9)]) expect(b.push(piece)).toBeUndefined();
    expect(b.bytes().equals(framed)).toBe(true);
    const one = requestBody(1024);
    one.push(framed);
    expect(one.bytes()).toBe(framed); // a single chunk is not copied
  });

  it("refuses a message whose envelope declares more than the limit, even with the length split across chunks", () => {
    const b = requestBody(100);
    expect(b.push(Buffer.from([0, 0, 0]))).toBeUndefined();
    const e = b.push(Buffer.from([0, 101]));
    expect([e?.code, e?.rawMessage]).toEqual([Code.ResourceExhausted, "message size 101 is larger than configured readMaxBytes 100"]);
  });

  it("refuses more bytes than one envelope of the limit, whatever the envelope says", () => {
    const b = requestBody(100);
    expect(b.push(Buffer.from([0, 0, 0, 0, 100]))).toBeUndefined();
    expect(b.push(Buffer.alloc(100))).toBeUndefined(); // exactly the limit: fine
    const e = b.push(Buffer.alloc(1));
    expect([e?.code, e?.rawMessage]).toEqual([Code.ResourceExhausted, "message size is larger than configured readMaxBytes 100"]);
    expect(FRAME_HEADER).toBe(5);
  });
});
