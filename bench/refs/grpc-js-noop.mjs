// The reference: an @grpc/grpc-js server serving rollgate.v1.DecisionService/Route as a no-op —
// it decodes the RouteRequest with protobuf-es and answers a constant RouteResponse. What a
// plain grpc-js service costs per call. Prints {"port": N} once listening.
import * as grpc from "@grpc/grpc-js";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { RouteRequestSchema, RouteResponseSchema } from "../../dist/gen/rollgate/v1/decision_service_pb.js";

const answer = create(RouteResponseSchema, { variant: 1, version: "v1", bucket: 4242, weightBp: 500, reason: 1, rolloutVersion: 1n });
const server = new grpc.Server();
server.addService(
  {
    route: {
      path: "/rollgate.v1.DecisionService/Route",
      requestStream: false,
      responseStream: false,
      requestDeserialize: (b) => fromBinary(RouteRequestSchema, b),
      requestSerialize: (m) => Buffer.from(toBinary(RouteRequestSchema, m)),
      responseSerialize: (m) => Buffer.from(toBinary(RouteResponseSchema, m)),
      responseDeserialize: (b) => fromBinary(RouteResponseSchema, b),
    },
  },
  { route: (_call, callback) => callback(null, answer) },
);
server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (err, port) => {
  if (err) throw err;
  process.stdout.write(JSON.stringify({ msg: "listening", port }) + "\n");
});
process.once("SIGTERM", () => process.exit(0));
