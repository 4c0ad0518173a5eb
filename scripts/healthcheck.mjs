#!/usr/bin/env node
// The Docker image's HEALTHCHECK: GET /readyz on the address the server was told to listen on
// (ROLLGATE_LISTEN; a wildcard host is checked on loopback), over TLS when ROLLGATE_TLS_CERT is
// set. Exits 0 on 200, 1 otherwise, printing why. It reads the environment only: settings
// given as `serve` flags (--listen, --tls-cert) are invisible to it, so set them as ROLLGATE_*
// variables in the image.
//
// TLS: the check connects to its own process over loopback, so it does not verify the
// server's certificate (whose name is rarely 127.0.0.1). With mTLS (ROLLGATE_TLS_CLIENT_CA) the
// server refuses callers without a client certificate: give the check one with
// ROLLGATE_HEALTHCHECK_CERT and ROLLGATE_HEALTHCHECK_KEY.
import { readFileSync } from "node:fs";
import { request as httpRequest } from "node:http";
import { request as httpsRequest } from "node:https";
import { DEFAULTS, parseListen } from "../dist/src/server/config.js";

const TIMEOUT_MS = 2500;
const env = process.env;
const set = (name) => (env[name] === undefined || env[name] === "" ? undefined : env[name]);

function fail(why) {
  console.error(`unhealthy: ${why}`);
  process.exit(1);
}

let host, port;
try {
  ({ host, port } = parseListen(set("ROLLGATE_LISTEN") ?? DEFAULTS.listen));
} catch (e) {
  fail(e.message);
}
if (host === "0.0.0.0") host = "127.0.0.1";
if (host === "::") host = "::1";
const tls = set("ROLLGATE_TLS_CERT") !== undefined;
const options = { host, port, path: "/readyz", method: "GET", timeout: TIMEOUT_MS };
if (tls) {
  options.rejectUnauthorized = false;
  const cert = set("ROLLGATE_HEALTHCHECK_CERT");
  const key = set("ROLLGATE_HEALTHCHECK_KEY");
  try {
    if (cert !== undefined) options.cert = readFileSync(cert);
    if (key !== undefined) options.key = readFileSync(key);
  } catch (e) {
    fail(`ROLLGATE_HEALTHCHECK_CERT/KEY: ${e.message}`);
  }
}
const url = `${tls ? "https" : "http"}://${host.includes(":") ? `[${host}]` : host}:${port}/readyz`;
const req = (tls ? httpsRequest : httpRequest)(options, (res) => {
  res.resume();
  if (res.statusCode === 200) process.exit(0);
  fail(`${url} answered ${res.statusCode}`);
});
req.on("timeout", () => req.destroy(new Error(`no answer within ${TIMEOUT_MS} ms`)));
req.on("error", (e) => fail(`${url}: ${e.message}`));
req.end();
