import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { OutcomeSchema, type Outcome } from "./gen/rollgate/v1/decision_service_pb.js";
import { Variant } from "./gen/rollgate/v1/rollout_pb.js";
import { variantToProto, type VariantName } from "./route-result.js";

/** What happened to one request, as an application reports it. */
export interface OutcomeInput {
  /** The variant that served it — what `route` answered. */
  readonly variant: VariantName | Variant;
  readonly success: boolean;
  /** Finite and >= 0. */
  readonly latencyMs: number;
  /** Up to 64 custom metrics (name → finite value), for metric gates. */
  readonly metrics?: Readonly<Record<string, number>>;
  /** Business invariants this request broke (for invariant gates). */
  readonly invariantViolations?: number;
  readonly key?: string;
  /** When it happened; unset means when the server receives the batch. */
  readonly time?: Date;
}

const MAX_METRICS = 64;

/**
 * Returns the wire Outcome of an input, or throws a RangeError naming the field.
 *
 * The server accepts or rejects a batch whole, so one bad outcome would cost the 499 good ones
 * batched with it: bad input is refused here, at the call that made it.
 */
export function outcomeToProto(o: OutcomeInput): Outcome {
  const variant = variantToProto(o.variant);
  if (variant !== Variant.STABLE && variant !== Variant.CANARY) throw new RangeError("outcome.variant: must be stable or canary");
  if (typeof o.latencyMs !== "number" || !Number.isFinite(o.latencyMs) || o.latencyMs < 0) {
    throw new RangeError("outcome.latencyMs: must be finite and >= 0");
  }
  const metrics = o.metrics ?? {};
  const names = Object.keys(metrics);
  if (names.length > MAX_METRICS) throw new RangeError(`outcome.metrics: at most ${MAX_METRICS} metrics`);
  for (const name of names) {
    if (!Number.isFinite(metrics[name])) throw new RangeError(`outcome.metrics["${name}"]: must be finite`);
  }
  const violations = o.invariantViolations ?? 0;
  if (!Number.isInteger(violations) || violations < 0 || violations > 0xffff_ffff) {
    throw new RangeError("outcome.invariantViolations: must be an integer >= 0");
  }
  return create(OutcomeSchema, {
    variant,
    success: o.success,
    latencyMs: o.latencyMs,
    metrics: { ...metrics },
    invariantViolations: violations,
    key: o.key ?? "",
    ...(o.time === undefined ? {} : { time: timestampFromDate(o.time) }),
  });
}
