import { createHash, timingSafeEqual } from "node:crypto";
import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import { callerKey, type CallerIdentity } from "../service/context.js";
import type { TokenEntry } from "./config.js";

type Role = CallerIdentity["role"];

const RANK: Record<Role, number> = { reader: 0, reporter: 1, operator: 2, admin: 3 };

/**
 * The least role each rollgate RPC needs. Roles are ordered: an admin may do what an operator
 * may, an operator what a reporter may, a reporter what a reader may. Methods not listed
 * (grpc health, reflection) need no token.
 */
export const REQUIRED_ROLE: Readonly<Record<string, Role>> = {
  "rollgate.v1.DecisionService/Route": "reader",
  "rollgate.v1.DecisionService/RouteBatch": "reader",
  "rollgate.v1.DecisionService/Health": "reader",
  "rollgate.v1.DecisionService/WatchHealth": "reader",
  "rollgate.v1.DecisionService/WatchRoutes": "reader",
  "rollgate.v1.DecisionService/RecordOutcome": "reporter",
  "rollgate.v1.DecisionService/StreamOutcomes": "reporter",
  "rollgate.v1.RolloutService/GetRollout": "reader",
  "rollgate.v1.RolloutService/ListRollouts": "reader",
  "rollgate.v1.RolloutService/ListEvents": "reader",
  "rollgate.v1.RolloutService/WatchEvents": "reader",
  "rollgate.v1.RolloutService/CreateRollout": "operator",
  "rollgate.v1.RolloutService/UpdateRollout": "operator",
  "rollgate.v1.RolloutService/Promote": "operator",
  "rollgate.v1.RolloutService/Rollback": "operator",
  "rollgate.v1.RolloutService/SetWeight": "operator",
  "rollgate.v1.RolloutService/Pause": "operator",
  "rollgate.v1.RolloutService/Resume": "operator",
  "rollgate.v1.RolloutService/Halt": "operator",
  "rollgate.v1.RolloutService/SetFeature": "operator",
  "rollgate.v1.RolloutService/SetOverride": "operator",
  "rollgate.v1.RolloutService/ClearOverride": "operator",
  "rollgate.v1.RolloutService/DeleteRollout": "admin",
};

/** The caller recorded when no tokens are configured (loopback-only development mode). */
export const LOCAL_CALLER: CallerIdentity = { name: "local", role: "admin" };

/** Decides who a caller is and whether they may call a method. */
export interface Authenticator {
  /**
   * Returns the caller of a request from its `authorization` header value, or throws
   * UNAUTHENTICATED / PERMISSION_DENIED for `procedure` ("pkg.Service/Method").
   */
  authorize(authorization: string | null | undefined, procedure: string): CallerIdentity;
}

/**
 * Returns an authenticator over a tokens list, or one that lets everyone in as LOCAL_CALLER
 * when `tokens` is undefined. Tokens are looked up by SHA-256 digest and compared in
 * constant time, so lookup time says nothing about a token's prefix.
 */
export function createAuthenticator(tokens: readonly TokenEntry[] | undefined): Authenticator {
  if (tokens === undefined) return { authorize: () => LOCAL_CALLER };
  const byDigest = new Map<string, { digest: Buffer; identity: CallerIdentity }>();
  for (const t of tokens) {
    const digest = createHash("sha256").update(t.token).digest();
    byDigest.set(digest.toString("hex"), { digest, identity: { name: t.name, role: t.role } });
  }
  return {
    authorize(authorization, procedure) {
      const required = REQUIRED_ROLE[procedure];
      if (required === undefined) return LOCAL_CALLER_PUBLIC;
      const m = /^Bearer\s+(\S+)\s*$/i.exec(authorization ?? "");
      if (m === null) throw new ConnectError("missing bearer token (authorization: Bearer <token>)", Code.Unauthenticated);
      const digest = createHash("sha256").update(m[1] ?? "").digest();
      const found = byDigest.get(digest.toString("hex"));
      if (found === undefined || !timingSafeEqual(found.digest, digest)) {
        throw new ConnectError("unknown token", Code.Unauthenticated);
      }
      if (RANK[found.identity.role] < RANK[required]) {
        throw new ConnectError(
          `token "${found.identity.name}" has role ${found.identity.role}; ${procedure} needs ${required}`,
          Code.PermissionDenied,
        );
      }
      return found.identity;
    },
  };
}

/** The identity of callers of public methods (health, reflection) when tokens are configured. */
const LOCAL_CALLER_PUBLIC: CallerIdentity = { name: "anonymous", role: "reader" };

/**
 * Returns a Connect interceptor that only authorizes every call and records the caller in its
 * context, for routers served in process (the in-memory transport of service tests). The
 * server itself admits calls with admitInterceptor (admit.ts), which authorizes through the
 * same Authenticator.
 */
export function authInterceptor(auth: Authenticator): Interceptor {
  return (next) => async (req) => {
    const caller = auth.authorize(req.header.get("authorization"), `${req.service.typeName}/${req.method.name}`);
    req.contextValues.set(callerKey, caller);
    return next(req);
  };
}
