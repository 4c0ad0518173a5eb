import { describe, expect, it } from "vitest";
import { ConfigError, loadConfig } from "../../src/server/config.js";
import { tracingSettingsOf } from "../../src/server/tracing.js";

describe("tracing settings (the standard OTEL_* variables)", () => {
  it("are off unless an exporter or an OTLP endpoint is configured", () => {
    expect(tracingSettingsOf({})).toBeUndefined();
    // Describing the service or the sampler turns nothing on.
    expect(tracingSettingsOf({ OTEL_SERVICE_NAME: "x", OTEL_TRACES_SAMPLER: "always_on", OTEL_RESOURCE_ATTRIBUTES: "a=b" })).toBeUndefined();
    expect(tracingSettingsOf({ OTEL_EXPORTER_OTLP_ENDPOINT: "" })).toBeUndefined();
    expect(loadConfig({ db: ":memory:" }, {}).tracing).toBeUndefined();
  });

  it("send OTLP to <endpoint>/v1/traces, or to the traces endpoint as given", () => {
    expect(tracingSettingsOf({ OTEL_EXPORTER_OTLP_ENDPOINT: "http://collector:4318/" })).toEqual({
      exporters: ["otlp"],
      otlpUrl: "http://collector:4318/v1/traces",
      sampler: "parentbased_always_on",
      samplerRatio: 1,
    });
    expect(
      tracingSettingsOf({ OTEL_EXPORTER_OTLP_ENDPOINT: "http://ignored:4318", OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: "https://traces.example/custom" })?.otlpUrl,
    ).toBe("https://traces.example/custom");
    // An explicit exporter with no endpoint: the spec's default.
    expect(tracingSettingsOf({ OTEL_TRACES_EXPORTER: "otlp" })?.otlpUrl).toBe("http://localhost:4318");
    expect(tracingSettingsOf({ OTEL_TRACES_EXPORTER: "console" })).toEqual({ exporters: ["console"], sampler: "parentbased_always_on", samplerRatio: 1 });
    // The OTLP protocol matters only to the OTLP exporter.
    expect(tracingSettingsOf({ OTEL_TRACES_EXPORTER: "console", OTEL_EXPORTER_OTLP_PROTOCOL: "grpc" })?.exporters).toEqual(["console"]);
    expect(tracingSettingsOf({ OTEL_TRACES_EXPORTER: "otlp, console", OTEL_EXPORTER_OTLP_ENDPOINT: "http://c:4318" })?.exporters).toEqual(["otlp", "console"]);
    expect(loadConfig({ db: ":memory:" }, { OTEL_EXPORTER_OTLP_ENDPOINT: "http://c:4318" }).tracing?.otlpUrl).toBe("http://c:4318/v1/traces");
  });

  it("are off with OTEL_SDK_DISABLED=true or OTEL_TRACES_EXPORTER=none, whatever else is set", () => {
    expect(tracingSettingsOf({ OTEL_SDK_DISABLED: "true", OTEL_EXPORTER_OTLP_ENDPOINT: "http://c:4318" })).toBeUndefined();
    expect(tracingSettingsOf({ OTEL_SDK_DISABLED: "TRUE", OTEL_TRACES_EXPORTER: "otlp" })).toBeUndefined();
    expect(tracingSettingsOf({ OTEL_TRACES_EXPORTER: "none", OTEL_EXPORTER_OTLP_ENDPOINT: "http://c:4318" })).toBeUndefined();
    expect(tracingSettingsOf({ OTEL_SDK_DISABLED: "false", OTEL_EXPORTER_OTLP_ENDPOINT: "http://c:4318" })?.exporters).toEqual(["otlp"]);
  });

  it("read the sampler and its ratio", () => {
    const on = { OTEL_EXPORTER_OTLP_ENDPOINT: "http://c:4318" };
    expect(tracingSettingsOf({ ...on, OTEL_TRACES_SAMPLER: "traceidratio", OTEL_TRACES_SAMPLER_ARG: "0.25" })).toMatchObject({ sampler: "traceidratio", samplerRatio: 0.25 });
    expect(tracingSettingsOf({ ...on, OTEL_TRACES_SAMPLER: "parentbased_traceidratio" })).toMatchObject({ samplerRatio: 1 });
    expect(tracingSettingsOf({ ...on, OTEL_TRACES_SAMPLER: "always_off" })).toMatchObject({ sampler: "always_off" });
  });

  it("refuse what rollgate cannot do, naming the variable", () => {
    const on = { OTEL_EXPORTER_OTLP_ENDPOINT: "http://c:4318" };
    const refused = (env: NodeJS.ProcessEnv, message: RegExp) => {
      expect(() => tracingSettingsOf(env)).toThrow(ConfigError);
      expect(() => tracingSettingsOf(env)).toThrow(message);
    };
    refused({ OTEL_TRACES_EXPORTER: "zipkin" }, /^OTEL_TRACES_EXPORTER: "zipkin" is not an exporter rollgate has/);
    refused({ ...on, OTEL_TRACES_SAMPLER: "sometimes" }, /^OTEL_TRACES_SAMPLER: "sometimes" must be one of always_on/);
    refused({ ...on, OTEL_TRACES_SAMPLER: "traceidratio", OTEL_TRACES_SAMPLER_ARG: "1.5" }, /^OTEL_TRACES_SAMPLER_ARG: "1.5" must be a ratio from 0 to 1/);
    refused({ ...on, OTEL_EXPORTER_OTLP_PROTOCOL: "grpc" }, /^OTEL_EXPORTER_OTLP_PROTOCOL: "grpc" is not supported; rollgate sends OTLP over HTTP as JSON/);
    refused({ ...on, OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: "http/protobuf", OTEL_EXPORTER_OTLP_PROTOCOL: "http/json" }, /^OTEL_EXPORTER_OTLP_TRACES_PROTOCOL/);
    refused({ OTEL_EXPORTER_OTLP_ENDPOINT: "collector:4318" }, /^OTEL_EXPORTER_OTLP_ENDPOINT: "collector:4318\/v1\/traces" must be an http/);
    refused({ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: "not a url" }, /^OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: "not a url" is not a URL/);
    // The traces protocol, when set, wins over the general one.
    expect(tracingSettingsOf({ ...on, OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: "http/json", OTEL_EXPORTER_OTLP_PROTOCOL: "grpc" })?.exporters).toEqual(["otlp"]);
  });
});
