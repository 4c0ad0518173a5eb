import { Code, ConnectError } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { DomainError, invalidArgument, notAllowed, promotionBlocked, type BlockingGate, type DomainErrorKind } from "../../src/domain/errors.js";
import { CODE_OF, toConnectError } from "../../src/service/errors.js";
import { AllowedTransitionsSchema, FieldViolationsSchema, PromotionBlockedSchema } from "../../gen/rollgate/v1/errors_pb.js";
import { Verdict } from "../../gen/rollgate/v1/health_pb.js";
import { Action } from "../../gen/rollgate/v1/rollout_pb.js";

describe("toConnectError: the one place domain errors become wire codes", () => {
  const table: [DomainErrorKind, Code][] = [
    ["invalid_argument", Code.InvalidArgument],
    ["not_found", Code.NotFound],
    ["already_exists", Code.AlreadyExists],
    ["failed_precondition", Code.FailedPrecondition],
    ["aborted", Code.Aborted],
    ["resource_exhausted", Code.ResourceExhausted],
    ["unauthenticated", Code.Unauthenticated],
    ["permission_denied", Code.PermissionDenied],
    ["unavailable", Code.Unavailable],
  ];

  it("covers every kind exactly once", () => {
    expect(Object.keys(CODE_OF).sort()).toEqual(table.map(([k]) => k).sort());
  });

  it.each(table)("%s → %s, message kept", (kind, code) => {
    const e = toConnectError(new DomainError(kind, `something ${kind}`), "req-1");
    expect(e.code).toBe(code);
    expect(e.rawMessage).toBe(`something ${kind}`);
  });

  it("passes ConnectErrors through untouched", () => {
    const original = new ConnectError("already wire", Code.Unauthenticated);
    expect(toConnectError(original, "req-2")).toBe(original);
  });

  it("turns anything else into INTERNAL with the request id only, keeping the cause server-side", () => {
    const secret = new Error("SQLITE_CORRUPT: database disk image is malformed at /var/lib/x");
    const e = toConnectError(secret, "req-3");
    expect(e.code).toBe(Code.Internal);
    expect(e.rawMessage).toBe("internal error (request id req-3)");
    expect(e.message).not.toContain("SQLITE");
    expect(e.details).toEqual([]);
    expect(e.cause).toBe(secret);
  });

  it("attaches field violations, allowed transitions and blocking gates as details", () => {
    const v = toConnectError(invalidArgument("outcomes[3].latency_ms", "must be finite and >= 0"), "r");
    expect(v.findDetails(FieldViolationsSchema)[0]!.violations).toEqual([
      expect.objectContaining({ field: "outcomes[3].latency_ms", description: "must be finite and >= 0" }),
    ]);
    const a = toConnectError(notAllowed("cannot", ["HALTED", "ROLLED_BACK"]), "r");
    expect(a.findDetails(AllowedTransitionsSchema)[0]!.allowed).toEqual(["HALTED", "ROLLED_BACK"]);
    const g = toConnectError(
      new DomainError("failed_precondition", "refused", {
        gates: [{ name: "errors", kind: "error_rate", onBreach: "rollback", verdict: "fail", observed: 0.3, threshold: 0.05, samples: 200, minSamples: 100, message: "canary error rate 0.3 > max 0.05" }],
      }),
      "r",
    );
    expect(g.findDetails(PromotionBlockedSchema)[0]!.gates[0]).toMatchObject({
      name: "errors",
      kind: "error_rate",
      onBreach: Action.ROLLBACK,
      verdict: Verdict.FAIL,
      observed: 0.3,
      threshold: 0.05,
      samples: 200n,
      message: "canary error rate 0.3 > max 0.05",
    });
  });

  it("refuses a blocked promotion naming each gate once, with its values in the details and the override spelt out", () => {
    const gates: BlockingGate[] = [
      { name: "errors", kind: "error_rate", onBreach: "rollback", verdict: "fail", observed: 0.3, threshold: 0.05, baseline: 0.01, samples: 200, minSamples: 100, message: "canary error rate 0.3 > max 0.05" },
      { name: "p99", kind: "latency", onBreach: "hold", verdict: "inconclusive", observed: 0, threshold: 300, samples: 20, minSamples: 1000, message: "20 of 1000 samples" },
    ];
    const e = toConnectError(promotionBlocked("checkout", gates), "r");
    expect(e.code).toBe(Code.FailedPrecondition);
    expect(e.rawMessage).toBe('promotion of "checkout" refused by gates: errors FAIL, p99 INCONCLUSIVE; to override, promote with --force --reason "…" (force and reason in the API)');
    const sent = e.findDetails(PromotionBlockedSchema)[0]!.gates;
    expect(sent.map((g) => [g.name, g.verdict, g.onBreach, g.baseline])).toEqual([
      ["errors", Verdict.FAIL, Action.ROLLBACK, 0.01],
      ["p99", Verdict.INCONCLUSIVE, Action.HOLD, undefined],
    ]);
  });
});
