import type { ServerResponse } from "node:http";
import { describe, expect, it } from "vitest";
import { isConnectGetEncoding, withMediaTypeHint } from "../../src/server/media-types.js";
import type { RequestHandler } from "../../src/server/http-endpoints.js";

/** Calls the hinting handler with a bare request and response; returns whether `next` saw the response untouched. */
function passesUntouched(method: string, url: string, headers: Record<string, string> = {}): boolean {
  const writeHead = () => undefined;
  const end = () => undefined;
  const res = { writeHead, end } as unknown as ServerResponse;
  let untouched: boolean | undefined;
  const next: RequestHandler = (_req, r) => {
    untouched = (r as ServerResponse).writeHead === (writeHead as unknown) && (r as ServerResponse).end === (end as unknown);
  };
  withMediaTypeHint(next)({ method, url, headers } as never, res);
  return untouched!;
}

describe("withMediaTypeHint", () => {
  it("leaves a Connect GET with a valid encoding, and an accepted content type, untouched (nothing wrapped)", () => {
    expect(passesUntouched("GET", "/rollgate.v1.DecisionService/Route?connect=v1&encoding=proto&message=CgF4")).toBe(true);
    expect(passesUntouched("GET", "/rollgate.v1.DecisionService/Route?encoding=json&message=%7B%7D")).toBe(true);
    expect(passesUntouched("POST", "/rollgate.v1.DecisionService/Route", { "content-type": "application/grpc" })).toBe(true);
    expect(passesUntouched("POST", "/x", { "content-type": "application/json; charset=utf-8" })).toBe(true);
  });

  it("watches what may get connect-node's bare 415", () => {
    expect(passesUntouched("POST", "/rollgate.v1.DecisionService/Route")).toBe(false);
    expect(passesUntouched("POST", "/x", { "content-type": "text/plain" })).toBe(false);
    expect(passesUntouched("GET", "/rollgate.v1.DecisionService/Route?encoding=xml&message=x")).toBe(false);
    expect(passesUntouched("GET", "/rollgate.v1.DecisionService/Route?message=x")).toBe(false);
  });

  it("reads only the encoding parameter itself", () => {
    expect(isConnectGetEncoding("GET", "/r?xencoding=json")).toBe(false);
    expect(isConnectGetEncoding("GET", "/r?xencoding=json&encoding=proto")).toBe(true);
    expect(isConnectGetEncoding("GET", "/r?encoding=jsonx")).toBe(false);
    expect(isConnectGetEncoding("GET", "/r?encoding=json#f")).toBe(true);
    expect(isConnectGetEncoding("POST", "/r?encoding=json")).toBe(false);
  });
});
