import { Code, ConnectError, createClient, createRouterTransport, type Client } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import { afterEach, describe, expect, it, vi } from "vitest";
import { Health, HealthCheckResponse_ServingStatus as Status, type HealthCheckResponse } from "../../gen/grpc/health/v1/health_pb.js";
import { createHealthStatus, type HealthStatus } from "../../src/server/grpc-health.js";
import { listenOnePort, type OnePortListener } from "../../src/server/one-port.js";
import { registerReflection } from "../../src/server/reflection.js";
import { grpcurl } from "../helpers/grpcurl.js";

const DECISION = "rollgate.v1.DecisionService";
const ROLLOUT = "rollgate.v1.RolloutService";

function inMemory(health: HealthStatus): Client<typeof Health> {
  return createClient(Health, createRouterTransport((router) => router.service(health.service, health.impl)));
}

/** Pulls the next message of a Watch, failing the test if the stream ends instead. */
async function next(it: AsyncIterator<HealthCheckResponse>): Promise<Status> {
  const r = await it.next();
  if (r.done === true) throw new Error("watch ended");
  return r.value.status;
}

async function codeOf(p: Promise<unknown>): Promise<Code | undefined> {
  return p.then(
    () => undefined,
    (e: unknown) => ConnectError.from(e).code,
  );
}

describe("grpc.health.v1.Health, in memory", () => {
  it("starts NOT_SERVING, then reports what the server sets, per name and for the whole server", async () => {
    const health = createHealthStatus([DECISION, ROLLOUT]);
    const client = inMemory(health);
    expect((await client.check({ service: "" })).status).toBe(Status.NOT_SERVING);

    health.setAll("SERVING");
    expect((await client.check({ service: "" })).status).toBe(Status.SERVING);
    expect((await client.check({ service: DECISION })).status).toBe(Status.SERVING);

    health.set(ROLLOUT, Status.NOT_SERVING);
    expect((await client.check({ service: ROLLOUT })).status).toBe(Status.NOT_SERVING);
    expect((await client.check({ service: DECISION })).status).toBe(Status.SERVING);
    expect(health.get(ROLLOUT)).toBe(Status.NOT_SERVING);
  });

  it("answers Check on an unknown name with NOT_FOUND", async () => {
    const client = inMemory(createHealthStatus([DECISION], "SERVING"));
    expect(await codeOf(client.check({ service: "rollgate.v1.Nope" }))).toBe(Code.NotFound);
  });

  it("lists every name with its status", async () => {
    const health = createHealthStatus([DECISION, ROLLOUT], "SERVING");
    health.set(ROLLOUT, "NOT_SERVING");
    const { statuses } = await inMemory(health).list({});
    const plain = Object.fromEntries(Object.entries(statuses).map(([k, v]) => [k, v.status]));
    expect(plain).toEqual({ "": Status.SERVING, [DECISION]: Status.SERVING, [ROLLOUT]: Status.NOT_SERVING });
  });

  it("Watch sends the current status at once, then each change, and no repeats", async () => {
    const health = createHealthStatus([DECISION], "SERVING");
    const ac = new AbortController();
    const it = inMemory(health).watch({ service: DECISION }, { signal: ac.signal })[Symbol.asyncIterator]();
    try {
      expect(await next(it)).toBe(Status.SERVING);
      health.set(DECISION, "SERVING"); // no change, nothing to send
      health.set(DECISION, "NOT_SERVING");
      expect(await next(it)).toBe(Status.NOT_SERVING);
      health.setAll("SERVING");
      expect(await next(it)).toBe(Status.SERVING);
    } finally {
      ac.abort();
    }
  });

  it("Watch always ends up at the latest status when changes come faster than it is read", async () => {
    const health = createHealthStatus([DECISION], "SERVING");
    const ac = new AbortController();
    const it = inMemory(health).watch({ service: DECISION }, { signal: ac.signal })[Symbol.asyncIterator]();
    try {
      expect(await next(it)).toBe(Status.SERVING);
      health.set(DECISION, "NOT_SERVING");
      health.set(DECISION, "SERVING");
      health.set(DECISION, "NOT_SERVING");
      expect(await next(it)).toBe(Status.NOT_SERVING);
    } finally {
      ac.abort();
    }
  });

  it("Watch on an unknown name says SERVICE_UNKNOWN and stays open until the name appears", async () => {
    const health = createHealthStatus([DECISION], "SERVING");
    const ac = new AbortController();
    const it = inMemory(health).watch({ service: "rollgate.v1.Later" }, { signal: ac.signal })[Symbol.asyncIterator]();
    try {
      expect(await next(it)).toBe(Status.SERVICE_UNKNOWN);
      health.set("rollgate.v1.Later", "SERVING");
      expect(await next(it)).toBe(Status.SERVING);
    } finally {
      ac.abort();
    }
  });

  it("shutdown() sends NOT_SERVING and ends every Watch with OK, and later sets are ignored", async () => {
    const health = createHealthStatus([DECISION], "SERVING");
    const client = inMemory(health);
    const known = client.watch({ service: DECISION })[Symbol.asyncIterator]();
    const unknown = client.watch({ service: "rollgate.v1.Nope" })[Symbol.asyncIterator]();
    expect(await next(known)).toBe(Status.SERVING);
    expect(await next(unknown)).toBe(Status.SERVICE_UNKNOWN);
    expect(health.watchers()).toBe(2);

    health.shutdown();
    expect(await next(known)).toBe(Status.NOT_SERVING);
    expect((await known.next()).done).toBe(true); // ended, and without an error
    expect((await unknown.next()).done).toBe(true);
    expect(health.watchers()).toBe(0);

    health.setAll("SERVING");
    expect((await client.check({ service: "" })).status).toBe(Status.NOT_SERVING);
    // A Watch opened after shutdown reports and ends at once.
    const late: Status[] = [];
    for await (const res of client.watch({ service: "" })) late.push(res.status);
    expect(late).toEqual([Status.NOT_SERVING]);
  });

  it("forgets a watcher whose client went away", async () => {
    const health = createHealthStatus([DECISION], "SERVING");
    const ac = new AbortController();
    const it = inMemory(health).watch({ service: DECISION }, { signal: ac.signal })[Symbol.asyncIterator]();
    expect(await next(it)).toBe(Status.SERVING);
    expect(health.watchers()).toBe(1);
    ac.abort();
    expect(await codeOf(it.next())).toBe(Code.Canceled);
    // The server side learns of the cancellation through its handler signal, asynchronously.
    await vi.waitFor(() => expect(health.watchers()).toBe(0));
  });

  it("refuses to set SERVICE_UNKNOWN, which only Watch reports", () => {
    const health = createHealthStatus([DECISION]);
    expect(() => health.set(DECISION, Status.SERVICE_UNKNOWN)).toThrow(RangeError);
  });
});

describe("grpc.health.v1.Health, end to end with grpcurl", () => {
  let listener: OnePortListener | undefined;
  afterEach(async () => {
    await listener?.close(0);
    listener = undefined;
  });

  async function serve(health: HealthStatus): Promise<OnePortListener> {
    // grpcurl learns the Health schema through reflection, as it would from the real server.
    const handler = connectNodeAdapter({
      routes: (router) => {
        router.service(health.service, health.impl);
        registerReflection(router);
      },
    });
    listener = await listenOnePort({ host: "127.0.0.1", port: 0, handler });
    return listener;
  }

  it("answers Check and List, and NOT_FOUND for unknown names", async () => {
    const health = createHealthStatus([DECISION, ROLLOUT], "SERVING");
    health.set(ROLLOUT, "NOT_SERVING");
    const l = await serve(health);

    const whole = await grpcurl(["-plaintext", "-d", '{"service":""}', l.address, "grpc.health.v1.Health/Check"]);
    expect(whole).toMatchObject({ code: 0, stderr: "" });
    expect(JSON.parse(whole.stdout)).toEqual({ status: "SERVING" });

    const rollout = await grpcurl(["-plaintext", "-d", `{"service":"${ROLLOUT}"}`, l.address, "grpc.health.v1.Health/Check"]);
    expect(JSON.parse(rollout.stdout)).toEqual({ status: "NOT_SERVING" });

    const unknown = await grpcurl(["-plaintext", "-d", '{"service":"rollgate.v1.Nope"}', l.address, "grpc.health.v1.Health/Check"]);
    expect(unknown.code).toBe(64 + Code.NotFound);
    expect(unknown.stderr).toContain("NotFound");

    const list = await grpcurl(["-plaintext", l.address, "grpc.health.v1.Health/List"]);
    expect(list.code).toBe(0);
    expect(JSON.parse(list.stdout)).toEqual({
      statuses: { "": { status: "SERVING" }, [DECISION]: { status: "SERVING" }, [ROLLOUT]: { status: "NOT_SERVING" } },
    });
  });

  it("ends a grpcurl Watch cleanly on shutdown", async () => {
    const health = createHealthStatus([DECISION], "SERVING");
    const l = await serve(health);
    const watching = grpcurl(["-plaintext", "-d", `{"service":"${DECISION}"}`, l.address, "grpc.health.v1.Health/Watch"]);
    await vi.waitFor(() => expect(health.watchers()).toBe(1), { timeout: 15_000 });
    health.shutdown();
    const r = await watching;
    expect(r).toMatchObject({ code: 0, stderr: "" });
    expect(r.stdout.match(/"status": "\w+"/g)).toEqual(['"status": "SERVING"', '"status": "NOT_SERVING"']);
  });
});
