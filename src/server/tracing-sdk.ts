import { Code, type ConnectError } from "@connectrpc/connect";
import { context, diag, DiagLogLevel, propagation, ROOT_CONTEXT, SpanKind, SpanStatusCode, trace, type Attributes, type Span } from "@opentelemetry/api";
import { AsyncLocalStorageContextManager } from "@opentelemetry/context-async-hooks";
import { W3CTraceContextPropagator } from "@opentelemetry/core";
import { OTLPTraceExporter } from "@opentelemetry/exporter-trace-otlp-http";
import { defaultResource, detectResources, envDetector, resourceFromAttributes } from "@opentelemetry/resources";
import {
  AlwaysOffSampler,
  AlwaysOnSampler,
  BasicTracerProvider,
  BatchSpanProcessor,
  ConsoleSpanExporter,
  ParentBasedSampler,
  TraceIdRatioBasedSampler,
  type Sampler,
  type SpanProcessor,
} from "@opentelemetry/sdk-trace-base";
import {
  ATTR_DB_NAMESPACE,
  ATTR_DB_OPERATION_NAME,
  ATTR_DB_SYSTEM_NAME,
  ATTR_ERROR_TYPE,
  ATTR_NETWORK_PROTOCOL_NAME,
  ATTR_NETWORK_PROTOCOL_VERSION,
  ATTR_RPC_METHOD,
  ATTR_SERVER_ADDRESS,
  ATTR_SERVER_PORT,
  ATTR_SERVICE_INSTANCE_ID,
  ATTR_SERVICE_NAME,
  ATTR_SERVICE_VERSION,
} from "@opentelemetry/semantic-conventions";
import type { EvaluationTrace } from "../service/engine.js";
import type { Store } from "../store/store.js";
import { codeName, type CallRecord, type CallSpan, type CallTracer } from "./observe.js";
import type { SamplerName, StoreTraceInfo, Tracing, TracingLog, TracingResource, TracingSettings } from "./tracing.js";

/**
 * The OpenTelemetry SDK behind tracing.ts, loaded only when tracing is on: a tracer provider with
 * a batch span processor per exporter (OTLP/HTTP JSON, or the console), the AsyncLocalStorage
 * context manager (so that a store commit made while a call or an evaluation runs is that span's
 * child), and the W3C trace-context propagator for the callers' `traceparent`/`tracestate`.
 * The batch processor and the OTLP exporter read their own `OTEL_BSP_*` and
 * `OTEL_EXPORTER_OTLP_*` variables (headers, timeout, compression); the resource reads
 * `OTEL_SERVICE_NAME` and `OTEL_RESOURCE_ATTRIBUTES`.
 */

// Semantic-convention attributes still marked incubating: the package asks users to copy them
// rather than import its unstable entry point.
const ATTR_RPC_SYSTEM = "rpc.system";
const ATTR_RPC_SERVICE = "rpc.service";
const ATTR_RPC_GRPC_STATUS_CODE = "rpc.grpc.status_code";
const ATTR_RPC_CONNECT_RPC_ERROR_CODE = "rpc.connect_rpc.error_code";
const ATTR_DB_RESPONSE_RETURNED_ROWS = "db.response.returned_rows";

/**
 * Codes that make a server span an error (the RPC semantic conventions for servers): the
 * server's own failures. A caller's mistake (INVALID_ARGUMENT, NOT_FOUND, …) is recorded in the
 * status-code attribute and leaves the span's status unset.
 */
const SERVER_ERRORS: ReadonlySet<Code> = new Set([Code.Unknown, Code.DeadlineExceeded, Code.Unimplemented, Code.Internal, Code.Unavailable, Code.DataLoss]);

/** How long shutdown waits for the last spans to be exported. */
const SHUTDOWN_EXPORT_MS = 2000;

/** The package version (dist/src/server → the package root). */
async function packageVersion(): Promise<string> {
  const { readFile } = await import("node:fs/promises");
  try {
    return (JSON.parse(await readFile(new URL("../../../package.json", import.meta.url), "utf8")) as { version: string }).version;
  } catch {
    return "unknown";
  }
}

function samplerOf(name: SamplerName, ratio: number): Sampler {
  switch (name) {
    case "always_on":
      return new AlwaysOnSampler();
    case "always_off":
      return new AlwaysOffSampler();
    case "traceidratio":
      return new TraceIdRatioBasedSampler(ratio);
    case "parentbased_always_on":
      return new ParentBasedSampler({ root: new AlwaysOnSampler() });
    case "parentbased_always_off":
      return new ParentBasedSampler({ root: new AlwaysOffSampler() });
    case "parentbased_traceidratio":
      return new ParentBasedSampler({ root: new TraceIdRatioBasedSampler(ratio) });
  }
}

/** Returns tracing started with `settings` (tracing.ts `startTracing` loads this module and calls it). */
export async function createTracing(settings: TracingSettings, info: TracingResource, log: TracingLog): Promise<Tracing> {
  // The SDK's own trouble (an unreachable collector, a refused export) goes to the server's log.
  diag.setLogger(
    { error: (m) => log.warn(m), warn: (m) => log.warn(m), info: () => undefined, debug: () => undefined, verbose: () => undefined },
    DiagLogLevel.WARN,
  );
  const version = await packageVersion();
  const resource = defaultResource()
    .merge(resourceFromAttributes({ [ATTR_SERVICE_NAME]: "rollgate", [ATTR_SERVICE_VERSION]: version, [ATTR_SERVICE_INSTANCE_ID]: info.instanceId }))
    // OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES win over the defaults above.
    .merge(detectResources({ detectors: [envDetector] }));
  const spanProcessors: SpanProcessor[] = settings.exporters.map((name) =>
    name === "console" ? new BatchSpanProcessor(new ConsoleSpanExporter()) : new BatchSpanProcessor(new OTLPTraceExporter({ url: settings.otlpUrl! })),
  );
  const provider = new BasicTracerProvider({ resource, sampler: samplerOf(settings.sampler, settings.samplerRatio), spanProcessors });
  const contextManager = new AsyncLocalStorageContextManager().enable();
  context.setGlobalContextManager(contextManager);
  const propagator = new W3CTraceContextPropagator();
  propagation.setGlobalPropagator(propagator);
  trace.setGlobalTracerProvider(provider);
  const tracer = provider.getTracer("rollgate", version);

  let serverAddress = "";
  let serverPort = 0;
  // One carrier and getter for every extraction: extract is synchronous.
  const carrier: { traceparent?: string; tracestate?: string } = {};
  const getter = { get: (c: typeof carrier, k: string) => c[k as keyof typeof carrier], keys: (c: typeof carrier) => Object.keys(c) };

  const call: CallTracer = (procedure, system, traceparent, tracestate) => {
    let parent = ROOT_CONTEXT;
    if (typeof traceparent === "string") {
      carrier.traceparent = traceparent;
      if (typeof tracestate === "string") carrier.tracestate = tracestate;
      else delete carrier.tracestate;
      parent = propagator.extract(ROOT_CONTEXT, carrier, getter);
    }
    const slash = procedure.indexOf("/");
    const attributes: Attributes = {
      [ATTR_RPC_SYSTEM]: system,
      [ATTR_RPC_SERVICE]: procedure.slice(0, slash),
      [ATTR_RPC_METHOD]: procedure.slice(slash + 1),
      [ATTR_SERVER_ADDRESS]: serverAddress,
      [ATTR_SERVER_PORT]: serverPort,
      [ATTR_NETWORK_PROTOCOL_NAME]: "http",
    };
    // gRPC is always HTTP/2; Connect may be HTTP/1.1 or HTTP/2, which the handler is not told.
    if (system === "grpc") attributes[ATTR_NETWORK_PROTOCOL_VERSION] = "2";
    const span = tracer.startSpan(procedure, { kind: SpanKind.SERVER, attributes }, parent);
    return callSpan(span, trace.setSpan(parent, span), system === "grpc");
  };

  const engine = {
    round: (due: number, fn: () => Promise<void>) => active("rollgate.evaluation_round", { "rollgate.evaluation.due": due }, fn),
    evaluation: (rollout: string, fn: (decided: (d: EvaluationTrace) => void) => Promise<void>) =>
      active("rollgate.evaluate", { "rollgate.rollout": rollout }, (span) => fn((d) => span.setAttributes(evaluationAttributes(d)))),
  };

  /** Runs fn inside a new active span that ends when fn settles (an error status when it throws). */
  async function active<T>(name: string, attributes: Attributes, fn: (span: Span) => Promise<T>, kind = SpanKind.INTERNAL): Promise<T> {
    return tracer.startActiveSpan(name, { kind, attributes }, async (span) => {
      try {
        return await fn(span);
      } catch (e) {
        span.recordException(e as Error);
        span.setStatus({ code: SpanStatusCode.ERROR, message: (e as Error).message });
        throw e;
      } finally {
        span.end();
      }
    });
  }

  return {
    call,
    engine,
    store: (store, where) => tracedStore(store, where, active),
    listening(host, port) {
      serverAddress = host;
      serverPort = port;
    },
    async shutdown() {
      // An unreachable collector must not hold up the exit: what is not out in time is dropped.
      let timer: NodeJS.Timeout | undefined;
      const late = new Promise<void>((resolve) => (timer = setTimeout(resolve, SHUTDOWN_EXPORT_MS).unref()));
      await Promise.race([provider.shutdown().catch((e: unknown) => log.warn(`shutdown: ${(e as Error).message}`)), late]);
      clearTimeout(timer);
      contextManager.disable();
    },
  };
}

/** Returns the CallSpan of a started server span. */
function callSpan(span: Span, ctx: ReturnType<typeof trace.setSpan>, grpc: boolean): CallSpan {
  return {
    run: (fn) => context.with(ctx, fn),
    end(call: CallRecord, error: ConnectError | undefined) {
      // A sampled-out span records nothing: skip building its attributes.
      if (!span.isRecording()) return span.end();
      const code = error?.code;
      if (grpc) span.setAttribute(ATTR_RPC_GRPC_STATUS_CODE, code ?? 0);
      else if (code !== undefined) span.setAttribute(ATTR_RPC_CONNECT_RPC_ERROR_CODE, codeName(code));
      if (call.rollout !== "") span.setAttribute("rollgate.rollout", call.rollout);
      span.setAttribute("rollgate.request_id", call.requestId);
      span.setAttribute("rollgate.caller", call.caller);
      if (code !== undefined && SERVER_ERRORS.has(code)) {
        span.setAttribute(ATTR_ERROR_TYPE, codeName(code));
        span.setStatus({ code: SpanStatusCode.ERROR, message: error?.rawMessage ?? "" });
      }
      span.end();
    },
  };
}

/** The attributes of one rollout's evaluation span. */
function evaluationAttributes(d: EvaluationTrace): Attributes {
  return {
    "rollgate.rollout.stage": d.stage,
    "rollgate.rollout.step": d.step,
    "rollgate.rollout.weight_bp": d.weightBp,
    "rollgate.decision": d.decision,
    "rollgate.decision.reason": d.reason,
    "rollgate.decision.blocking_gates": [...d.blocking],
    "rollgate.decision.acted": d.acted !== undefined,
    ...(d.acted === undefined ? {} : { "rollgate.decision.transition": d.acted }),
    "rollgate.decision.dry_run": d.dryRun,
    "rollgate.health.score": d.score,
  };
}

type Active = <T>(name: string, attributes: Attributes, fn: (span: Span) => Promise<T>, kind?: SpanKind) => Promise<T>;

/**
 * Returns `store` with a client span around each operation that reads or writes the database:
 * name `store.<operation>`, db.system.name, db.namespace, db.operation.name, and the rows
 * written (`rollgate.store.rows`) or read (`db.response.returned_rows`). Every other method
 * (PostgreSQL's leadership, change feed, ping) is the store's own, through the prototype.
 */
function tracedStore(store: Store, where: StoreTraceInfo, active: Active): Store {
  const base = { [ATTR_DB_SYSTEM_NAME]: where.system, [ATTR_DB_NAMESPACE]: where.namespace };
  const op = <T>(operation: string, attributes: Attributes, fn: () => Promise<T>, returned?: (r: T) => number): Promise<T> =>
    active(
      `store.${operation}`,
      { ...base, [ATTR_DB_OPERATION_NAME]: operation, ...attributes },
      async (span) => {
        const r = await fn();
        if (returned !== undefined) span.setAttribute(ATTR_DB_RESPONSE_RETURNED_ROWS, returned(r));
        return r;
      },
      SpanKind.CLIENT,
    );
  // PostgreSQL's own reads, which the engine looks for by name.
  type Extra = {
    loadPeerWindowBuckets?: () => Promise<readonly unknown[]>;
    loadRollout?: (name: string) => Promise<unknown>;
    loadAnalysisStates?: () => Promise<ReadonlyMap<string, string>>;
  };
  const traced = Object.create(store) as Store & Extra;
  traced.commit = (change) =>
    op(
      "commit",
      {
        "rollgate.rollout": change.put?.name ?? change.remove ?? change.events[0]?.rollout ?? "",
        "rollgate.store.rows": change.events.length + (change.put === undefined ? 0 : 1) + (change.remove === undefined ? 0 : 1),
        "rollgate.store.events": change.events.length,
      },
      () => store.commit(change),
    );
  // A group commit (several queued changes, one transaction): one span, the child of the call
  // whose change opened the group; the rollouts and rows are the group's.
  traced.commitMany = (changes) =>
    op(
      "commit",
      {
        "rollgate.rollout": [...new Set(changes.map((c) => c.put?.name ?? c.remove ?? c.events[0]?.rollout ?? ""))].join(","),
        "rollgate.store.rows": changes.reduce((n, c) => n + c.events.length + (c.put === undefined ? 0 : 1) + (c.remove === undefined ? 0 : 1), 0),
        "rollgate.store.events": changes.reduce((n, c) => n + c.events.length, 0),
        "rollgate.store.changes": changes.length,
      },
      () => store.commitMany(changes),
    );
  traced.flushWindows = (flush) =>
    op(
      "flush_windows",
      { "rollgate.store.rows": flush.buckets.length + flush.cleared.length + flush.analysis.length, "rollgate.store.buckets": flush.buckets.length },
      () => store.flushWindows(flush),
    );
  traced.listEvents = (q) => op("list_events", q.rollout === undefined ? {} : { "rollgate.rollout": q.rollout }, () => store.listEvents(q), (r) => r.length);
  traced.loadRollouts = () => op("load_rollouts", {}, () => store.loadRollouts(), (r) => r.length);
  traced.loadWindowBuckets = () => op("load_window_buckets", {}, () => store.loadWindowBuckets(), (r) => r.length);
  const { loadPeerWindowBuckets: peers, loadRollout: one, loadAnalysisStates: states } = store as Store & Extra;
  if (typeof states === "function") traced.loadAnalysisStates = () => op("load_analysis_states", {}, () => states.call(store), (r) => r.size);
  if (typeof peers === "function") traced.loadPeerWindowBuckets = () => op("load_peer_window_buckets", {}, () => peers.call(store), (r) => r.length);
  if (typeof one === "function") traced.loadRollout = (name) => op("load_rollout", { "rollgate.rollout": name }, () => one.call(store, name), (r) => (r === undefined ? 0 : 1));
  return traced;
}
