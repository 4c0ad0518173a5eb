import { fromBinary, toBinary, create, type DescMessage, type DescMethod } from "@bufbuild/protobuf";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DecisionService } from "../../gen/rollgate/v1/decision_service_pb.js";
import {
  ListEventsRequestSchema,
  ListEventsResponseSchema,
  ListRolloutsRequestSchema,
  RolloutService,
} from "../../gen/rollgate/v1/rollout_service_pb.js";
import { repoRoot } from "../helpers/servers.js";
import { postJson, startChild, type ChildServer } from "./abuse-kit.js";
import {
  BYTE_MUTATIONS,
  FORBIDDEN_CODES,
  FRAMING_MUTATIONS,
  H2Pool,
  JSON_MUTATIONS,
  KNOWN_NAMES,
  encode,
  encodeJson,
  envelope,
  h2Request,
  isStreaming,
  messageArb,
  mutateBytes,
  mutateFraming,
  mutateJson,
  type CallResult,
} from "./fuzz-kit.js";

/**
 * Fuzzes every RPC of DecisionService and RolloutService on both serving paths — a server with
 * the gRPC fast path (Route, RouteBatch, RecordOutcome on raw HTTP/2) and one without (all on
 * connect-node) — over gRPC, Connect binary and Connect JSON (HTTP/2 and HTTP/1.1), with
 * messages generated from the descriptors, byte mutations of their encodings, JSON mutations
 * and gRPC framing mutations. Properties: the server stays up; every call ends with a status;
 * never INTERNAL, UNKNOWN or DATA_LOSS; every rejection has a message; a rejected mutating call
 * changes nothing (rollouts and audit head compared before and after).
 *
 * Fixed seed; FUZZ_CASES, FUZZ_SEED and FUZZ_SECONDS (stop early) make the long run
 * (`npm run fuzz`, which records its figures in bench/FUZZ.md).
 */

const SEED = Number(process.env.FUZZ_SEED ?? 20_261_201);
// 2,000 in `npm test`: about a minute on the 2 shared cores of CI (10,000 took ~5 min there); `npm run fuzz` runs more.
const CASES = Number(process.env.FUZZ_CASES ?? 2_000);
const SECONDS = Number(process.env.FUZZ_SECONDS ?? 0);
const SUMMARY = process.env.FUZZ_SUMMARY;

const methods: { service: string; m: DescMethod; mutating: boolean }[] = [DecisionService, RolloutService].flatMap((s) =>
  s.methods.map((m) => ({
    service: s.typeName,
    m,
    mutating: s === RolloutService && !["GetRollout", "ListRollouts", "ListEvents", "WatchEvents"].includes(m.name),
  })),
);

type Transport = "grpc" | "connect-proto" | "connect-json" | "connect-json-h1";
type Kind = "valid" | "bytes" | "json" | "framing";

interface Case {
  readonly server: number;
  readonly method: number;
  readonly transport: Transport;
  readonly kind: Kind;
  readonly msg: Record<string, unknown>;
  readonly op: number;
  readonly a: number;
  readonly b: number;
}

const caseArb: fc.Arbitrary<Case> = fc
  .record({ server: fc.nat(1), method: fc.nat(methods.length - 1) })
  .chain(({ server, method }) =>
    fc.record({
      server: fc.constant(server),
      method: fc.constant(method),
      transport: fc.constantFrom<Transport>("grpc", "grpc", "connect-proto", "connect-json", "connect-json-h1"),
      kind: fc.constantFrom<Kind>("valid", "valid", "bytes", "bytes", "json", "framing"),
      msg: messageArb(methods[method]!.m.input),
      op: fc.nat(),
      a: fc.nat(),
      b: fc.nat(),
    }),
  );

interface Finding {
  readonly n: number;
  readonly server: string;
  readonly rpc: string;
  readonly transport: Transport;
  readonly mutation: string;
  readonly problem: string;
  readonly result: Pick<CallResult, "code" | "message" | "httpStatus" | "reset">;
  readonly input: string;
}

let servers: ChildServer[] = [];
let pools: H2Pool[] = [];
const heads = [0, 0];

beforeAll(async () => {
  servers = await Promise.all([startChild(), startChild(["--no-grpc-fast-path"])]);
  pools = servers.map((s) => new H2Pool(s.url));
  for (let i = 0; i < servers.length; i++) await seed(i);
});

afterAll(async () => {
  for (const p of pools) p.close();
  await Promise.all(servers.map((s) => s.stop()));
});

/** Creates the known rollouts a server lacks: one plain, one paused, one with gates. */
async function seed(i: number): Promise<void> {
  const url = servers[i]!.url;
  const specs: Record<string, unknown>[] = [
    { name: "fz-a", stableVersion: "v1", canaryVersion: "v2" },
    { name: "fz-b", stableVersion: "v1", canaryVersion: "v2" },
    {
      name: "fz-c",
      stableVersion: "v1",
      canaryVersion: "v3",
      gates: [{ name: "errors", minSamples: "10", errorRate: { max: 0.05 } }, { name: "p99", latency: { quantile: 0.99, maxMs: 250 } }],
      features: { dark: true },
    },
  ];
  for (const rollout of specs) {
    const r = await postJson(url, "rollgate.v1.RolloutService/CreateRollout", { rollout, reason: "fuzz seed" });
    if (r.status !== 200 && r.json.code !== "already_exists") throw new Error(`seed ${String(rollout.name)}: ${JSON.stringify(r.json)}`);
  }
  await postJson(url, "rollgate.v1.RolloutService/Pause", { name: "fz-b", reason: "fuzz seed" });
}

/** The state a rejected call must leave alone: every rollout, as encoded, and the audit head. */
async function snapshot(i: number): Promise<{ rollouts: string; head: number }> {
  const [r] = await Promise.all([
    connectProto(i, "rollgate.v1.RolloutService/ListRollouts", toBinary(ListRolloutsRequestSchema, create(ListRolloutsRequestSchema, { pageSize: 1000 }))),
    newEvents(i),
  ]);
  if (r.code !== 0) throw new Error(`ListRollouts failed: ${r.code} ${r.message}`);
  return { rollouts: r.data.toString("hex"), head: heads[i]! };
}

/** Reads the events after the known head, moves the head, and returns their actors. */
async function newEvents(i: number): Promise<string[]> {
  const actors: string[] = [];
  for (;;) {
    const r = await connectProto(
      i,
      "rollgate.v1.RolloutService/ListEvents",
      toBinary(ListEventsRequestSchema, create(ListEventsRequestSchema, { afterSeq: BigInt(heads[i]!), limit: 1000 })),
    );
    if (r.code !== 0) throw new Error(`ListEvents failed: ${r.code} ${r.message}`);
    const events = fromBinary(ListEventsResponseSchema, r.data).events;
    for (const e of events) {
      actors.push(e.actor);
      heads[i] = Number(e.seq);
    }
    if (events.length < 1000) return actors;
  }
}

function connectProto(i: number, procedure: string, body: Uint8Array): Promise<CallResult> {
  return h2Request(pools[i]!, { ":path": `/${procedure}`, "content-type": "application/proto" }, Buffer.from(body), "connect-unary");
}

/** Sends one case; returns what it ended with and the mutation's name. */
async function send(c: Case): Promise<{ result: CallResult; mutation: string; input: Buffer; transport: Transport }> {
  const sent = await sendAs(c);
  const transport: Transport = c.kind === "framing" ? "grpc" : c.kind === "json" ? (c.transport === "connect-json-h1" ? c.transport : "connect-json") : c.transport;
  return { ...sent, transport };
}

async function sendAs(c: Case): Promise<{ result: CallResult; mutation: string; input: Buffer }> {
  const { service, m } = methods[c.method]!;
  const path = `/${service}/${m.name}`;
  const streaming = isStreaming(m);
  let payload: Uint8Array;
  try {
    payload = encode(m.input, c.msg);
  } catch {
    payload = new Uint8Array(0); // an init protobuf-es refuses (e.g. an int out of range): send the empty message
  }
  const pool = pools[c.server]!;
  let mutation: string = c.kind;
  if (c.kind === "bytes") {
    const op = BYTE_MUTATIONS[c.op % BYTE_MUTATIONS.length]!;
    payload = mutateBytes(payload, op, c.a, c.b);
    mutation = `bytes:${op}`;
  }
  const transport = c.kind === "framing" ? "grpc" : c.kind === "json" ? (c.transport === "connect-json-h1" ? c.transport : "connect-json") : c.transport;
  if (transport === "grpc") {
    let body = envelope(payload);
    let extra = {};
    if (c.kind === "framing") {
      const op = FRAMING_MUTATIONS[c.op % FRAMING_MUTATIONS.length]!;
      ({ body, headers: extra } = mutateFraming(payload, op, c.a));
      mutation = `framing:${op}`;
    }
    const result = await h2Request(pool, { ":path": path, "content-type": "application/grpc", te: "trailers", ...extra }, body, "grpc", { streaming });
    return { result, mutation, input: body };
  }
  if (transport === "connect-proto") {
    if (streaming) {
      const body = envelope(payload);
      return { result: await h2Request(pool, { ":path": path, "content-type": "application/connect+proto" }, body, "connect-stream", { streaming }), mutation, input: body };
    }
    const body = Buffer.from(payload);
    return { result: await h2Request(pool, { ":path": path, "content-type": "application/proto" }, body, "connect-unary"), mutation, input: body };
  }
  // Connect JSON: from the generated message (or its bytes mutated, decoded leniently), then maybe mutated.
  let json = c.kind === "bytes" ? undefined : encodeJson(m.input, c.msg);
  let text: Buffer;
  if (c.kind === "json") {
    const op = JSON_MUTATIONS[c.op % JSON_MUTATIONS.length]!;
    text = mutateJson(json ?? {}, m.input, op, c.a);
    mutation = `json:${op}`;
  } else {
    json ??= {};
    text = Buffer.from(JSON.stringify(json));
  }
  if (streaming) {
    const body = envelope(text);
    return { result: await h2Request(pool, { ":path": path, "content-type": "application/connect+json" }, body, "connect-stream", { streaming }), mutation, input: body };
  }
  if (transport === "connect-json-h1") return { result: await http1Json(c.server, path, text), mutation, input: text };
  return { result: await h2Request(pool, { ":path": path, "content-type": "application/json" }, text, "connect-unary"), mutation, input: text };
}

/** Connect JSON unary over HTTP/1.1 (node's fetch). */
async function http1Json(i: number, path: string, body: Buffer): Promise<CallResult> {
  try {
    const res = await fetch(`${servers[i]!.url}${path}`, { method: "POST", headers: { "content-type": "application/json" }, body, signal: AbortSignal.timeout(10_000) });
    const data = Buffer.from(await res.arrayBuffer());
    if (res.status === 200) return { code: 0, message: "", httpStatus: 200, data };
    const j = JSON.parse(data.toString("utf8")) as { code?: string; message?: string };
    const code = ["ok", "canceled", "unknown", "invalid_argument", "deadline_exceeded", "not_found", "already_exists", "permission_denied", "resource_exhausted", "failed_precondition", "aborted", "out_of_range", "unimplemented", "internal", "unavailable", "data_loss", "unauthenticated"].indexOf(j.code ?? "");
    return { code, message: j.message ?? "", httpStatus: res.status, data };
  } catch (e) {
    return { code: -1, message: "", httpStatus: 0, data: Buffer.alloc(0), reset: `HTTP/1.1: ${(e as Error).message}` };
  }
}

/** Decodes an OK unary answer: it must be a well-formed response message. */
function decodesAsResponse(out: DescMessage, r: CallResult, transport: Transport): boolean {
  try {
    if (transport === "grpc") {
      if (r.data.length < 5) return r.data.length === 0 ? false : false;
      fromBinary(out, r.data.subarray(5, 5 + r.data.readUInt32BE(1)));
    } else if (transport === "connect-proto") {
      fromBinary(out, r.data);
    } else {
      JSON.parse(r.data.toString("utf8"));
    }
    return true;
  } catch {
    return false;
  }
}

describe(`fuzzing every RPC on both serving paths (seed ${SEED}, ${CASES} cases)`, () => {
  it("no crash, no INTERNAL/UNKNOWN, every rejection explained, rejected changes change nothing", { timeout: Math.max(600_000, SECONDS * 1000 + 120_000) }, async () => {
    const findings: Finding[] = [];
    const byCode = new Map<number, number>();
    const byRpc = new Map<string, number>();
    const started = Date.now();
    let n = 0;
    let generated = 0;
    const CHUNK = 1000;
    // The two servers' cases run side by side; on each server one at a time (the state check needs it).
    const queues: Case[][] = [[], []];
    // The last snapshot of each server, while no accepted change has made it stale.
    const last: ({ rollouts: string; head: number } | undefined)[] = [undefined, undefined];
    const timing = { send: 0, snapshot: 0 };
    const refill = () => {
      if (generated >= CASES) return false;
      const chunk = Math.floor(generated / CHUNK);
      const cases = fc.sample(caseArb, { seed: SEED + chunk, numRuns: Math.min(CHUNK, CASES - generated) });
      generated += cases.length;
      for (const c of cases) queues[c.server]!.push(c);
      return true;
    };
    const stopped = () => (SECONDS > 0 && Date.now() - started > SECONDS * 1000) || !servers.every((s) => s.alive());
    const worker = async (server: number) => {
      let since = 0;
      for (;;) {
        if (stopped()) return;
        let c = queues[server]!.shift();
        if (c === undefined) {
          if (!refill()) return;
          c = queues[server]!.shift();
          if (c === undefined) continue;
        }
        n++;
        if (++since % 250 === 0) {
          await seed(server);
          last[server] = undefined;
        }
        await runCase(c, n);
      }
    };
    const runCase = async (c: Case, at: number) => {
      const { service, m, mutating } = methods[c.method]!;
      const rpc = `${service.split(".").at(-1)}/${m.name}`;
      const t0 = performance.now();
      const before = mutating ? (last[c.server] ??= await snapshot(c.server)) : undefined;
      const t1 = performance.now();
      const { result, mutation, input, transport } = await send(c);
      const t2 = performance.now();
      timing.send += t2 - t1;
      timing.snapshot += t1 - t0;
      if (mutating && result.code === 0) last[c.server] = undefined;
      byCode.set(result.code, (byCode.get(result.code) ?? 0) + 1);
      byRpc.set(rpc, (byRpc.get(rpc) ?? 0) + 1);
      const problems: string[] = [];
      if (!servers[c.server]!.alive()) problems.push("the server process exited");
      if (result.reset !== undefined) problems.push(`no status: ${result.reset}`);
      else if (result.code === -1) problems.push("no status in the answer");
      if (FORBIDDEN_CODES.has(result.code)) problems.push(`forbidden code ${result.code}`);
      if (result.code > 0 && result.message.trim() === "") problems.push("a rejection without a message");
      if (result.code === 0 && !result.open && !isStreaming(m) && !decodesAsResponse(m.output, result, transport === "connect-json-h1" ? "connect-json" : transport)) {
        problems.push("OK with a body that is not the response message");
      }
      if (before !== undefined && result.code !== 0 && problems.length === 0) {
        const actors = await newEvents(c.server);
        const after = await snapshot(c.server);
        last[c.server] = after;
        timing.snapshot += performance.now() - t2;
        // The evaluator may act between the two reads; a rejected call's own changes would be the caller's.
        const byCaller = actors.filter((a) => a !== "evaluator");
        if (byCaller.length > 0) problems.push(`a rejected call appended events by ${byCaller.join(", ")}`);
        else if (actors.length === 0 && after.rollouts !== before.rollouts) problems.push("a rejected call changed the rollouts");
      }
      for (const problem of problems) {
        findings.push({
          n: at,
          server: c.server === 0 ? "fast path" : "connect-node only",
          rpc,
          transport,
          mutation,
          problem,
          result: { code: result.code, message: result.message, httpStatus: result.httpStatus, ...(result.reset === undefined ? {} : { reset: result.reset }) },
          input: input.subarray(0, 120).toString("hex"),
        });
      }
    };
    await Promise.all([worker(0), worker(1)]);
    const seconds = (Date.now() - started) / 1000;
    console.log(`fuzz time: send ${Math.round(timing.send)} ms, state checks ${Math.round(timing.snapshot)} ms (both servers summed)`);
    const summary = { seed: SEED, cases: n, seconds: Math.round(seconds * 10) / 10, codes: Object.fromEntries([...byCode].sort((a, b) => a[0] - b[0])), rpcs: byRpc.size, findings: findings.length };
    console.log(`fuzz: ${JSON.stringify(summary)}`);
    const kinds = new Map<string, { count: number; first: Finding }>();
    for (const f of findings) {
      const k = `${f.problem} | ${f.server} | ${f.transport} | ${f.result.code} ${f.result.message.replace(/[0-9]+/g, "N").slice(0, 60)}`;
      const hit = kinds.get(k);
      if (hit === undefined) kinds.set(k, { count: 1, first: f });
      else hit.count++;
    }
    for (const [k, v] of kinds) console.log(`finding x${v.count}: ${k} (first: case ${v.first.n} ${v.first.rpc} ${v.first.mutation})`);
    if (SUMMARY !== undefined) {
      mkdirSync(join(repoRoot, ".cache"), { recursive: true });
      writeFileSync(SUMMARY, JSON.stringify({ ...summary, byRpc: Object.fromEntries(byRpc), firstFindings: findings.slice(0, 20) }, null, 2));
    }
    expect(findings.slice(0, 10)).toEqual([]);
    expect(byRpc.size).toBe(methods.length);
    expect(servers.every((s) => s.alive())).toBe(true);
    void KNOWN_NAMES;
  });
});
