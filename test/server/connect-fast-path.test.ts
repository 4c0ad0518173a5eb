import { compressionBrotli, compressionGzip, connectNodeAdapter } from "@connectrpc/connect-node";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DecisionService } from "../../gen/rollgate/v1/decision_service_pb.js";
import { admitInterceptor, createAdmit } from "../../src/server/admit.js";
import { createAuthenticator } from "../../src/server/auth.js";
import { createConnectFastPath } from "../../src/server/connect-fast-path.js";
import { createMetrics } from "../../src/server/metrics.js";
import { createCallReporter } from "../../src/server/observe.js";
import { listenOnePort, type OnePortListener } from "../../src/server/one-port.js";
import { createDecisionHotMethods, createDecisionService } from "../../src/service/decision-service.js";
import { serviceEnv, type ServiceEnv } from "../helpers/service-env.js";

/**
 * A setting the server leaves at connect-node's default (`requireConnectProtocolHeader: false`)
 * turned on, on both paths: the fast path must refuse exactly as connect-node does.
 */
describe("requireConnectProtocolHeader, on the Connect fast path and connect-node alike", () => {
  let env: ServiceEnv;
  let fast: OnePortListener;
  let connect: OnePortListener;
  let served = 0;

  beforeAll(async () => {
    env = await serviceEnv();
    await env.rollouts.createRollout({ rollout: { name: "req", stableVersion: "v1", canaryVersion: "v2" }, reason: "test" });
    const admit = createAdmit({ state: () => "ready", auth: createAuthenticator(undefined) });
    const report = createCallReporter(pino({ level: "silent" }), createMetrics(() => []));
    const hot = createDecisionHotMethods({ engine: env.engine });
    const settings = { readMaxBytes: 1 << 20, jsonOptions: { ignoreUnknownFields: false }, acceptCompression: [compressionGzip, compressionBrotli], requireConnectProtocolHeader: true };
    const handler = connectNodeAdapter({
      routes: (router) => router.service(DecisionService, createDecisionService({ engine: env.engine, hot })),
      ...settings,
      interceptors: [admitInterceptor(admit, report)],
    });
    const path = createConnectFastPath({
      methods: Object.values(hot),
      admit,
      report,
      maxBytes: settings.readMaxBytes,
      acceptCompression: settings.acceptCompression,
      requireConnectProtocolHeader: true,
      ignoreUnknownFields: false,
      served: () => served++,
    });
    fast = await listenOnePort({ host: "127.0.0.1", port: 0, handler: path.handler(handler), onStream: path.onStream });
    connect = await listenOnePort({ host: "127.0.0.1", port: 0, handler });
  });
  afterAll(async () => {
    await fast?.close(0);
    await connect?.close(0);
    await env?.close();
  });

  const message = JSON.stringify({ rollout: "req", key: "k" });
  const requests: { name: string; path: string; init: RequestInit }[] = [
    { name: "POST without the header", path: "/rollgate.v1.DecisionService/Route", init: { method: "POST", headers: { "content-type": "application/json" }, body: message } },
    { name: "POST with version 2", path: "/rollgate.v1.DecisionService/Route", init: { method: "POST", headers: { "content-type": "application/json", "connect-protocol-version": "2" }, body: message } },
    { name: "POST with version 1", path: "/rollgate.v1.DecisionService/Route", init: { method: "POST", headers: { "content-type": "application/json", "connect-protocol-version": "1" }, body: message } },
    { name: "GET without the connect parameter", path: `/rollgate.v1.DecisionService/Route?encoding=json&message=${encodeURIComponent(message)}`, init: {} },
    { name: "GET with connect=v2", path: `/rollgate.v1.DecisionService/Route?connect=v2&encoding=json&message=${encodeURIComponent(message)}`, init: {} },
    { name: "GET with connect=v1", path: `/rollgate.v1.DecisionService/Route?connect=v1&encoding=json&message=${encodeURIComponent(message)}`, init: {} },
  ];
  for (const r of requests) {
    it(`${r.name}: the same status and body`, async () => {
      const before = served;
      const a = await fetch(`http://${fast.address}${r.path}`, r.init);
      const b = await fetch(`http://${connect.address}${r.path}`, r.init);
      expect(served - before).toBe(1);
      expect({ status: a.status, body: await a.text() }).toEqual({ status: b.status, body: await b.text() });
      if (/(version |connect=v)1$/.test(r.name)) expect(a.status).toBe(200);
      else expect(a.status).toBe(400);
    });
  }
});
