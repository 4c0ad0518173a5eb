/**
 * Typed domain errors. Domain code throws these and only these; `toConnectError` in
 * src/service maps each kind to a wire code in one place.
 */

import type { Verdict } from "./gates.js";
import type { Action, GateKind } from "./rollout.js";

/** The kinds of domain error, one per wire code they map to. */
export type DomainErrorKind =
  | "invalid_argument"
  | "not_found"
  | "already_exists"
  | "failed_precondition"
  | "aborted"
  | "resource_exhausted"
  | "unauthenticated"
  | "permission_denied"
  | "unavailable";

/** One problem found with a field, for error details. */
export interface FieldViolation {
  readonly field: string;
  readonly description: string;
}

/**
 * A gate that blocks a promotion, for error details: a gate's evaluation (a GateResult is one)
 * whose verdict is FAIL or INCONCLUSIVE.
 */
export interface BlockingGate {
  readonly name: string;
  readonly kind: GateKind;
  /** What a breach of it does. */
  readonly onBreach: Action;
  readonly verdict: Verdict;
  readonly observed: number;
  readonly threshold: number;
  /** The stable's value of the same measure, when the gate compares against it. */
  readonly baseline?: number;
  readonly samples: number;
  readonly minSamples: number;
  /** The verdict in words. */
  readonly message: string;
}

/** Structured data a domain error can carry beside its message. */
export interface DomainErrorDetails {
  readonly violations?: readonly FieldViolation[];
  readonly allowed?: readonly string[];
  readonly gates?: readonly BlockingGate[];
}

/** An error of the domain: a kind, a message a caller may read, and optional details. */
export class DomainError extends Error {
  override readonly name = "DomainError";
  constructor(
    readonly kind: DomainErrorKind,
    message: string,
    readonly details: DomainErrorDetails = {},
  ) {
    super(message);
  }
}

/** Returns an invalid-argument error naming the field and the rule, e.g. `steps[1].weight_bp: ...`. */
export function invalidArgument(field: string, rule: string): DomainError {
  return new DomainError("invalid_argument", `${field}: ${rule}`, {
    violations: [{ field, description: rule }],
  });
}

/** Returns a not-found error for a named rollout. */
export function rolloutNotFound(name: string): DomainError {
  return new DomainError("not_found", `rollout "${name}" not found`);
}

/** Returns a failed-precondition error that names the allowed alternatives. */
export function notAllowed(what: string, allowed: readonly string[]): DomainError {
  const list = allowed.length > 0 ? allowed.join(", ") : "none";
  return new DomainError("failed_precondition", `${what}; allowed: ${list}`, { allowed });
}

/**
 * Returns the refusal of a promotion that gates block. The message names each gate and its
 * verdict once (the details carry the values) and says how to override.
 */
export function promotionBlocked(rollout: string, gates: readonly BlockingGate[]): DomainError {
  const list = gates.map((g) => `${g.name} ${g.verdict.toUpperCase()}`).join(", ");
  return new DomainError(
    "failed_precondition",
    `promotion of "${rollout}" refused by gates: ${list}; to override, promote with --force --reason "…" (force and reason in the API)`,
    { gates },
  );
}

/** Returns true when a value is a DomainError. */
export function isDomainError(e: unknown): e is DomainError {
  return e instanceof DomainError;
}
