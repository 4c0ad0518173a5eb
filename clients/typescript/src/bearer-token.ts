import type { Interceptor } from "@connectrpc/connect";

/** A bearer token, or a function that returns the current one (e.g. from a secret store). */
export type TokenSource = string | (() => string | Promise<string>);

/** Returns an interceptor that sends `authorization: Bearer <token>` on every call. */
export function bearerInterceptor(token: TokenSource): Interceptor {
  return (next) => async (req) => {
    const value = typeof token === "function" ? await token() : token;
    if (value !== "") req.header.set("authorization", `Bearer ${value}`);
    return next(req);
  };
}
