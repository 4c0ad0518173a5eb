import type { Socket } from "node:net";

/** The client connection preface every HTTP/2 connection starts with (RFC 9113 §3.4). */
export const H2_PREFACE = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "latin1");

/**
 * Decides a cleartext socket's protocol from its first bytes and calls `dispatch` once, with
 * those bytes pushed back so the chosen server reads them as if nothing had happened.
 *
 * `readable` + `read()` + `unshift()` rather than a `data` listener: a `data` listener would
 * switch the socket to flowing mode and the bytes would be gone before the server attaches.
 */
export function sniffProtocol(socket: Socket, firstByteTimeoutMs: number, dispatch: (isH2: boolean) => void): void {
  const chunks: Buffer[] = [];
  let length = 0;
  const done = () => {
    socket.off("readable", onReadable);
    socket.off("end", onEnd);
    socket.off("timeout", onTimeout);
    socket.setTimeout(0);
  };
  const onReadable = () => {
    for (let chunk: Buffer | null; (chunk = socket.read() as Buffer | null) !== null; ) {
      chunks.push(chunk);
      length += chunk.length;
    }
    if (length === 0) return;
    const head = Buffer.concat(chunks, length);
    const n = Math.min(head.length, H2_PREFACE.length);
    const prefaceSoFar = head.subarray(0, n).equals(H2_PREFACE.subarray(0, n));
    // A short first chunk that still matches the preface could be either: wait for more.
    // (Unshifting it meanwhile would re-trigger `readable` at once and spin.)
    if (prefaceSoFar && n < H2_PREFACE.length) return;
    done();
    socket.unshift(head);
    dispatch(prefaceSoFar);
  };
  const onEnd = () => {
    done();
    socket.destroy();
  };
  const onTimeout = () => {
    done();
    socket.destroy();
  };
  socket.on("readable", onReadable);
  socket.once("end", onEnd);
  socket.setTimeout(firstByteTimeoutMs);
  socket.once("timeout", onTimeout);
}
