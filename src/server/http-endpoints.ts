import type { IncomingMessage, ServerResponse } from "node:http";
import type { Http2ServerRequest, Http2ServerResponse } from "node:http2";
import type { Registry } from "prom-client";

/** A request handler for node:http and node:http2 compat requests alike. */
export type RequestHandler = (
  req: IncomingMessage | Http2ServerRequest,
  res: ServerResponse | Http2ServerResponse,
) => void;

/** What the plain HTTP endpoints report. */
export interface EndpointState {
  /** True once the store is open and state loaded, until shutdown begins. */
  ready(): boolean;
  /** Why not ready, when known (e.g. "database: disk full (SQLITE_FULL)"): /readyz's 503 body says it. */
  reason?(): string | undefined;
  readonly registry: Registry;
}

/**
 * Returns a handler that answers `GET /healthz` (the process is up), `GET /readyz` (200 only
 * when ready) and `GET /metrics` (Prometheus text), and passes everything else to `next`.
 */
export function withHttpEndpoints(state: EndpointState, next: RequestHandler): RequestHandler {
  return (req, res) => {
    if (req.method !== "GET" && req.method !== "HEAD") return next(req, res);
    const path = (req.url ?? "/").split("?", 1)[0];
    const send = (status: number, type: string, body: string) => {
      // The two response types share this surface but not a declared type.
      const r = res as ServerResponse;
      r.writeHead(status, { "content-type": type, "cache-control": "no-store" });
      r.end(req.method === "HEAD" ? undefined : body);
    };
    switch (path) {
      case "/healthz":
        return send(200, "text/plain; charset=utf-8", "ok\n");
      case "/readyz":
        return state.ready() ? send(200, "text/plain; charset=utf-8", "ready\n") : send(503, "text/plain; charset=utf-8", `not ready${state.reason?.() ? `: ${state.reason()}` : ""}\n`);
      case "/metrics":
        state.registry.metrics().then(
          (text) => send(200, state.registry.contentType, text),
          () => send(500, "text/plain; charset=utf-8", "metrics unavailable\n"),
        );
        return;
      default:
        return next(req, res);
    }
  };
}
