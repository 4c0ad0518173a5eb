// The reference: a bare node:http2 server whose stream handler answers every gRPC request by
// hand — response headers, the request's own message echoed back as the one response frame,
// trailers with grpc-status 0. No protobuf, no routing, no framework: the floor of what a
// Node gRPC server costs per call. Prints {"port": N} once listening.
import { createServer } from "node:http2";

const RESPONSE_HEADERS = { ":status": 200, "content-type": "application/grpc+proto" };
const TRAILERS = { "grpc-status": "0" };

const server = createServer();
server.on("stream", (stream) => {
  const chunks = [];
  stream.on("data", (c) => chunks.push(c));
  stream.on("error", () => {});
  stream.on("end", () => {
    const body = chunks.length === 1 ? chunks[0] : Buffer.concat(chunks);
    stream.respond(RESPONSE_HEADERS, { waitForTrailers: true });
    stream.once("wantTrailers", () => stream.sendTrailers(TRAILERS));
    stream.end(body);
  });
});
server.listen(0, "127.0.0.1", () => {
  process.stdout.write(JSON.stringify({ msg: "listening", port: server.address().port }) + "\n");
});
process.once("SIGTERM", () => process.exit(0));
