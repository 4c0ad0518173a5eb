import type { EngineTracer } from "../service/engine.js";
import type { Store } from "../store/store.js";
import { ConfigError } from "./config.js";
import type { CallTracer } from "./observe.js";

/**
 * OpenTelemetry traces, off unless the standard `OTEL_*` variables configure them. This module
 * only reads the settings: the SDK (tracing-sdk.ts and the `@opentelemetry/*` packages it
 * imports) is loaded by `startTracing`, with a dynamic import, only when they are on — the
 * default start and every CLI command load none of it, and the serving paths then see no
 * tracer at all (one undefined check per call).
 */

/** Span exporters rollgate can send to. */
export type TraceExporter = "otlp" | "console";

/** A sampler, as `OTEL_TRACES_SAMPLER` names it. */
export type SamplerName = "always_on" | "always_off" | "traceidratio" | "parentbased_always_on" | "parentbased_always_off" | "parentbased_traceidratio";

const SAMPLERS: readonly SamplerName[] = ["always_on", "always_off", "traceidratio", "parentbased_always_on", "parentbased_always_off", "parentbased_traceidratio"];

/** The tracing settings, validated; present only when tracing is on. */
export interface TracingSettings {
  readonly exporters: readonly TraceExporter[];
  /** Where OTLP/HTTP spans go (`…/v1/traces`), when `otlp` is among the exporters. */
  readonly otlpUrl?: string;
  readonly sampler: SamplerName;
  /** The ratio of the `*traceidratio` samplers, 0..1. */
  readonly samplerRatio: number;
}

/**
 * Returns the tracing settings the environment gives, undefined when tracing is off, or throws a
 * ConfigError naming the variable that is wrong. On means: `OTEL_TRACES_EXPORTER` names an
 * exporter (`otlp`, `console`), or it is unset and `OTEL_EXPORTER_OTLP_ENDPOINT` or
 * `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` is set; `OTEL_SDK_DISABLED=true` and
 * `OTEL_TRACES_EXPORTER=none` turn it off whatever else is set.
 */
export function tracingSettingsOf(env: NodeJS.ProcessEnv): TracingSettings | undefined {
  const get = (name: string): string | undefined => {
    const v = env[name]?.trim();
    return v === undefined || v === "" ? undefined : v;
  };
  if (get("OTEL_SDK_DISABLED")?.toLowerCase() === "true") return undefined;
  const tracesEndpoint = get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT");
  const endpoint = get("OTEL_EXPORTER_OTLP_ENDPOINT");
  const named = get("OTEL_TRACES_EXPORTER")
    ?.split(",")
    .map((s) => s.trim().toLowerCase())
    .filter((s) => s !== "");
  for (const name of named ?? []) {
    if (name !== "otlp" && name !== "console" && name !== "none") {
      throw new ConfigError(`OTEL_TRACES_EXPORTER: "${name}" is not an exporter rollgate has; use otlp, console or none`);
    }
  }
  const exporters: TraceExporter[] =
    named === undefined ? (tracesEndpoint !== undefined || endpoint !== undefined ? ["otlp"] : []) : named.includes("none") ? [] : [...new Set(named as TraceExporter[])];
  if (exporters.length === 0) return undefined;

  let otlpUrl: string | undefined;
  if (exporters.includes("otlp")) {
    // The traces protocol, when set, wins over the general one.
    for (const name of ["OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"]) {
      const protocol = get(name);
      if (protocol === undefined) continue;
      if (protocol !== "http/json") {
        throw new ConfigError(`${name}: "${protocol}" is not supported; rollgate sends OTLP over HTTP as JSON (http/json), which collectors accept on their OTLP/HTTP port`);
      }
      break;
    }
    // The spec: a signal's own endpoint is used as it is; the base endpoint gets /v1/traces.
    const [name, url] =
      tracesEndpoint !== undefined
        ? ["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", tracesEndpoint]
        : ["OTEL_EXPORTER_OTLP_ENDPOINT", endpoint === undefined ? "http://localhost:4318" : `${endpoint.replace(/\/+$/, "")}/v1/traces`];
    let parsed: URL;
    try {
      parsed = new URL(url);
    } catch {
      throw new ConfigError(`${name}: "${url}" is not a URL, e.g. http://localhost:4318`);
    }
    if (parsed.protocol !== "http:" && parsed.protocol !== "https:") throw new ConfigError(`${name}: "${url}" must be an http:// or https:// URL`);
    otlpUrl = url;
  }

  const samplerSetting = get("OTEL_TRACES_SAMPLER")?.toLowerCase() ?? "parentbased_always_on";
  if (!(SAMPLERS as readonly string[]).includes(samplerSetting)) {
    throw new ConfigError(`OTEL_TRACES_SAMPLER: "${samplerSetting}" must be one of ${SAMPLERS.join(", ")}`);
  }
  const sampler = samplerSetting as SamplerName;
  const arg = get("OTEL_TRACES_SAMPLER_ARG");
  let samplerRatio = 1;
  if (sampler.endsWith("traceidratio") && arg !== undefined) {
    samplerRatio = Number(arg);
    if (!(samplerRatio >= 0 && samplerRatio <= 1)) throw new ConfigError(`OTEL_TRACES_SAMPLER_ARG: "${arg}" must be a ratio from 0 to 1`);
  }
  return { exporters, ...(otlpUrl === undefined ? {} : { otlpUrl }), sampler, samplerRatio };
}

/** Where the store keeps its state, for the store spans' `db.*` attributes. */
export interface StoreTraceInfo {
  readonly system: "sqlite" | "postgresql";
  /** The database: SQLite's file path, or PostgreSQL's database name. */
  readonly namespace: string;
}

/** Tracing, started: the hooks the server hands to the serving paths, the store and the engine. */
export interface Tracing {
  /** Starts each call's server span (observe.ts CallTracer). */
  readonly call: CallTracer;
  /** The evaluator's round and per-rollout spans. */
  readonly engine: EngineTracer;
  /** Returns `store` with a span around each of its operations (its other methods as they are). */
  store(store: Store, info: StoreTraceInfo): Store;
  /** Tells the call spans the address the server listens on (server.address, server.port). */
  listening(host: string, port: number): void;
  /** Exports what is still buffered and stops; call once, last at shutdown. */
  shutdown(): Promise<void>;
}

/**
 * What the trace's resource says about this process besides service.name "rollgate" and
 * service.version (OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES override them).
 */
export interface TracingResource {
  /** The replica id (service.instance.id). */
  readonly instanceId: string;
}

/** Where the SDK's own problems (an unreachable collector) are reported. */
export interface TracingLog {
  warn(message: string): void;
}

/** Loads the OpenTelemetry SDK and starts tracing with `settings` (see tracing-sdk.ts). */
export async function startTracing(settings: TracingSettings, resource: TracingResource, log: TracingLog): Promise<Tracing> {
  const { createTracing } = await import("./tracing-sdk.js");
  return createTracing(settings, resource, log);
}
