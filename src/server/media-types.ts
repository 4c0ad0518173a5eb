import type { OutgoingHttpHeaders, ServerResponse } from "node:http";
import type { RequestHandler } from "./http-endpoints.js";

/** The request content types the rollgate services accept, by protocol. */
export const ACCEPTED_MEDIA_TYPES: readonly string[] = [
  "application/json",
  "application/proto",
  "application/connect+json",
  "application/connect+proto",
  "application/grpc",
  "application/grpc+proto",
  "application/grpc+json",
  "application/grpc-web",
  "application/grpc-web+proto",
  "application/grpc-web+json",
];

const ACCEPTED = new Set(ACCEPTED_MEDIA_TYPES);

/** Returns true when a content-type header names one of ACCEPTED_MEDIA_TYPES (parameters aside). */
export function isAcceptedMediaType(type: string | undefined): boolean {
  if (type === undefined) return false;
  if (ACCEPTED.has(type)) return true;
  const semi = type.indexOf(";");
  return ACCEPTED.has((semi < 0 ? type : type.slice(0, semi)).trim().toLowerCase());
}

const AMP = 38;
const QUESTION = 63;
const HASH = 35;

/**
 * Returns true for a Connect GET whose `encoding` query parameter is json or proto: connect-node
 * takes its type from there, so no 415 can come of its missing content type. String searches
 * only, so that every such request (the Connect GET Route) allocates nothing here.
 */
export function isConnectGetEncoding(method: string | undefined, url: string | undefined): boolean {
  if (method !== "GET" || url === undefined) return false;
  for (let i = url.indexOf("encoding="); i > 0; i = url.indexOf("encoding=", i + 1)) {
    const before = url.charCodeAt(i - 1);
    if (before !== QUESTION && before !== AMP) continue;
    const at = i + 9;
    const len = url.startsWith("json", at) ? 4 : url.startsWith("proto", at) ? 5 : 0;
    if (len === 0) return false;
    const after = at + len;
    return after === url.length || url.charCodeAt(after) === AMP || url.charCodeAt(after) === HASH;
  }
  return false;
}

/** Returns the body of a 415 answer: what was sent and what is accepted. */
export function unsupportedMediaTypeMessage(type: string | undefined): string {
  const sent = type === undefined || type === "" ? "no content-type was sent" : `content-type "${type}" is not supported`;
  return (
    `${sent}; rollgate accepts application/json or application/proto (Connect; also GET with ?encoding=json|proto&message=…), ` +
    `application/grpc, application/grpc+proto or application/grpc+json (gRPC, HTTP/2), ` +
    `application/grpc-web, application/grpc-web+proto or application/grpc-web+json (gRPC-Web)\n`
  );
}

/**
 * Returns a handler whose 415 answers say which content types are accepted.
 *
 * connect-node answers a request whose content type matches none of its protocols with a bare
 * 415 and an empty body, which leaves a caller who forgot `-H 'content-type: …'` guessing. Only
 * such requests are watched: an accepted type, or a Connect GET naming a valid `encoding`, passes
straight through without allocating.
 */
export function withMediaTypeHint(next: RequestHandler): RequestHandler {
  return (req, res) => {
    const type = req.headers["content-type"];
    if (isAcceptedMediaType(type) || (type === undefined && isConnectGetEncoding(req.method, req.url))) return next(req, res);
    // The two response types share this surface but not a declared type.
    const r = res as ServerResponse;
    const writeHead = r.writeHead.bind(r) as (status: number, headers?: OutgoingHttpHeaders) => ServerResponse;
    const end = r.end.bind(r) as (body?: string) => ServerResponse;
    let hint = false;
    r.writeHead = ((status: number, headers?: OutgoingHttpHeaders) => {
      if (status !== 415) return writeHead(status, headers);
      hint = true;
      return writeHead(415, { ...headers, "content-type": "text/plain; charset=utf-8", "accept-post": ACCEPTED_MEDIA_TYPES.join(", ") });
    }) as ServerResponse["writeHead"];
    r.end = ((...args: unknown[]) => (hint ? end(req.method === "HEAD" ? undefined : unsupportedMediaTypeMessage(type)) : (end as (...a: unknown[]) => ServerResponse)(...args))) as ServerResponse["end"];
    next(req, res);
  };
}
