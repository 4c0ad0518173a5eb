// The reference: @connectrpc/connect-node serving rollgate.v1.DecisionService with Route as a
// no-op (a constant RouteResponse) on a plain node:http2 h2c server: what connect-node's
// universal-handler pipeline costs per gRPC call with no application work.
// Prints {"port": N} once listening.
import { createServer } from "node:http2";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import { DecisionService } from "../../dist/gen/rollgate/v1/decision_service_pb.js";

const answer = { variant: 1, version: "v1", bucket: 4242, weightBp: 500, reason: 1, rolloutVersion: 1n };
const handler = connectNodeAdapter({
  routes(router) {
    router.service(DecisionService, { route: async () => answer });
  },
});
const server = createServer(handler);
server.listen(0, "127.0.0.1", () => {
  process.stdout.write(JSON.stringify({ msg: "listening", port: server.address().port }) + "\n");
});
process.once("SIGTERM", () => process.exit(0));
