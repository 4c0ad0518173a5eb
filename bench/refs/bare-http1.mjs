// The HTTP/1.1 reference: a bare node:http server that reads each request's body and answers
// every request with the same fixed JSON body (a RouteResponse as Connect JSON). No routing, no
// parsing, no framework: the floor of what a Node HTTP/1.1 server costs per call. Prints
// {"port": N} once listening.
import { createServer } from "node:http";

const BODY = Buffer.from(JSON.stringify({ variant: "VARIANT_STABLE", version: "v1", bucket: 8841, weightBp: 500, features: ["new-checkout"], reason: "ROUTE_REASON_WEIGHT", rolloutVersion: "1" }));
const HEADERS = { "content-type": "application/json", "content-length": BODY.length };

const server = createServer((req, res) => {
  req.on("data", () => {});
  req.on("end", () => {
    res.writeHead(200, HEADERS);
    res.end(BODY);
  });
});
server.keepAliveTimeout = 65_000;
server.listen(0, "127.0.0.1", () => {
  process.stdout.write(JSON.stringify({ msg: "listening", port: server.address().port }) + "\n");
});
process.once("SIGTERM", () => process.exit(0));
