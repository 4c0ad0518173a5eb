import { create } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import { EventSchema, EventType } from "rollgate-client/gen/event_pb";
import { crossingLines, eventLine } from "../../src/cli/events-command.js";

const gateSnap = (sequential?: Record<string, unknown>) =>
  JSON.stringify({ summary: "rolled back", gates: [{ name: "latency", kind: "latency", verdict: "pass" }, { name: "errors", kind: "error_rate", verdict: sequential?.crossed === true ? "fail" : "pass", ...(sequential === undefined ? {} : { sequential }) }] });

const evidence = { bound: "max_ratio", look: 5, planned_looks: 20, crossed: true, statistic: 13, boundary: 12, expected: 5.02, p_value: 0.00251, alpha: 0.01, alpha_spent: 0.00541, spent_share: 0.541, rate_variation: 0 };

describe("rollgate events: a sequential crossing's evidence", () => {
  it("prints the crossing look's numbers under the event's line, from the snapshot", () => {
    const e = create(EventSchema, { seq: 7n, rollout: "checkout", type: EventType.ROLLED_BACK, actor: "evaluator", reason: "errors: …", snapshot: gateSnap(evidence) });
    const [line, more, ...rest] = eventLine(e).split("\n");
    expect(line).toMatch(/rolled_back\s+evaluator\s+errors: …$/);
    expect(more).toBe("        errors: sequential look 5 of 20 crossed: canary errors 13 >= boundary 12, p 0.00251, alpha spent 0.00541 of 0.01, no rate variation");
    expect(rest).toEqual([]);
    expect(crossingLines(gateSnap({ ...evidence, rate_variation: 0.2512 }))[0]).toMatch(/, rate variation 0\.251$/);
  });

  it("prints nothing more for events without a crossing (a live test, no sequential gate, no snapshot)", () => {
    expect(crossingLines(gateSnap({ ...evidence, crossed: false }))).toEqual([]);
    expect(crossingLines(gateSnap())).toEqual([]);
    expect(crossingLines("")).toEqual([]);
    expect(crossingLines('{"crossed":true')).toEqual([]);
  });
});
