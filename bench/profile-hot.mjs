#!/usr/bin/env node
// Profiles rollgate (node --cpu-prof, pinned to core 0) under one load from h2load on core 1 and
// prints the areas and functions by self time: `node bench/profile-hot.mjs grpc|connect-json-h1|
// connect-get-h1|connect-proto-h2 [seconds]`. What bench/FINDINGS.md quotes was taken this way.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { create, toBinary } from "@bufbuild/protobuf";
import { RouteRequestSchema } from "../dist/gen/rollgate/v1/decision_service_pb.js";
import { routeFrame, writeBody } from "./lib/bodies.mjs";
import { h2load } from "./lib/h2load.mjs";
import { profileMarkdown, profileRollgate } from "./lib/profile.mjs";
import { createRollout } from "./lib/rollgate.mjs";

const [mode = "grpc", secondsArg = "5"] = process.argv.slice(2);
const seconds = Number(secondsArg);
const dir = mkdtempSync(join(tmpdir(), "rollgate-prof-bodies-"));
const ROUTE = "/rollgate.v1.DecisionService/Route";
const request = { rollout: "checkout", key: "user-12345" };
const file = (name, bytes) => {
  const p = join(dir, name);
  writeFileSync(p, bytes);
  return p;
};
const loads = {
  grpc: { path: ROUTE, body: writeBody(dir, "route.bin", routeFrame("checkout", "user-12345")), clients: 4, inFlight: 16 },
  "connect-json-h1": { path: ROUTE, body: file("route.json", JSON.stringify(request)), headers: ["content-type: application/json"], h1: true, clients: 64, inFlight: 1 },
  "connect-get-h1": { path: `${ROUTE}?${new URLSearchParams({ connect: "v1", encoding: "json", message: JSON.stringify(request) })}`, headers: [], h1: true, clients: 64, inFlight: 1 },
  "connect-proto-h2": { path: ROUTE, body: file("route.pb", toBinary(RouteRequestSchema, create(RouteRequestSchema, request))), headers: ["content-type: application/proto"], clients: 4, inFlight: 16 },
};
const load = loads[mode];
if (load === undefined) throw new Error(`mode must be one of ${Object.keys(loads).join(", ")}`);
try {
  const s = await profileRollgate({
    top: 25,
    setup: async (rg) => {
      await createRollout(rg.port, "checkout", { interval: "10s", window: "300s" });
      await h2load({ port: rg.port, ...load, requests: 20000 });
    },
    load: (rg) => h2load({ port: rg.port, ...load, seconds, warmup: 0 }),
  });
  process.stdout.write(`${Math.round(s.loadResult.rps)} req/s\n\n${profileMarkdown(`${mode}, ${seconds} s`, s, { areas: 12 }).join("\n")}\n`);
} finally {
  rmSync(dir, { recursive: true, force: true });
}
