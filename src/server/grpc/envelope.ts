import { fromBinary, type DescMessage, type MessageShape } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";

/**
 * gRPC message framing (the length-prefixed message of the gRPC over HTTP/2 spec): a flags
 * byte (bit 0: compressed), a 4-byte big-endian length, the message. Errors read as
 * connect-node reports the same faults, so a caller cannot tell which path served it.
 */

/** Bytes before each message: the flags byte and the 4-byte length. */
export const FRAME_HEADER = 5;

/** Returns a message frame (gRPC, Connect and gRPC-web envelopes alike): the flags byte (0: an uncompressed message), 4-byte big-endian length, the message. */
export function frameOf(body: Uint8Array, flags = 0): Buffer {
  const frame = Buffer.allocUnsafe(FRAME_HEADER + body.length);
  frame[0] = flags;
  frame.writeUInt32BE(body.length, 1);
  frame.set(body, FRAME_HEADER);
  return frame;
}

/**
 * Returns `framed` with its first FRAME_HEADER bytes written as the frame header of the message
 * after them (an encoder left that room: see HotUnary.bytes), without copying the message.
 */
export function frameInPlace(framed: Uint8Array): Uint8Array {
  const length = framed.length - FRAME_HEADER;
  framed[0] = 0;
  framed[1] = length >>> 24;
  framed[2] = (length >>> 16) & 0xff;
  framed[3] = (length >>> 8) & 0xff;
  framed[4] = length & 0xff;
  return framed;
}

/**
 * Collects the body of a unary request as its chunks arrive, refusing an oversized message as
 * soon as its envelope declares it (naming its size as connect does) or, failing that, as soon
 * as more bytes than one envelope of `maxBytes` have come.
 */
export interface RequestBody {
  /** Adds a chunk; returns the RESOURCE_EXHAUSTED refusal once the message is too large. */
  push(chunk: Buffer): ConnectError | undefined;
  /** Returns every byte received, in one buffer. */
  bytes(): Buffer;
}

/** Returns an empty request body that accepts one message of at most `maxBytes`. */
export function requestBody(maxBytes: number): RequestBody {
  return new ChunkedBody(maxBytes);
}

/** A RequestBody as one object per call: its state in fields, no closure each, no array for a body that comes in one chunk. */
class ChunkedBody implements RequestBody {
  private first: Buffer | undefined = undefined;
  private chunks: Buffer[] | undefined = undefined;
  private size = 0;
  private lengthChecked = false;

  constructor(private readonly maxBytes: number) {}

  push(chunk: Buffer): ConnectError | undefined {
    const maxBytes = this.maxBytes;
    const size = (this.size += chunk.length);
    if (this.first === undefined) this.first = chunk;
    else (this.chunks ??= [this.first]).push(chunk);
    if (!this.lengthChecked && size >= FRAME_HEADER) {
      this.lengthChecked = true;
      const head = this.chunks === undefined ? chunk : Buffer.concat(this.chunks, size);
      const declared = head.readUInt32BE(1);
      if (declared > maxBytes) {
        return new ConnectError(`message size ${declared} is larger than configured readMaxBytes ${maxBytes}`, Code.ResourceExhausted);
      }
    }
    if (size > maxBytes + FRAME_HEADER) {
      return new ConnectError(`message size is larger than configured readMaxBytes ${maxBytes}`, Code.ResourceExhausted);
    }
    return undefined;
  }

  bytes(): Buffer {
    return this.chunks !== undefined ? Buffer.concat(this.chunks, this.size) : (this.first ?? EMPTY);
  }
}

const EMPTY = Buffer.alloc(0);

/**
 * Returns the one message of a unary gRPC request body, decoded; errors as connect reports them.
 * `read`, when given, is a hand-written reader tried first (HotUnary.fromBinary): it returns
 * what fromBinary would, or undefined to leave the message to fromBinary.
 */
export function decodeUnary<D extends DescMessage>(schema: D, body: Buffer, read?: (bytes: Uint8Array) => MessageShape<D> | undefined): MessageShape<D> {
  if (body.length === 0) throw new ConnectError("protocol error: missing input message for unary method", Code.Unimplemented);
  if (body.length < FRAME_HEADER) throw new ConnectError("protocol error: incomplete envelope", Code.InvalidArgument);
  if ((body[0]! & 1) === 1) throw new ConnectError("received compressed envelope, but do not know how to decompress", Code.InvalidArgument);
  const length = body.readUInt32BE(1);
  if (FRAME_HEADER + length > body.length) {
    throw new ConnectError(`protocol error: promised ${length} bytes in enveloped message, got ${body.length - FRAME_HEADER} bytes`, Code.InvalidArgument);
  }
  if (FRAME_HEADER + length < body.length) throw new ConnectError("protocol error: received extra input message for unary method", Code.Unimplemented);
  const message = body.subarray(FRAME_HEADER);
  if (read !== undefined) {
    const m = read(message);
    if (m !== undefined) return m;
  }
  try {
    return fromBinary(schema, message);
  } catch (e) {
    // A request that does not parse is the caller's mistake (connect-node answers the same: request-decode-codes.ts).
    throw new ConnectError(`parse binary: ${e instanceof Error ? e.message : String(e)}`, Code.InvalidArgument);
  }
}
