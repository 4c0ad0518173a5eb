import { create, equals, fromBinary, fromJson, toBinary, type DescMessage, type DescMethod, type JsonValue, type Message } from "@bufbuild/protobuf";
import { mkdirSync, writeFileSync } from "node:fs";
import { Agent as HttpAgent, request as httpRequest } from "node:http";
import { join } from "node:path";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DecisionService } from "../../gen/rollgate/v1/decision_service_pb.js";
import { EventSchema, type Event } from "../../gen/rollgate/v1/event_pb.js";
import { RolloutSchema, type Rollout } from "../../gen/rollgate/v1/rollout_pb.js";
import {
  ListEventsRequestSchema,
  ListEventsResponseSchema,
  ListRolloutsRequestSchema,
  ListRolloutsResponseSchema,
  RolloutService,
} from "../../gen/rollgate/v1/rollout_service_pb.js";
import { EVALUATOR } from "../../src/service/engine.js";
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
 * changes nothing (the rollouts and the audit events compared before and after).
 *
 * The cases run concurrently. Per server, read-only calls (which the state check does not
 * concern) run READERS at a time; mutating calls run in batches of up to BATCH that name
 * distinct existing rollouts, and after each batch the rollouts and the new events are read:
 * every change must be one an accepted call of the batch named (or the evaluator's), and each
 * accepted call's rollout must be listed as it answered it. A change is blamed on the rejected
 * call that named the rollout; one no call named fails the batch, whose calls are then sent
 * again one at a time to find it (see `judge`).
 *
 * The run is split in two parts, one per test file (fuzz.test.ts, fuzz-2.test.ts), each with its
 * own two servers, so that vitest's two workers share it.
 *
 * Fixed seed; FUZZ_CASES (in all, both parts), FUZZ_SEED and FUZZ_SECONDS (stop early) make the
 * long run (`npm run fuzz`, which records its figures in bench/FUZZ.md).
 */

const SEED = Number(process.env.FUZZ_SEED ?? 20_261_201);
// 10,000 in `npm test` (~35 s of CPU in all: bench/FUZZ.md); `npm run fuzz` runs more.
const CASES = Number(process.env.FUZZ_CASES ?? 10_000);
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

/** The spec of a known rollout by its kind (the letter after `fz-`): plain, paused, or with gates. */
function specOf(name: string): Record<string, unknown> {
  if (!name.startsWith("fz-c")) return { name, stableVersion: "v1", canaryVersion: "v2" };
  return {
    name,
    stableVersion: "v1",
    canaryVersion: "v3",
    gates: [{ name: "errors", minSamples: "10", errorRate: { max: 0.05 } }, { name: "p99", latency: { quantile: 0.99, maxMs: 250 } }],
    features: { dark: true },
  };
}

/** Creates the known rollouts a server lacks (all when `have` is not given) and pauses the `fz-b*` ones, all at once. */
async function seed(i: number, have?: ReadonlyMap<string, Rollout>): Promise<void> {
  const url = servers[i]!.url;
  await Promise.all(
    KNOWN_NAMES.map(async (name) => {
      const r = have?.get(name);
      if (r === undefined) {
        const c = await postJson(url, "rollgate.v1.RolloutService/CreateRollout", { rollout: specOf(name), reason: "fuzz seed" });
        if (c.status !== 200 && c.json.code !== "already_exists") throw new Error(`seed ${name}: ${JSON.stringify(c.json)}`);
      }
      if (name.startsWith("fz-b") && r?.paused !== true) await postJson(url, "rollgate.v1.RolloutService/Pause", { name, reason: "fuzz seed" });
    }),
  );
}

/** Every rollout the server lists, by name (all pages). */
async function listRollouts(i: number): Promise<Map<string, Rollout>> {
  const out = new Map<string, Rollout>();
  for (let pageToken = ""; ; ) {
    const r = await connectProto(i, "rollgate.v1.RolloutService/ListRollouts", toBinary(ListRolloutsRequestSchema, create(ListRolloutsRequestSchema, { pageSize: 1000, pageToken })));
    if (r.code !== 0) throw new Error(`ListRollouts failed: ${r.code} ${r.message}`);
    const page = fromBinary(ListRolloutsResponseSchema, r.data);
    for (const x of page.rollouts) out.set(x.name, x);
    if (page.nextPageToken === "") return out;
    pageToken = page.nextPageToken;
  }
}

/** Reads the events after the server's known head and moves the head. */
async function newEvents(i: number): Promise<Event[]> {
  const out: Event[] = [];
  for (;;) {
    const r = await connectProto(
      i,
      "rollgate.v1.RolloutService/ListEvents",
      toBinary(ListEventsRequestSchema, create(ListEventsRequestSchema, { afterSeq: BigInt(heads[i]!), limit: 1000 })),
    );
    if (r.code !== 0) throw new Error(`ListEvents failed: ${r.code} ${r.message}`);
    const events = fromBinary(ListEventsResponseSchema, r.data).events;
    for (const e of events) {
      out.push(e);
      heads[i] = Number(e.seq);
    }
    if (events.length < 1000) return out;
  }
}

function connectProto(i: number, procedure: string, body: Uint8Array): Promise<CallResult> {
  return h2Request(pools[i]!, { ":path": `/${procedure}`, "content-type": "application/proto" }, Buffer.from(body), "connect-unary");
}

/** One case made ready to send: the request as it goes on the wire, and the rollouts it may name. */
interface Prepared {
  readonly c: Case;
  readonly n: number;
  readonly rpc: string;
  readonly mutating: boolean;
  readonly transport: Transport;
  readonly mutation: string;
  readonly input: Buffer;
  /** The rollout names the request may act on: from the generated message and from the bytes as sent. */
  readonly targets: ReadonlySet<string>;
  readonly send: () => Promise<CallResult>;
}

/** Returns the rollout a request message names (`name`, or `rollout.name`), "" when none. */
function targetOf(msg: unknown): string {
  const m = msg as { name?: unknown; rollout?: { name?: unknown } } | undefined;
  const t = m?.name ?? m?.rollout?.name;
  return typeof t === "string" ? t : "";
}

/** Builds the request of one case: transport, mutation, body. */
function prepare(c: Case, n: number): Prepared {
  const { service, m, mutating } = methods[c.method]!;
  const rpc = `${service.split(".").at(-1)}/${m.name}`;
  const path = `/${service}/${m.name}`;
  const streaming = isStreaming(m);
  let payload: Uint8Array;
  try {
    payload = encode(m.input, c.msg);
  } catch {
    payload = new Uint8Array(0); // an init protobuf-es refuses (e.g. an int out of range): send the empty message
  }
  const pool = pools[c.server]!;
  const targets = new Set([targetOf(c.msg)]);
  // Only a mutating call's rollouts matter (the batch check); read-only calls skip the decoding.
  const decodedTarget = (decode: () => unknown) => {
    if (!mutating) return;
    try {
      targets.add(targetOf(decode()));
    } catch {
      // the server cannot read it either
    }
  };
  let mutation: string = c.kind;
  if (c.kind === "bytes") {
    const op = BYTE_MUTATIONS[c.op % BYTE_MUTATIONS.length]!;
    payload = mutateBytes(payload, op, c.a, c.b);
    mutation = `bytes:${op}`;
  }
  const transport: Transport = c.kind === "framing" ? "grpc" : c.kind === "json" ? (c.transport === "connect-json-h1" ? c.transport : "connect-json") : c.transport;
  const ready = (input: Buffer, send: () => Promise<CallResult>): Prepared => ({ c, n, rpc, mutating, transport, mutation, input, targets, send });
  if (transport === "grpc" || transport === "connect-proto") {
    const bytes = payload;
    decodedTarget(() => fromBinary(m.input, bytes));
  }
  if (transport === "grpc") {
    let body = envelope(payload);
    let extra = {};
    if (c.kind === "framing") {
      const op = FRAMING_MUTATIONS[c.op % FRAMING_MUTATIONS.length]!;
      ({ body, headers: extra } = mutateFraming(payload, op, c.a));
      mutation = `framing:${op}`;
      const framed = body;
      decodedTarget(() => fromBinary(m.input, framed.subarray(5, 5 + framed.readUInt32BE(1))));
    }
    return ready(body, () => h2Request(pool, { ":path": path, "content-type": "application/grpc", te: "trailers", ...extra }, body, "grpc", { streaming }));
  }
  if (transport === "connect-proto") {
    if (streaming) {
      const body = envelope(payload);
      return ready(body, () => h2Request(pool, { ":path": path, "content-type": "application/connect+proto" }, body, "connect-stream", { streaming }));
    }
    const body = Buffer.from(payload);
    return ready(body, () => h2Request(pool, { ":path": path, "content-type": "application/proto" }, body, "connect-unary"));
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
  decodedTarget(() => fromJson(m.input, JSON.parse(text.toString("utf8")) as JsonValue, { ignoreUnknownFields: true }));
  if (streaming) {
    const body = envelope(text);
    return ready(body, () => h2Request(pool, { ":path": path, "content-type": "application/connect+json" }, body, "connect-stream", { streaming }));
  }
  if (transport === "connect-json-h1") return ready(text, () => http1Json(c.server, path, text));
  return ready(text, () => h2Request(pool, { ":path": path, "content-type": "application/json" }, text, "connect-unary"));
}

/** Keep-alive HTTP/1.1 connections (as a browser's or a proxy's pool would be). */
const h1Agent = new HttpAgent({ keepAlive: true, maxSockets: 16 });

const CONNECT_CODE_NAMES = ["ok", "canceled", "unknown", "invalid_argument", "deadline_exceeded", "not_found", "already_exists", "permission_denied", "resource_exhausted", "failed_precondition", "aborted", "out_of_range", "unimplemented", "internal", "unavailable", "data_loss", "unauthenticated"];

/** Connect JSON unary over HTTP/1.1 (node:http, keep-alive). */
function http1Json(i: number, path: string, body: Buffer): Promise<CallResult> {
  const failed = (e: Error): CallResult => ({ code: -1, message: "", httpStatus: 0, data: Buffer.alloc(0), reset: `HTTP/1.1: ${e.message}` });
  return new Promise((resolve) => {
    const req = httpRequest(`${servers[i]!.url}${path}`, { method: "POST", agent: h1Agent, headers: { "content-type": "application/json", "content-length": body.length }, timeout: 10_000 }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("error", (e) => resolve(failed(e)));
      // A response cut before its end (the socket closed, or destroyed by the timeout below once
      // the answer had begun) emits neither 'end' nor always 'error': without this the call would
      // wait forever, holding the whole run (seen once in CI, with no timer left in the process).
      res.on("close", () => {
        if (!res.complete) resolve(failed(new Error("response cut before its end")));
      });
      res.on("end", () => {
        const data = Buffer.concat(chunks);
        const status = res.statusCode ?? 0;
        if (status === 200) return resolve({ code: 0, message: "", httpStatus: 200, data });
        try {
          const j = JSON.parse(data.toString("utf8")) as { code?: string; message?: string };
          resolve({ code: CONNECT_CODE_NAMES.indexOf(j.code ?? ""), message: j.message ?? "", httpStatus: status, data });
        } catch (e) {
          resolve(failed(e as Error));
        }
      });
    });
    req.on("timeout", () => req.destroy(new Error("client timeout: no answer")));
    req.on("error", (e) => resolve(failed(e)));
    req.end(body);
  });
}

/** Decodes an OK unary answer; undefined when it is not a well-formed response message. */
function decodeResponse(out: DescMessage, r: CallResult, transport: Transport): Message | undefined {
  try {
    if (transport === "grpc") {
      if (r.data.length < 5) return undefined;
      return fromBinary(out, r.data.subarray(5, 5 + r.data.readUInt32BE(1)));
    }
    if (transport === "connect-proto") return fromBinary(out, r.data);
    return fromJson(out, JSON.parse(r.data.toString("utf8")) as JsonValue);
  } catch {
    return undefined;
  }
}

/** What one sent case ended with, its problems so far, and (OK and unary) its decoded answer. */
interface Outcome {
  readonly p: Prepared;
  readonly result: CallResult;
  readonly problems: string[];
  readonly answer: Message | undefined;
}

/** Sends a prepared case and checks what does not depend on the server's state. */
async function run(p: Prepared): Promise<Outcome> {
  const { m } = methods[p.c.method]!;
  const result = await p.send();
  const problems: string[] = [];
  if (!servers[p.c.server]!.alive()) problems.push("the server process exited");
  if (result.reset !== undefined) problems.push(`no status: ${result.reset}`);
  else if (result.code === -1) problems.push("no status in the answer");
  if (FORBIDDEN_CODES.has(result.code)) problems.push(`forbidden code ${result.code}`);
  if (result.code > 0 && result.message.trim() === "") problems.push("a rejection without a message");
  let answer: Message | undefined;
  if (result.code === 0 && !result.open && !isStreaming(m)) {
    answer = decodeResponse(m.output, result, p.transport === "connect-json-h1" ? "connect-json" : p.transport);
    if (answer === undefined) problems.push("OK with a body that is not the response message");
  }
  return { p, result, problems, answer };
}

/** The rollout state of one server as the last check left it. */
interface Known {
  rollouts: Map<string, Rollout>;
  /** Rollouts the evaluator changed around the last read: their change may show only in the next one. */
  evaluated: Set<string>;
}

/** Reads the state a batch of mutating calls starts from (after a reseed). */
async function known(i: number): Promise<Known> {
  const rollouts = await listRollouts(i);
  const events = await newEvents(i);
  return { rollouts, evaluated: new Set(events.filter((e) => e.actor === EVALUATOR).map((e) => e.rollout)) };
}

/** What a batch's state check found. */
interface Verdict {
  readonly blamed: [Outcome, string][];
  readonly unattributed: string[];
  readonly evaluated: Set<string>;
}

/**
 * Judges a batch of mutating calls sent together against the state before it and the rollouts and
 * events read after it: a caller's event on a rollout no accepted call named, a rollout changed
 * that no accepted call named and the evaluator did not touch, and a rollout listed otherwise
 * than its accepted call answered it are each a finding — on the rejected calls that named that
 * rollout, else on the batch (unattributed).
 */
function judge(before: Known, rollouts: Map<string, Rollout>, events: Event[], outs: Outcome[]): Verdict {
  const evaluated = new Set(events.filter((e) => e.actor === EVALUATOR).map((e) => e.rollout));
  const accepted = outs.filter((o) => o.result.code === 0);
  const named = new Set(accepted.flatMap((o) => [...o.p.targets]));
  const blamed: [Outcome, string][] = [];
  const unattributed: string[] = [];
  const blame = (rollout: string, problem: string) => {
    const culprits = outs.filter((o) => o.result.code !== 0 && o.problems.length === 0 && o.p.targets.has(rollout));
    if (culprits.length === 0) unattributed.push(`${problem} (no call of the batch named it)`);
    for (const o of culprits) blamed.push([o, problem]);
  };
  const byCaller = new Map<string, Set<string>>();
  for (const e of events) {
    if (e.actor === EVALUATOR || named.has(e.rollout)) continue;
    let actors = byCaller.get(e.rollout);
    if (actors === undefined) byCaller.set(e.rollout, (actors = new Set()));
    actors.add(e.actor);
  }
  for (const [rollout, actors] of byCaller) blame(rollout, `a rejected call appended events by ${[...actors].join(", ")} on ${JSON.stringify(rollout)}`);
  const settled = (name: string) => !evaluated.has(name) && !before.evaluated.has(name);
  for (const name of new Set([...before.rollouts.keys(), ...rollouts.keys()])) {
    if (named.has(name) || byCaller.has(name) || !settled(name)) continue;
    const a = before.rollouts.get(name);
    const b = rollouts.get(name);
    if (a === undefined || b === undefined || !equals(RolloutSchema, a, b)) blame(name, `a rejected call changed the rollouts (${JSON.stringify(name)})`);
  }
  for (const o of accepted) {
    const answered = (o.answer as { rollout?: Rollout } | undefined)?.rollout;
    if (answered === undefined || !settled(answered.name)) continue;
    const listed = rollouts.get(answered.name);
    if (listed === undefined || !equals(RolloutSchema, answered, listed)) blamed.push([o, "the rollout listed after the call differs from the one it answered"]);
  }
  return { blamed, unattributed, evaluated };
}

/**
 * Checks a batch of mutating calls (sent together, naming distinct existing rollouts): reads the
 * rollouts and the new events side by side and judges them. A change the events read do not
 * explain may be the evaluator's, committed after the events were read and before the rollouts
 * were: the events are read once more (now after the rollouts, so they hold every change the
 * rollouts show) and the batch judged again.
 */
async function checkBatch(i: number, before: Known, outs: Outcome[]): Promise<{ after: Known; unattributed: string[] }> {
  const [rollouts, events] = await Promise.all([listRollouts(i), newEvents(i)]);
  let verdict = judge(before, rollouts, events, outs);
  if (verdict.blamed.length > 0 || verdict.unattributed.length > 0) {
    events.push(...(await newEvents(i)));
    verdict = judge(before, rollouts, events, outs);
  }
  for (const [o, problem] of verdict.blamed) o.problems.push(problem);
  return { after: { rollouts, evaluated: verdict.evaluated }, unattributed: verdict.unattributed };
}

/** Per-server in-flight bounds: read-only calls in flight, mutating calls per checked batch. */
const READERS = Number(process.env.FUZZ_READERS ?? 32);
const BATCH = Number(process.env.FUZZ_BATCH ?? 32);
/** The known rollouts are re-created (if deleted) after this many mutating cases per server. */
const RESEED = 150;

/**
 * Registers part `part` of `parts` of the fuzz run (each part in its own test file, so that
 * vitest's two workers share it: chunk k of the cases goes to part k % parts, each part with its
 * own two servers), and with part 0 the unit tests of the batch check.
 */
export function fuzzSuite(part: number, parts: number): void {
  if (part === 0) judgeTests();
  fuzzTests(part, parts);
}

function judgeTests(): void {
  describe("the batch state check (judge)", () => {
    const rollout = (name: string, version: number) => create(RolloutSchema, { name, version: BigInt(version) });
    const event = (rollout: string, actor: string) => create(EventSchema, { rollout, actor });
    const out = (target: string, code: number, answer?: Rollout): Outcome => ({
      p: { targets: new Set([target]) } as unknown as Prepared,
      result: { code, message: code === 0 ? "" : "no", httpStatus: 200, data: Buffer.alloc(0) },
      problems: [],
      answer: answer === undefined ? undefined : ({ rollout: answer } as unknown as Message),
    });
    const before = (evaluated: string[] = []): Known => ({ rollouts: new Map([["fz-a", rollout("fz-a", 1)], ["fz-b", rollout("fz-b", 1)]]), evaluated: new Set(evaluated) });
    const listed = (a: number, b: number) => new Map([["fz-a", rollout("fz-a", a)], ["fz-b", rollout("fz-b", b)]]);
    const problems = (v: Verdict) => [...v.blamed.map(([, p]) => p), ...v.unattributed];

    it("passes a batch whose rejected calls changed nothing and whose accepted call changed what it named", () => {
      const accepted = out("fz-a", 0, rollout("fz-a", 2));
      expect(problems(judge(before(), listed(2, 1), [event("fz-a", "local")], [accepted, out("fz-b", 3), out("nope", 5)]))).toEqual([]);
    });
    it("blames the rejected call that named a rollout changed without an event, or with a caller's event", () => {
      const silent = out("fz-a", 3);
      const v1 = judge(before(), listed(2, 1), [], [silent, out("fz-b", 3)]);
      expect(v1.blamed).toEqual([[silent, 'a rejected call changed the rollouts ("fz-a")']]);
      const audited = out("fz-b", 9);
      const v2 = judge(before(), listed(1, 2), [event("fz-b", "local")], [out("fz-a", 0, rollout("fz-a", 1)), audited]);
      expect(v2.blamed).toEqual([[audited, 'a rejected call appended events by local on "fz-b"']]);
    });
    it("fails the batch for a change no call of it named, a deletion included", () => {
      expect(judge(before(), listed(1, 2), [], [out("fz-a", 3)]).unattributed).toHaveLength(1);
      expect(judge(before(), new Map([["fz-a", rollout("fz-a", 1)]]), [], [out("x", 3)]).unattributed).toHaveLength(1);
      expect(judge(before(), listed(1, 1), [event("fz-b", "local")], [out("x", 3)]).unattributed).toHaveLength(1);
    });
    it("flags an accepted call whose rollout is listed otherwise than it answered", () => {
      const accepted = out("fz-a", 0, rollout("fz-a", 2));
      expect(judge(before(), listed(3, 1), [event("fz-a", "local")], [accepted]).blamed).toEqual([[accepted, "the rollout listed after the call differs from the one it answered"]]);
    });
    it("excuses what the evaluator changed, in this batch's events or the last one's", () => {
      expect(problems(judge(before(), listed(1, 2), [event("fz-b", EVALUATOR)], [out("fz-b", 3)]))).toEqual([]);
      expect(problems(judge(before(["fz-b"]), listed(1, 2), [], [out("fz-b", 3)]))).toEqual([]);
    });
  });
}

function fuzzTests(part: number, parts: number): void {
  describe(`fuzzing every RPC on both serving paths (seed ${SEED}, ${CASES} cases${parts > 1 ? `, part ${part + 1} of ${parts}` : ""})`, () => {
    beforeAll(async () => {
      servers = await Promise.all([startChild(), startChild(["--no-grpc-fast-path"])]);
      pools = servers.map((s) => new H2Pool(s.url));
      await Promise.all(servers.map((_, i) => seed(i)));
    });
    afterAll(async () => {
      for (const p of pools) p.close();
      h1Agent.destroy();
      await Promise.all(servers.map((s) => s.stop()));
    });

    it("no crash, no INTERNAL/UNKNOWN, every rejection explained, rejected changes change nothing", { timeout: Math.max(600_000, SECONDS * 1000 + 120_000) }, async () => {
      const findings: Finding[] = [];
      const byCode = new Map<number, number>();
      const byRpc = new Map<string, number>();
      const started = Date.now();
      let n = 0;
      const CHUNK = 1000;
      let nextChunk = part;
      // Per server, a lane of read-only calls (READERS in flight) and one of mutating calls, sent in
      // batches of up to BATCH that name distinct rollouts, the state checked after each batch.
      const queues: { c: Case; n: number }[][][] = [
        [[], []],
        [[], []],
      ];
      const timing = { send: 0, check: 0, bisect: 0, batches: 0 };
      // Chunk k (CHUNK cases from seed SEED + k) is this part's when k % parts === part.
      const refill = () => {
        const from = nextChunk * CHUNK;
        if (from >= CASES) return false;
        const cases = fc.sample(caseArb, { seed: SEED + nextChunk, numRuns: Math.min(CHUNK, CASES - from) });
        cases.forEach((c, i) => queues[c.server]![methods[c.method]!.mutating ? 1 : 0]!.push({ c, n: from + i }));
        nextChunk += parts;
        return true;
      };
      const next = (server: number, lane: number): Prepared | undefined => {
        for (;;) {
          const q = queues[server]![lane]!.shift();
          if (q !== undefined) return prepare(q.c, q.n);
          if (!refill()) return undefined;
        }
      };
      const stopped = () => (SECONDS > 0 && Date.now() - started > SECONDS * 1000) || !servers.every((s) => s.alive());
      const record = (o: Outcome) => {
        const { p, result } = o;
        n++;
        byCode.set(result.code, (byCode.get(result.code) ?? 0) + 1);
        byRpc.set(p.rpc, (byRpc.get(p.rpc) ?? 0) + 1);
        for (const problem of o.problems) finding(p, result, problem);
      };
      const finding = (p: Prepared, result: CallResult, problem: string) =>
        findings.push({
          n: p.n,
          server: p.c.server === 0 ? "fast path" : "connect-node only",
          rpc: p.rpc,
          transport: p.transport,
          mutation: p.mutation,
          problem,
          result: { code: result.code, message: result.message, httpStatus: result.httpStatus, ...(result.reset === undefined ? {} : { reset: result.reset }) },
          input: p.input.subarray(0, 120).toString("hex"),
        });
      const readers = async (server: number) => {
        const inFlight = new Set<Promise<void>>();
        for (let p = next(server, 0); p !== undefined && !stopped(); p = next(server, 0)) {
          while (inFlight.size >= READERS) await Promise.race(inFlight);
          const t0 = performance.now();
          const done: Promise<void> = run(p).then((o) => {
            timing.send += performance.now() - t0;
            record(o);
            inFlight.delete(done);
          });
          inFlight.add(done);
        }
        await Promise.all(inFlight);
      };
      const writers = async (server: number) => {
        let state: Known | undefined;
        let since = 0;
        const blank = (message: string): CallResult => ({ code: -1, message, httpStatus: 0, data: Buffer.alloc(0) });
        /** Sends a batch, checks the state; returns the unattributed findings and the calls another accepted call masked. */
        const sendBatch = async (batch: Prepared[], again = false): Promise<{ unattributed: string[]; masked: Prepared[] }> => {
          state ??= await known(server);
          const t0 = performance.now();
          const outs = await Promise.all(batch.map(run));
          const t1 = performance.now();
          const { after, unattributed } = await checkBatch(server, state, outs);
          state = after;
          for (const o of outs) {
            if (!again) record(o);
            else for (const problem of o.problems) finding(o.p, o.result, `sent again alone: ${problem}`);
          }
          timing.send += t1 - t0;
          timing.check += performance.now() - t1;
          // Calls that named a rollout an accepted call of the batch also named: their change would
          // pass for the accepted one's, so they are sent again alone.
          const accepted = outs.filter((o) => o.result.code === 0);
          const masked = outs.filter((o) => o.result.code !== 0 && o.problems.length === 0 && accepted.some((a) => [...o.p.targets].some((t) => a.p.targets.has(t))));
          return { unattributed, masked: masked.map((o) => o.p) };
        };
        const creates = (p: Prepared) => p.rpc === "RolloutService/CreateRollout";
        const pending: Prepared[] = [];
        for (;;) {
          if (stopped()) return;
          if (since >= RESEED) {
            since = 0;
            await seed(server, state?.rollouts);
            state = undefined;
          }
          state ??= await known(server);
          // A batch's calls name distinct rollouts among those that exist (or may: the known ones,
          // and any a CreateRollout of the batch names); names of no rollout (most malformed) may
          // repeat. A call that would repeat one waits for a later batch.
          const batch: Prepared[] = [];
          const names = new Set<string>();
          const exclusive = new Set<string>();
          const rollouts = state.rollouts;
          const sole = (p: Prepared, t: string) => creates(p) || rollouts.has(t) || (KNOWN_NAMES as readonly string[]).includes(t);
          for (let k = 0; batch.length < BATCH; ) {
            let p = pending[k];
            if (p === undefined) {
              if (pending.length >= 4 * BATCH) break;
              const q = next(server, 1);
              if (q === undefined) break;
              pending.push(q);
              p = q;
            }
            const q = p;
            if ([...q.targets].some((t) => exclusive.has(t) || (sole(q, t) && names.has(t)))) {
              k++;
              continue;
            }
            pending.splice(k, 1);
            batch.push(q);
            for (const t of q.targets) {
              names.add(t);
              if (sole(q, t)) exclusive.add(t);
            }
          }
          if (batch.length === 0) return;
          timing.batches++;
          since += batch.length;
          const t0 = performance.now();
          const { unattributed, masked } = await sendBatch(batch);
          for (const p of masked) for (const problem of (await sendBatch([p], true)).unattributed) finding(p, blank("sent again alone"), problem);
          // A change nobody in the batch is blamed for: the batch is a finding, and its calls are
          // sent again one at a time to find which one it was.
          if (unattributed.length > 0) {
            for (const problem of unattributed) finding(batch[0]!, blank(`batch of cases ${batch.map((p) => p.n).join(",")}`), problem);
            for (const p of batch) for (const problem of (await sendBatch([p], true)).unattributed) finding(p, blank("sent again alone"), problem);
            timing.bisect += performance.now() - t0;
          }
        }
      };
      const cpu0 = process.cpuUsage();
      await Promise.all([readers(0), readers(1), writers(0), writers(1)]);
      const seconds = (Date.now() - started) / 1000;
      const cpu = process.cpuUsage(cpu0);
      console.log(
        `fuzz time: calls ${Math.round(timing.send)} ms summed, ${timing.batches} batches of mutating calls, their state checks ${Math.round(timing.check)} ms, bisecting ${Math.round(timing.bisect)} ms ` +
          `(${READERS} read-only calls in flight and batches of up to ${BATCH} per server); the test process's CPU ${((cpu.user + cpu.system) / 1e6).toFixed(1)} s`,
      );
      const summary = { seed: SEED, part: part + 1, parts, cases: n, seconds: Math.round(seconds * 10) / 10, batches: timing.batches, codes: Object.fromEntries([...byCode].sort((a, b) => a[0] - b[0])), rpcs: byRpc.size, findings: findings.length };
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
        writeFileSync(parts > 1 ? `${SUMMARY}.part${part}` : SUMMARY, JSON.stringify({ ...summary, byRpc: Object.fromEntries(byRpc), firstFindings: findings.slice(0, 20) }, null, 2));
      }
      expect(findings.slice(0, 10)).toEqual([]);
      expect(byRpc.size).toBe(methods.length);
      expect(servers.every((s) => s.alive())).toBe(true);
    });
  });
}
