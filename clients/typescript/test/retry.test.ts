import { Code, ConnectError, createClient, createRouterTransport } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { DecisionService } from "../src/gen/rollgate/v1/decision_service_pb.js";
import { Variant } from "../src/gen/rollgate/v1/rollout_pb.js";
import { backoffMs, retryInterceptor, DEFAULT_RETRY_POLICY } from "../src/retry.js";

/** A DecisionService in memory whose Route fails with the given codes first, then answers. */
function flaky(codes: Code[]) {
  let calls = 0;
  const transport = createRouterTransport(
    ({ service }) => {
      service(DecisionService, {
        route(req) {
          const code = codes[calls++];
          if (code !== undefined) throw new ConnectError(`attempt ${calls}`, code);
          return { variant: Variant.CANARY, version: "v2", bucket: 7, weightBp: 500, features: [], reason: 1, rolloutVersion: 1n, rollout: req.rollout };
        },
      });
    },
    { transport: { interceptors: [retryInterceptor({ ...DEFAULT_RETRY_POLICY, initialBackoffMs: 1, maxBackoffMs: 2 })] } },
  );
  return { client: createClient(DecisionService, transport), calls: () => calls };
}

describe("retries", () => {
  it("retries UNAVAILABLE with backoff until an attempt succeeds", async () => {
    const f = flaky([Code.Unavailable, Code.Unavailable]);
    const r = await f.client.route({ rollout: "r", key: "k" });
    expect(r.version).toBe("v2");
    expect(f.calls()).toBe(3);
  });

  it("gives up after maxAttempts with the last UNAVAILABLE", async () => {
    const f = flaky([Code.Unavailable, Code.Unavailable, Code.Unavailable, Code.Unavailable, Code.Unavailable]);
    await expect(f.client.route({ rollout: "r", key: "k" })).rejects.toMatchObject({ code: Code.Unavailable, rawMessage: "attempt 4" });
    expect(f.calls()).toBe(4);
  });

  it.each([Code.InvalidArgument, Code.NotFound, Code.FailedPrecondition, Code.Internal, Code.DeadlineExceeded, Code.Unauthenticated])(
    "never retries code %s",
    async (code) => {
      const f = flaky([code]);
      await expect(f.client.route({ rollout: "r", key: "k" })).rejects.toMatchObject({ code });
      expect(f.calls()).toBe(1);
    },
  );

  it("backs off exponentially with jitter within [ceiling/2, ceiling], capped", () => {
    const policy = { maxAttempts: 10, initialBackoffMs: 100, maxBackoffMs: 1000, multiplier: 2 };
    expect([1, 2, 3, 4, 5].map((n) => backoffMs(policy, n, () => 0))).toEqual([50, 100, 200, 400, 500]);
    expect([1, 2, 3, 4, 5].map((n) => backoffMs(policy, n, () => 1))).toEqual([100, 200, 400, 800, 1000]);
  });
});
