import { Writable } from "node:stream";
import { Code, ConnectError } from "@connectrpc/connect";
import { pino } from "pino";
import { describe, expect, it } from "vitest";
import { createMetrics } from "../../src/server/metrics.js";
import { codeName, createCallReporter, rolloutOf } from "../../src/server/observe.js";

function capture() {
  const lines: Record<string, unknown>[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, done) {
      lines.push(JSON.parse(chunk.toString()) as Record<string, unknown>);
      done();
    },
  });
  return { lines, logger: pino({ level: "debug" }, stream) };
}

const call = (method: string, rollout = "checkout") => ({
  procedure: `rollgate.v1.X/${method}`,
  method,
  requestId: "req-1",
  caller: "deployer",
  rollout,
  started: process.hrtime.bigint(),
});

describe("call reporting", () => {
  it("names the rollout of data-plane, control-plane and create/update requests", () => {
    expect(rolloutOf({ rollout: "a", key: "k" })).toBe("a");
    expect(rolloutOf({ name: "b", reason: "" })).toBe("b");
    expect(rolloutOf({ rollout: { name: "c" } })).toBe("c");
    expect(rolloutOf({})).toBe("");
    expect(rolloutOf(undefined)).toBe("");
  });

  it("logs control-plane calls with request id, rollout, caller and code, hot-path calls only when they fail", async () => {
    const { lines, logger } = capture();
    const metrics = createMetrics(() => []);
    const report = createCallReporter(logger, metrics);
    report(call("Promote"), undefined);
    report(call("Route"), undefined);
    report(call("Route"), new ConnectError("key: must not be empty", Code.InvalidArgument));
    report(call("Pause"), new ConnectError("internal error (request id req-1)", Code.Internal, undefined, undefined, new Error("disk full")));
    await new Promise((r) => setImmediate(r));
    expect(lines.map((l) => [l.msg, l.method, l.code ?? null])).toEqual([
      ["rpc", "rollgate.v1.X/Promote", "ok"],
      ["rpc", "rollgate.v1.X/Route", "invalid_argument"],
      ["internal error", "rollgate.v1.X/Pause", null],
    ]);
    expect(lines[0]).toMatchObject({ requestId: "req-1", rollout: "checkout", caller: "deployer" });
    expect(lines[1]).toMatchObject({ error: "key: must not be empty" });
    expect((lines[2]!.err as { message: string }).message).toBe("disk full");
    const text = await metrics.registry.metrics();
    expect(text).toContain('rollgate_rpc_requests_total{method="rollgate.v1.X/Route",code="ok"} 1');
    expect(text).toContain('rollgate_rpc_requests_total{method="rollgate.v1.X/Route",code="invalid_argument"} 1');
  });

  it("spells codes in snake_case", () => {
    expect([codeName(undefined), codeName(Code.InvalidArgument), codeName(Code.DeadlineExceeded)]).toEqual(["ok", "invalid_argument", "deadline_exceeded"]);
  });
});
