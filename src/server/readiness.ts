import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";

/**
 * Returns an interceptor that answers rollgate's own services with UNAVAILABLE (which clients
 * retry) until state is loaded and again once shutdown begins. Health and reflection stay up.
 */
export function readinessInterceptor(state: () => "starting" | "ready" | "draining"): Interceptor {
  return (next) => async (req) => {
    if (req.service.typeName.startsWith("rollgate.")) {
      const s = state();
      if (s !== "ready") throw new ConnectError(s === "starting" ? "starting: state is loading" : "shutting down", Code.Unavailable);
    }
    return next(req);
  };
}
