import { create } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { FieldViolationsSchema } from "../../../gen/rollgate/v1/errors_pb.js";
import { encodeGrpcMessage } from "../../../src/server/grpc/grpc-message.js";
import { grpcTimeoutOf, statusHeaders } from "../../../src/server/grpc/status.js";

describe("gRPC status headers", () => {
  it("writes grpc-status and a minimally encoded grpc-message", () => {
    const h = statusHeaders(new ConnectError("key: must not be empty", Code.InvalidArgument));
    expect(h).toEqual({ "grpc-status": "3", "grpc-message": "key: must not be empty" });
  });

  it("carries the error's details in grpc-status-details-bin (google.rpc.Status, base64)", () => {
    const detail = { desc: FieldViolationsSchema, value: create(FieldViolationsSchema, {}) };
    const h = statusHeaders(new ConnectError("outcomes[3].latency_ms: must be finite and >= 0", Code.InvalidArgument, undefined, [detail]));
    expect(h["grpc-status"]).toBe("3");
    const bin = Buffer.from(String(h["grpc-status-details-bin"]), "base64").toString("latin1");
    expect(bin).toContain("outcomes[3].latency_ms: must be finite and >= 0");
    expect(bin).toContain(FieldViolationsSchema.typeName);
  });
});

describe("grpc-message encoding", () => {
  it("percent-encodes bytes outside 0x20..0x7E and '%' itself, and nothing else", () => {
    expect(encodeGrpcMessage("rollout \"ghost\" not found: a/b?c=d&e")).toBe("rollout \"ghost\" not found: a/b?c=d&e");
    expect(encodeGrpcMessage("100% sure")).toBe("100%25 sure");
    expect(encodeGrpcMessage("line\nbreak\ttab")).toBe("line%0Abreak%09tab");
    expect(encodeGrpcMessage("ключ ✓")).toBe("%D0%BA%D0%BB%D1%8E%D1%87 %E2%9C%93");
    expect(encodeGrpcMessage("~\x7f")).toBe("~%7F");
    // What a gRPC client does on receipt: percent-decoding gives the message back.
    expect(decodeURIComponent(encodeGrpcMessage("ключ: 50% ✓\r\n"))).toBe("ключ: 50% ✓\r\n");
  });
});

describe("grpc-timeout", () => {
  it("reads every unit of the spec into milliseconds", () => {
    expect(grpcTimeoutOf("200m")).toEqual({ ms: 200 });
    expect(grpcTimeoutOf("3S")).toEqual({ ms: 3000 });
    expect(grpcTimeoutOf("2M")).toEqual({ ms: 120_000 });
    expect(grpcTimeoutOf("1H")).toEqual({ ms: 3_600_000 });
    expect(grpcTimeoutOf("5000u")).toEqual({ ms: 5 });
    expect(grpcTimeoutOf("7000000n")).toEqual({ ms: 7 });
  });

  it("means no deadline without the header, and refuses a malformed one", () => {
    expect(grpcTimeoutOf(undefined)).toEqual({});
    for (const bad of ["200", "m", "-1S", "123456789S", "1.5S", "1s"]) {
      const t = grpcTimeoutOf(bad);
      expect(t.ms, bad).toBeUndefined();
      expect(t.error, bad).toBeInstanceOf(ConnectError);
    }
  });
});
