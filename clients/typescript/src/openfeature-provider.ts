import {
  ErrorCode,
  OpenFeatureEventEmitter,
  ProviderEvents,
  type EvaluationContext,
  type JsonValue,
  type Provider,
  type ResolutionDetails,
  type TrackingEventDetails,
} from "@openfeature/server-sdk";
import { Stage } from "./gen/rollgate/v1/rollout_pb.js";
import type { LocalRollgateClient } from "./local-client.js";
import { isValidKey, type LocalTable } from "./local-routing.js";
import type { RouteReasonName, RouteResult } from "./route-result.js";

/**
 * An OpenFeature provider (`@openfeature/server-sdk`) over local mode: flags are evaluated in
 * process from the WatchRoutes state, with the flag mapping of rollgate's OFREP endpoints
 * (docs/ofrep.md): a rollout is a string flag whose value is the version `route` answers, and
 * `rollout/feature` is a boolean flag.
 */

/** Separator between a rollout and one of its features in a boolean flag key. */
export const FEATURE_SEPARATOR = "/";

/** The OpenFeature reason of each routing reason, as OFREP answers it. */
const REASONS: Readonly<Record<RouteReasonName, string>> = {
  weight: "SPLIT",
  override: "TARGETING_MATCH",
  stage: "STATIC",
  rolled_back: "DISABLED",
  halted: "DISABLED",
  unspecified: "UNKNOWN",
  fallback: "DEFAULT",
};

/** Stage names as OFREP's metadata spells them (`rolled_back`). */
const STAGES: Readonly<Record<number, string>> = Object.fromEntries(
  Object.entries(Stage)
    .filter(([, v]) => typeof v === "number")
    .map(([k, v]) => [v, k.toLowerCase()]),
);

/** Settings of the provider. */
export interface RollgateProviderOptions {
  /** Close the local client when OpenFeature closes the provider. Default true. */
  readonly closeClient?: boolean;
}

/** An error answer: the default value with an OpenFeature error code. */
function failed<T>(value: T, errorCode: ErrorCode, errorMessage: string): ResolutionDetails<T> {
  return { value, reason: "ERROR", errorCode, errorMessage };
}

/**
 * Returns an OpenFeature server provider that evaluates rollgate rollouts in process through a
 * local-mode client. `initialize` waits for the first state (READY); the provider emits STALE
 * while the stream is down, READY when it answers again, and CONFIGURATION_CHANGED with the
 * changed flag keys on every update. `track(flagKey, context, { success, latencyMs })` buffers
 * an outcome for the variant the context's key is routed to.
 *
 * ```ts
 * const local = createLocalRollgateClient({ baseUrl: "http://127.0.0.1:8080", token });
 * await OpenFeature.setProviderAndWait(createRollgateProvider(local));
 * const version = await OpenFeature.getClient().getStringValue("checkout", "v1", { targetingKey: userId });
 * ```
 */
export function createRollgateProvider(local: LocalRollgateClient, options: RollgateProviderOptions = {}): Provider {
  const events = new OpenFeatureEventEmitter();
  /** The flag keys of each rollout as last seen, so that a removal names its features too. */
  const flagKeys = new Map<string, readonly string[]>();
  const keysOf = (rollout: string): readonly string[] => {
    const t = local.table(rollout);
    if (t === undefined) return [];
    return [rollout, ...Object.keys(t.state.features).sort().map((f) => `${rollout}${FEATURE_SEPARATOR}${f}`)];
  };
  let stale = false;
  const unsubscribe = local.subscribe({
    changed(rollouts) {
      const changed = new Set<string>();
      for (const r of rollouts) {
        for (const k of flagKeys.get(r) ?? [r]) changed.add(k);
        const now = keysOf(r);
        for (const k of now) changed.add(k);
        if (now.length === 0) flagKeys.delete(r);
        else flagKeys.set(r, now);
      }
      events.emit(ProviderEvents.ConfigurationChanged, { flagsChanged: [...changed] });
    },
    connection(connected) {
      if (!connected && !stale) {
        stale = true;
        events.emit(ProviderEvents.Stale, { message: "the WatchRoutes stream dropped: answering from the last state" });
      } else if (connected && stale) {
        stale = false;
        events.emit(ProviderEvents.Ready, { message: "the WatchRoutes stream answers again" });
      }
    },
  });

  /** Routes a context's key under a rollout, or says why it cannot. */
  function decide<T>(rollout: string, context: EvaluationContext, defaultValue: T): { table: LocalTable; result: RouteResult } | ResolutionDetails<T> {
    const table = local.table(rollout);
    if (table === undefined) {
      return local.stats().ready
        ? failed(defaultValue, ErrorCode.FLAG_NOT_FOUND, `no rollout "${rollout}"`)
        : failed(defaultValue, ErrorCode.PROVIDER_NOT_READY, "no routing state yet");
    }
    const key = context.targetingKey;
    if (key === undefined || key === "") return failed(defaultValue, ErrorCode.TARGETING_KEY_MISSING, "context.targetingKey is required");
    if (typeof key !== "string" || !isValidKey(key)) return failed(defaultValue, ErrorCode.INVALID_CONTEXT, "context.targetingKey must be 1..1024 bytes of UTF-8");
    return { table, result: local.route(rollout, key) };
  }

  function metadataOf(table: LocalTable, r: RouteResult) {
    return {
      rollout: table.rollout,
      bucket: r.bucket,
      weightBp: r.weightBp,
      rolloutVersion: Number(r.rolloutVersion),
      stage: STAGES[table.state.stage] ?? "unspecified",
      rolloutVariant: r.variant,
    };
  }

  /** Says which kind of flag a key is: a rollout (string) or a rollout's feature (boolean). */
  function split(flagKey: string): { rollout: string; feature: string | undefined } {
    const sep = flagKey.indexOf(FEATURE_SEPARATOR);
    return sep < 0 ? { rollout: flagKey, feature: undefined } : { rollout: flagKey.slice(0, sep), feature: flagKey.slice(sep + 1) };
  }

  function typeMismatch<T>(flagKey: string, defaultValue: T, wanted: string): ResolutionDetails<T> {
    const { rollout, feature } = split(flagKey);
    const t = local.table(rollout);
    if (t === undefined || (feature !== undefined && !Object.hasOwn(t.state.features, feature))) {
      return failed(defaultValue, local.stats().ready ? ErrorCode.FLAG_NOT_FOUND : ErrorCode.PROVIDER_NOT_READY, `no flag "${flagKey}"`);
    }
    return failed(defaultValue, ErrorCode.TYPE_MISMATCH, `"${flagKey}" is a ${feature === undefined ? "string" : "boolean"} flag, not ${wanted}`);
  }

  const provider: Provider = {
    metadata: { name: "rollgate" },
    runsOn: "server",
    events,

    async initialize() {
      if (!(await local.ready())) throw new Error("rollgate: no routing state within the startup timeout");
      for (const name of local.rolloutNames()) flagKeys.set(name, keysOf(name));
    },

    async onClose() {
      unsubscribe();
      if (options.closeClient ?? true) await local.close();
    },

    async resolveStringEvaluation(flagKey: string, defaultValue: string, context: EvaluationContext): Promise<ResolutionDetails<string>> {
      if (flagKey.includes(FEATURE_SEPARATOR)) return typeMismatch(flagKey, defaultValue, "a string");
      const d = decide(flagKey, context, defaultValue);
      if (!("table" in d)) return d;
      const { table, result } = d;
      return { value: result.version, variant: result.variant, reason: REASONS[result.reason], flagMetadata: metadataOf(table, result) };
    },

    async resolveBooleanEvaluation(flagKey: string, defaultValue: boolean, context: EvaluationContext): Promise<ResolutionDetails<boolean>> {
      const { rollout, feature } = split(flagKey);
      if (feature === undefined) return typeMismatch(flagKey, defaultValue, "a boolean");
      const d = decide(rollout, context, defaultValue);
      if (!("table" in d)) return d;
      const { table, result } = d;
      if (!Object.hasOwn(table.state.features, feature)) return failed(defaultValue, ErrorCode.FLAG_NOT_FOUND, `rollout "${rollout}" has no feature "${feature}"`);
      const on = result.features.includes(feature);
      return { value: on, variant: on ? "on" : "off", reason: REASONS[result.reason], flagMetadata: metadataOf(table, result) };
    },

    async resolveNumberEvaluation(flagKey: string, defaultValue: number): Promise<ResolutionDetails<number>> {
      return typeMismatch(flagKey, defaultValue, "a number");
    },

    async resolveObjectEvaluation<U extends JsonValue>(flagKey: string, defaultValue: U): Promise<ResolutionDetails<U>> {
      return typeMismatch(flagKey, defaultValue, "an object");
    },

    track(trackingEventName: string, context: EvaluationContext, details: TrackingEventDetails): void {
      const { rollout } = split(trackingEventName);
      const key = context.targetingKey;
      if (typeof key !== "string" || !isValidKey(key)) throw new RangeError("track: context.targetingKey is required");
      if (local.table(rollout) === undefined) throw new RangeError(`track: no rollout "${rollout}"`);
      const latencyMs = details.latencyMs ?? details.value;
      if (typeof latencyMs !== "number") throw new RangeError("track: details.latencyMs (or value) must be a number of milliseconds");
      const success = details.success ?? true;
      if (typeof success !== "boolean") throw new RangeError("track: details.success must be a boolean");
      const { variant } = local.route(rollout, key);
      local.recordOutcome(rollout, { variant, success, latencyMs, key });
    },
  };

  return provider;
}
