import { create, toBinary, type DescFile, type DescService } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema, type DescriptorProto, type EnumDescriptorProto, type FieldDescriptorProto } from "@bufbuild/protobuf/wkt";
import { Code, type ConnectRouter, type ServiceImpl } from "@connectrpc/connect";
import * as v1 from "../../gen/grpc/reflection/v1/reflection_pb.js";
import * as v1alpha from "../../gen/grpc/reflection/v1alpha/reflection_pb.js";

/** A reflection request's question, the same shape in v1 and v1alpha. */
type Question =
  | { case: "fileByFilename"; value: string }
  | { case: "fileContainingSymbol"; value: string }
  | { case: "fileContainingExtension"; value: { containingType: string; extensionNumber: number } }
  | { case: "allExtensionNumbersOfType"; value: string }
  | { case: "listServices"; value: string }
  | { case: undefined; value?: undefined };

/** A reflection response's answer, as init data for either version's response message. */
type Answer =
  | { case: "fileDescriptorResponse"; value: { fileDescriptorProto: Uint8Array[] } }
  | { case: "allExtensionNumbersResponse"; value: { baseTypeName: string; extensionNumber: number[] } }
  | { case: "listServicesResponse"; value: { service: { name: string }[] } }
  | { case: "errorResponse"; value: { errorCode: number; errorMessage: string } };

/** Everything reflection can be asked about, resolved once at start. */
interface ReflectionIndex {
  /** Answers one request; `sent` holds the files this stream already sent. */
  answer(question: Question, sent: Set<string>): Answer;
}

/**
 * Returns router registrations of gRPC server reflection, `grpc.reflection.v1` and
 * `grpc.reflection.v1alpha`, describing `services`, the reflection services themselves and
 * every file they import (transitively, well-known types included), so that `grpcurl list`
 * and `grpcurl describe` work without proto files.
 */
export function reflectionRoutes(services: readonly DescService[]): (router: ConnectRouter) => void {
  const index = createReflectionIndex([...services, v1.ServerReflection, v1alpha.ServerReflection]);
  return (router) => {
    router.service(v1.ServerReflection, reflectionV1(index));
    router.service(v1alpha.ServerReflection, reflectionV1alpha(index));
  };
}

/**
 * Registers gRPC server reflection (v1 and v1alpha) on `router`, describing `services` or, when
 * omitted, every service registered on the router so far: call it after the other services.
 */
export function registerReflection(router: ConnectRouter, services?: readonly DescService[]): void {
  const described = services ?? [...new Set(router.handlers.map((h) => h.service))];
  reflectionRoutes(described)(router);
}

function reflectionV1(index: ReflectionIndex): ServiceImpl<typeof v1.ServerReflection> {
  return {
    async *serverReflectionInfo(requests) {
      const sent = new Set<string>();
      for await (const req of requests) {
        yield create(v1.ServerReflectionResponseSchema, {
          validHost: req.host,
          originalRequest: req,
          messageResponse: index.answer(req.messageRequest, sent),
        });
      }
    },
  };
}

function reflectionV1alpha(index: ReflectionIndex): ServiceImpl<typeof v1alpha.ServerReflection> {
  return {
    async *serverReflectionInfo(requests) {
      const sent = new Set<string>();
      for await (const req of requests) {
        yield create(v1alpha.ServerReflectionResponseSchema, {
          validHost: req.host,
          originalRequest: req,
          messageResponse: index.answer(req.messageRequest, sent),
        });
      }
    },
  };
}

function createReflectionIndex(services: readonly DescService[]): ReflectionIndex {
  const files = new Map<string, { file: DescFile; bytes: Uint8Array }>();
  const symbols = new Map<string, DescFile>();
  const messages = new Set<string>();
  /** Extendee full name → extension number → declaring file. */
  const extensions = new Map<string, Map<number, DescFile>>();

  const addFile = (file: DescFile) => {
    const name = file.proto.name;
    if (files.has(name)) return;
    files.set(name, { file, bytes: toBinary(FileDescriptorProtoSchema, file.proto) });
    indexFile(file, symbols, messages, extensions);
    for (const dep of file.dependencies) addFile(dep);
  };
  for (const service of services) addFile(service.file);
  const serviceNames = [...new Set(services.map((s) => s.typeName))].sort();

  /** The file and, breadth first, its imports this stream has not been sent yet (as grpc-go does). */
  const withDependencies = (file: DescFile, sent: Set<string>): Answer => {
    const out: Uint8Array[] = [];
    const seen = new Set<string>();
    const queue = [file];
    for (let f = queue.shift(); f !== undefined; f = queue.shift()) {
      const name = f.proto.name;
      if (seen.has(name)) continue;
      seen.add(name);
      if (out.length === 0 || !sent.has(name)) {
        sent.add(name);
        // Every file reached here was indexed by addFile, dependencies included.
        out.push(files.get(name)?.bytes ?? toBinary(FileDescriptorProtoSchema, f.proto));
      }
      queue.push(...f.dependencies);
    }
    return { case: "fileDescriptorResponse", value: { fileDescriptorProto: out } };
  };
  const notFound = (what: string): Answer => ({
    case: "errorResponse",
    value: { errorCode: Code.NotFound, errorMessage: `${what} not found` },
  });

  return {
    answer(q, sent) {
      switch (q.case) {
        case "listServices":
          return { case: "listServicesResponse", value: { service: serviceNames.map((name) => ({ name })) } };
        case "fileByFilename": {
          const entry = files.get(q.value);
          return entry === undefined ? notFound(`file "${q.value}"`) : withDependencies(entry.file, sent);
        }
        case "fileContainingSymbol": {
          // grpcurl accepts `.pkg.Name`; the leading dot only says "fully qualified".
          const name = q.value.startsWith(".") ? q.value.slice(1) : q.value;
          const file = symbols.get(name);
          return file === undefined ? notFound(`symbol "${q.value}"`) : withDependencies(file, sent);
        }
        case "fileContainingExtension": {
          const { containingType, extensionNumber } = q.value;
          const file = extensions.get(stripDot(containingType))?.get(extensionNumber);
          return file === undefined
            ? notFound(`extension ${extensionNumber} of "${containingType}"`)
            : withDependencies(file, sent);
        }
        case "allExtensionNumbersOfType": {
          const type = stripDot(q.value);
          if (!messages.has(type)) return notFound(`message type "${q.value}"`);
          const numbers = [...(extensions.get(type)?.keys() ?? [])].sort((a, b) => a - b);
          return { case: "allExtensionNumbersResponse", value: { baseTypeName: type, extensionNumber: numbers } };
        }
        default:
          return { case: "errorResponse", value: { errorCode: Code.InvalidArgument, errorMessage: "empty reflection request" } };
      }
    },
  };
}

/**
 * Adds every name a client may ask for in `file`: services, methods, messages (nested and map
 * entries), fields, oneofs, enums, enum values (both as `Enum.VALUE` and in protobuf's scope,
 * the enum's parent) and extensions. Walks the FileDescriptorProto rather than the hydrated
 * descriptors because only the proto keeps map entry messages.
 */
function indexFile(
  file: DescFile,
  symbols: Map<string, DescFile>,
  messages: Set<string>,
  extensions: Map<string, Map<number, DescFile>>,
): void {
  const pkg = file.proto.package;
  const scoped = (scope: string, name: string) => (scope === "" ? name : `${scope}.${name}`);
  const add = (name: string) => {
    if (!symbols.has(name)) symbols.set(name, file);
  };
  const addExtensions = (scope: string, fields: readonly FieldDescriptorProto[]) => {
    for (const ext of fields) {
      add(scoped(scope, ext.name));
      const extendee = stripDot(ext.extendee);
      let byNumber = extensions.get(extendee);
      if (byNumber === undefined) extensions.set(extendee, (byNumber = new Map()));
      byNumber.set(ext.number, file);
    }
  };
  const addEnum = (scope: string, e: EnumDescriptorProto) => {
    const name = scoped(scope, e.name);
    add(name);
    for (const value of e.value) {
      add(`${name}.${value.name}`);
      add(scoped(scope, value.name));
    }
  };
  const addMessage = (scope: string, m: DescriptorProto) => {
    const name = scoped(scope, m.name);
    add(name);
    messages.add(name);
    for (const field of m.field) add(`${name}.${field.name}`);
    for (const oneof of m.oneofDecl) add(`${name}.${oneof.name}`);
    for (const nested of m.nestedType) addMessage(name, nested);
    for (const e of m.enumType) addEnum(name, e);
    addExtensions(name, m.extension);
  };

  for (const m of file.proto.messageType) addMessage(pkg, m);
  for (const e of file.proto.enumType) addEnum(pkg, e);
  addExtensions(pkg, file.proto.extension);
  for (const s of file.proto.service) {
    const name = scoped(pkg, s.name);
    add(name);
    for (const method of s.method) add(`${name}.${method.name}`);
  }
}

function stripDot(name: string): string {
  return name.startsWith(".") ? name.slice(1) : name;
}
