import { create, fromBinary, toBinary, type DescMessage, type DescService, type MessageInitShape } from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";

/**
 * Returns a @grpc/grpc-js client for a protobuf-es service descriptor: a real gRPC client from
 * another implementation, with messages (de)serialised by protobuf-es (plain init objects are fine).
 */
export function grpcJsClient(
  service: DescService,
  address: string,
  credentials = grpc.credentials.createInsecure(),
  options: grpc.ChannelOptions = {},
): grpc.Client & Record<string, unknown> {
  const definition: Record<string, grpc.MethodDefinition<unknown, unknown>> = {};
  for (const m of service.methods) {
    definition[m.localName] = {
      path: `/${service.typeName}/${m.name}`,
      requestStream: m.methodKind === "client_streaming" || m.methodKind === "bidi_streaming",
      responseStream: m.methodKind === "server_streaming" || m.methodKind === "bidi_streaming",
      requestSerialize: (msg: unknown) => Buffer.from(toBinary(m.input, create(m.input, msg as MessageInitShape<DescMessage>))),
      requestDeserialize: (b: Buffer) => fromBinary(m.input, b),
      responseSerialize: (msg: unknown) => Buffer.from(toBinary(m.output, create(m.output, msg as MessageInitShape<DescMessage>))),
      responseDeserialize: (b: Buffer) => fromBinary(m.output, b),
    };
  }
  const Ctor = grpc.makeGenericClientConstructor(definition as grpc.ServiceDefinition, service.name);
  return new Ctor(address, credentials, options) as grpc.Client & Record<string, unknown>;
}

/** Calls a unary method of a grpcJsClient and resolves with the response or rejects with the ServiceError. */
export function unary<Res>(client: grpc.Client & Record<string, unknown>, method: string, req: unknown, metadata = new grpc.Metadata()): Promise<Res> {
  return new Promise((resolve, reject) => {
    const fn = client[method] as (r: unknown, md: grpc.Metadata, cb: (e: grpc.ServiceError | null, res: Res) => void) => void;
    fn.call(client, req, metadata, (err, res) => (err === null ? resolve(res) : reject(err)));
  });
}

/** Returns metadata carrying a bearer token. */
export function bearer(token: string): grpc.Metadata {
  const md = new grpc.Metadata();
  md.set("authorization", `Bearer ${token}`);
  return md;
}
