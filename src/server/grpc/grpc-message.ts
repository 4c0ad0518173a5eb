import type { OutgoingHttpHeaders } from "node:http";
import type { RequestHandler } from "../http-endpoints.js";

/**
 * Returns a status message percent-encoded as the gRPC spec asks for `grpc-message`: bytes of
 * its UTF-8 outside 0x20..0x7E, and '%' itself, as %XX; everything else as is.
 */
export function encodeGrpcMessage(message: string): string {
  let out = "";
  for (const byte of Buffer.from(message, "utf8")) {
    out += byte >= 0x20 && byte <= 0x7e && byte !== 0x25 ? String.fromCharCode(byte) : `%${byte.toString(16).toUpperCase().padStart(2, "0")}`;
  }
  return out;
}

function reencode(headers: OutgoingHttpHeaders | undefined): void {
  const value = headers?.["grpc-message"];
  if (headers === undefined || typeof value !== "string") return;
  let decoded: string;
  try {
    decoded = decodeURIComponent(value);
  } catch {
    return;
  }
  headers["grpc-message"] = encodeGrpcMessage(decoded);
}

/**
 * Returns a handler whose gRPC responses carry `grpc-message` in the spec's minimal
 * percent-encoding.
 *
 * connect-node encodes it with encodeURIComponent, which also escapes ':' and ' '-safe
 * reserved characters; @grpc/grpc-js decodes with decodeURI, which leaves "%3A" in place, so
 * "key: must not be empty" reached grpc-js callers as "key%3A must not be empty".
 */
export function withCanonicalGrpcMessage(next: RequestHandler): RequestHandler {
  return (req, res) => {
    const type = req.headers["content-type"];
    if (req.httpVersionMajor !== 2 || typeof type !== "string" || !type.startsWith("application/grpc") || type.startsWith("application/grpc-web")) {
      return next(req, res);
    }
    const r = res as unknown as {
      writeHead(status: number, headers?: OutgoingHttpHeaders): unknown;
      addTrailers(headers: OutgoingHttpHeaders): void;
    };
    const writeHead = r.writeHead.bind(r);
    const addTrailers = r.addTrailers.bind(r);
    r.writeHead = (status, headers) => {
      reencode(headers);
      return writeHead(status, headers);
    };
    r.addTrailers = (headers) => {
      reencode(headers);
      addTrailers(headers);
    };
    next(req, res);
  };
}
