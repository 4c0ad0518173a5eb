import { createClient, createRouterTransport, type Client, type Interceptor } from "@connectrpc/connect";
import { pino } from "pino";
import { manualClock, type ManualClock } from "../../src/domain/clock.js";
import { authInterceptor, createAuthenticator } from "../../src/server/auth.js";
import type { TokenEntry } from "../../src/server/config.js";
import { createDecisionService } from "../../src/service/decision-service.js";
import { createEngine, type Engine, type EngineTracer } from "../../src/service/engine.js";
import { createRolloutService } from "../../src/service/rollout-service.js";
import { openSqliteStore } from "../../src/store/sqlite-store.js";
import type { Store } from "../../src/store/store.js";
import { DecisionService } from "../../gen/rollgate/v1/decision_service_pb.js";
import { RolloutService } from "../../gen/rollgate/v1/rollout_service_pb.js";

/** Services wired to a real `:memory:` SQLite store and a manual clock, called in memory. */
export interface ServiceEnv {
  readonly clock: ManualClock;
  readonly store: Store;
  readonly engine: Engine;
  readonly rollouts: Client<typeof RolloutService>;
  readonly decisions: Client<typeof DecisionService>;
  /** Returns clients that send `authorization: Bearer <token>`. */
  as(token: string): { rollouts: Client<typeof RolloutService>; decisions: Client<typeof DecisionService> };
  close(): Promise<void>;
}

/** Returns a service environment; with `tokens`, calls are authorized as on the server. */
export async function serviceEnv(opts: { tokens?: TokenEntry[]; keepaliveMs?: number; store?: Store; tracer?: EngineTracer } = {}): Promise<ServiceEnv> {
  const clock = manualClock();
  const store = opts.store ?? openSqliteStore(":memory:");
  const engine = createEngine({ store, clock, logger: pino({ level: "silent" }), tracer: opts.tracer });
  await engine.load();
  const interceptors: Interceptor[] = [authInterceptor(createAuthenticator(opts.tokens))];
  const transport = (extra: Interceptor[] = []) =>
    createRouterTransport(
      (router) => {
        router.service(DecisionService, createDecisionService({ engine }));
        router.service(RolloutService, createRolloutService({ engine, keepaliveMs: opts.keepaliveMs ?? 15_000 }));
      },
      { router: { interceptors }, transport: { interceptors: extra } },
    );
  const plain = transport();
  return {
    clock,
    store,
    engine,
    rollouts: createClient(RolloutService, plain),
    decisions: createClient(DecisionService, plain),
    as(token) {
      const t = transport([(next) => (req) => (req.header.set("authorization", `Bearer ${token}`), next(req))]);
      return { rollouts: createClient(RolloutService, t), decisions: createClient(DecisionService, t) };
    },
    async close() {
      engine.shutdown();
      await engine.drain();
      await store.close();
    },
  };
}
