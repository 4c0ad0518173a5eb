// Request bodies as h2load and the clients send them: gRPC frames (5-byte prefix + protobuf
// bytes written by protobuf-es toBinary of the generated messages).
import { create, toBinary } from "@bufbuild/protobuf";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import {
  RecordOutcomeRequestSchema,
  RouteBatchRequestSchema,
  RouteRequestSchema,
  StreamOutcomesRequestSchema,
} from "../../dist/gen/rollgate/v1/decision_service_pb.js";
import { Variant } from "../../dist/gen/rollgate/v1/rollout_pb.js";
import { grpcFrame } from "./util.mjs";

/** Returns the gRPC frame of a RouteRequest. */
export function routeFrame(rollout, key) {
  return grpcFrame(toBinary(RouteRequestSchema, create(RouteRequestSchema, { rollout, key })));
}

/** Returns the gRPC frame of a RouteBatchRequest with `n` distinct keys. */
export function routeBatchFrame(rollout, n) {
  const keys = Array.from({ length: n }, (_, i) => `user-${(i * 7919) % 1_000_003}-${i}`);
  return grpcFrame(toBinary(RouteBatchRequestSchema, create(RouteBatchRequestSchema, { rollout, keys })));
}

/**
 * Returns `n` outcomes, half stable and half canary, ~1% errors, latencies spread over
 * 5..500 ms (so the sketches see many bins), no time (the server's now) and no key.
 */
export function outcomes(n, seed = 1) {
  let x = seed >>> 0 || 1;
  const rnd = () => ((x = (Math.imul(x, 1664525) + 1013904223) >>> 0) / 4294967296);
  return Array.from({ length: n }, (_, i) => ({
    variant: i % 2 === 0 ? Variant.STABLE : Variant.CANARY,
    success: rnd() >= 0.01,
    latencyMs: 5 + Math.round(rnd() * rnd() * 49500) / 100,
  }));
}

/** Returns the gRPC frame of a RecordOutcomeRequest of `n` outcomes. */
export function recordOutcomeFrame(rollout, n, seed) {
  return grpcFrame(toBinary(RecordOutcomeRequestSchema, create(RecordOutcomeRequestSchema, { rollout, outcomes: outcomes(n, seed) })));
}

/** Returns the gRPC frame of a StreamOutcomesRequest of `n` outcomes. */
export function streamOutcomesFrame(rollout, n, seed) {
  return grpcFrame(toBinary(StreamOutcomesRequestSchema, create(StreamOutcomesRequestSchema, { rollout, outcomes: outcomes(n, seed) })));
}

/** Writes a frame to `dir/name` and returns the path (h2load -d takes a file). */
export function writeBody(dir, name, frame) {
  const path = join(dir, name);
  writeFileSync(path, frame);
  return path;
}
