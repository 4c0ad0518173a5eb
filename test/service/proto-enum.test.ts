import { describe, expect, it } from "vitest";
import { protoEnumConverters, type ProtoEnumConverters } from "../../src/service/proto-enum.js";
import { actionToProto, eventToProto, eventTypeFromProto, routeReasonToProto, stageToProto, variantFromProto, variantToProto, verdictToProto } from "../../src/service/convert.js";
import { Action, Stage, Variant } from "../../gen/rollgate/v1/rollout_pb.js";
import { EventType } from "../../gen/rollgate/v1/event_pb.js";
import { Verdict } from "../../gen/rollgate/v1/health_pb.js";
import { RouteReason } from "../../gen/rollgate/v1/decision_service_pb.js";
import type { EventType as DomainEventType } from "../../src/domain/audit-chain.js";

/** A proto-shaped enum as protoc-gen-es writes one. */
enum Colour {
  UNSPECIFIED = 0,
  RED = 1,
  GREEN = 2,
}
type DomainColour = "red" | "green";

describe("protoEnumConverters", () => {
  const colours: ProtoEnumConverters<Colour, DomainColour> = protoEnumConverters(Colour, {
    [Colour.UNSPECIFIED]: undefined,
    [Colour.RED]: "red",
    [Colour.GREEN]: "green",
  });

  it("converts both ways from one table", () => {
    expect(colours.toProto("red")).toBe(Colour.RED);
    expect(colours.toProto("green")).toBe(Colour.GREEN);
    expect(colours.fromProto(Colour.RED)).toBe("red");
    expect(colours.fromProto(Colour.GREEN)).toBe("green");
  });

  it("answers undefined for UNSPECIFIED and for a number this build does not know", () => {
    expect(colours.fromProto(Colour.UNSPECIFIED)).toBeUndefined();
    expect(colours.fromProto(7 as Colour)).toBeUndefined();
  });

  it("refuses a table where two proto values claim one domain value, naming both", () => {
    expect(() => protoEnumConverters(Colour, { [Colour.UNSPECIFIED]: undefined, [Colour.RED]: "red", [Colour.GREEN]: "red" })).toThrow(
      'proto enum values RED and GREEN both map to "red"',
    );
  });

  it("throws, rather than answering 0, for a domain value smuggled past the compiler", () => {
    expect(() => colours.toProto("blue" as DomainColour)).toThrow('no proto value for "blue"');
  });

  it("fails to compile when the table misses a proto value, names one the domain lacks, or misses a domain value", () => {
    // These lines are checked by `tsc -p tsconfig.test.json` (npm run lint); at run time they only build converters.
    // A proto value added to the enum and not yet mapped:
    // @ts-expect-error Property '2' is missing
    protoEnumConverters(Colour, { [Colour.UNSPECIFIED]: undefined, [Colour.RED]: "red" });

    // A domain value the table forgot (nothing maps to "green"):
    // @ts-expect-error toProto would not accept "green"
    const partial: ProtoEnumConverters<Colour, DomainColour> = protoEnumConverters(Colour, {
      [Colour.UNSPECIFIED]: undefined,
      [Colour.RED]: "red",
      [Colour.GREEN]: undefined,
    });

    // A value the domain does not have:
    // @ts-expect-error fromProto could answer "grene"
    const typo: ProtoEnumConverters<Colour, DomainColour> = protoEnumConverters(Colour, {
      [Colour.UNSPECIFIED]: undefined,
      [Colour.RED]: "red",
      [Colour.GREEN]: "grene",
    });
    expect([partial.fromProto(Colour.GREEN), typo.fromProto(Colour.GREEN)]).toEqual([undefined, "grene"]);
  });
});

describe("the converters of convert.ts", () => {
  /** Returns every value of a generated enum except UNSPECIFIED. */
  const specified = (e: Record<string, string | number>) => Object.values(e).filter((v): v is number => typeof v === "number" && v !== 0);

  it("give every proto value a domain value and back (variants, event types)", () => {
    expect(specified(Variant).map((v) => variantToProto(variantFromProto(v)!))).toEqual(specified(Variant));
    expect(specified(EventType).map((t) => eventTypeFromProto(t))).toHaveLength(specified(EventType).length);
    for (const t of specified(EventType)) {
      const type: DomainEventType = eventTypeFromProto(t);
      expect(eventToProto({ seq: 1, timeNs: 0n, rollout: "r", type, actor: "", reason: "", fingerprint: "", snapshot: "", prevHash: "", hash: "" }).type).toBe(t);
    }
    expect(() => eventTypeFromProto(EventType.UNSPECIFIED)).toThrow("unknown event type 0");
  });

  it("map each domain value to its own proto value (stages, actions, verdicts, route reasons)", () => {
    expect((["canary", "staging", "production", "rolled_back", "halted"] as const).map(stageToProto)).toEqual(specified(Stage));
    expect((["rollback", "halt", "step_back", "scale_down", "hold", "notify"] as const).map(actionToProto)).toEqual(specified(Action));
    expect((["pass", "warn", "fail", "inconclusive"] as const).map(verdictToProto)).toEqual(specified(Verdict));
    expect((["weight", "override", "stage", "rolled_back", "halted"] as const).map(routeReasonToProto)).toEqual(specified(RouteReason));
  });
});
