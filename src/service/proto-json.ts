import { fromJson, toJson, type JsonObject, type JsonValue } from "@bufbuild/protobuf";
import type { AuditEvent } from "../domain/audit-chain.js";
import { createRollout } from "../domain/rollout-machine.js";
import { normalizeSpec } from "../domain/validation.js";
import { eventFromProto, rolloutToProto, specInputFromProto } from "./convert.js";
import { EventSchema } from "../../gen/rollgate/v1/event_pb.js";
import { RolloutSchema } from "../../gen/rollgate/v1/rollout_pb.js";

/**
 * The service's conversions for code outside the server that holds its own copy of the generated
 * messages (the CLI, through `rollgate-client/gen`): protobuf JSON in, domain values or protobuf
 * JSON out. JSON is the form both copies agree on by contract, so a caller never mixes two
 * generated trees or converts between them through bytes.
 */

/**
 * Returns a rollout configuration as the server would store it, in protobuf JSON: every default
 * the server applies filled in (the default ramp, salt = name, gate names and minimums, analysis
 * settings), state fields at their values for a new rollout. Throws the server's INVALID_ARGUMENT
 * DomainError for a configuration it would refuse.
 */
export function normalizedRolloutJson(rollout: JsonValue): JsonObject {
  const spec = normalizeSpec(specInputFromProto(fromJson(RolloutSchema, rollout), "rollout"), "rollout");
  return toJson(RolloutSchema, rolloutToProto(createRollout(spec, { name: "", now: 0 }))) as JsonObject;
}

/** Returns the domain form of an audit event given as protobuf JSON, for hash-chain verification. */
export function auditEventFromJson(event: JsonValue): AuditEvent {
  return eventFromProto(fromJson(EventSchema, event));
}
