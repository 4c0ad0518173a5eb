import { createContextKey } from "@connectrpc/connect";

/** The authenticated caller of an RPC. */
export interface CallerIdentity {
  /** The token's name; recorded as the actor of every change. */
  readonly name: string;
  readonly role: "admin" | "operator" | "reporter" | "reader";
}

/** Context key holding the caller; without tokens configured every caller is the local admin. */
export const callerKey = createContextKey<CallerIdentity>({ name: "local", role: "admin" }, { description: "rollgate caller" });

/** Context key holding the request id, echoed in INTERNAL errors and in logs. */
export const requestIdKey = createContextKey<string>("", { description: "rollgate request id" });
