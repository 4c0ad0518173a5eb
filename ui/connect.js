// The Connect protocol from the browser with plain fetch: unary calls as POST application/json,
// server streams as application/connect+json envelopes read from the response body.
// https://connectrpc.com/docs/protocol

/** An RPC's failure: the Connect code ("failed_precondition"), message and error details. */
export class RpcError extends Error {
  constructor(code, message, details = []) {
    super(message);
    this.name = "RpcError";
    this.code = code;
    this.details = details;
  }

  /** Returns the decoded (debug) form of the first detail of a type, e.g. "rollgate.v1.PromotionBlocked". */
  detail(type) {
    return this.details.find((d) => d.type === type)?.debug;
  }
}

/** The Connect code of an HTTP status, for answers that carry no Connect error body. */
const CODE_OF_STATUS = {
  400: "invalid_argument",
  401: "unauthenticated",
  403: "permission_denied",
  404: "unimplemented",
  408: "deadline_exceeded",
  409: "aborted",
  412: "failed_precondition",
  413: "resource_exhausted",
  415: "internal",
  429: "unavailable",
  431: "resource_exhausted",
  502: "unavailable",
  503: "unavailable",
  504: "unavailable",
};

/** Returns the RpcError of a failed unary answer or a stream's end, from its JSON error body. */
function errorFromJson(json, status) {
  if (json !== null && typeof json === "object" && typeof json.code === "string") {
    return new RpcError(json.code, typeof json.message === "string" ? json.message : "", Array.isArray(json.details) ? json.details : []);
  }
  return new RpcError(CODE_OF_STATUS[status] ?? "unknown", `HTTP ${status}`);
}

/** Returns the RpcError of a fetch that never got an answer (or was aborted). */
function transportError(e) {
  if (e instanceof RpcError) return e;
  if (e?.name === "AbortError") return new RpcError("canceled", "the call was canceled");
  return new RpcError("unavailable", "the server cannot be reached");
}

/**
 * Returns a client of the server that served this page. `token()` returns the bearer token to
 * send, if any: it goes in `authorization: Bearer …`, exactly as every other client sends it.
 */
export function createClient({ token }) {
  const headers = (contentType) => {
    const h = { "content-type": contentType, "connect-protocol-version": "1" };
    const t = token();
    if (t) h.authorization = `Bearer ${t}`;
    return h;
  };

  /** Calls a unary method ("rollgate.v1.RolloutService/Promote") with a JSON request; resolves with the JSON answer. */
  async function unary(method, request, { signal } = {}) {
    let res;
    try {
      res = await fetch(`/${method}`, { method: "POST", headers: headers("application/json"), body: JSON.stringify(request), signal, cache: "no-store" });
    } catch (e) {
      throw transportError(e);
    }
    const text = await res.text().catch(() => "");
    let json = null;
    try {
      json = text === "" ? {} : JSON.parse(text);
    } catch {
      json = null;
    }
    if (!res.ok) throw errorFromJson(json, res.status);
    if (json === null) throw new RpcError("internal", "the answer is not JSON");
    return json;
  }

  /**
   * Calls a server-streaming method and yields each JSON message as it arrives. Ends when the
   * server ends the stream with OK; throws an RpcError when it ends with an error or the
   * connection breaks.
   */
  async function* stream(method, request, { signal, onOpen } = {}) {
    const body = new TextEncoder().encode(JSON.stringify(request));
    const envelope = new Uint8Array(5 + body.length);
    new DataView(envelope.buffer).setUint32(1, body.length);
    envelope.set(body, 5);
    let res;
    try {
      res = await fetch(`/${method}`, { method: "POST", headers: headers("application/connect+json"), body: envelope, signal, cache: "no-store" });
    } catch (e) {
      throw transportError(e);
    }
    if (!res.ok || res.body === null) {
      const text = await res.text().catch(() => "");
      let json = null;
      try {
        json = JSON.parse(text);
      } catch {
        json = null;
      }
      throw errorFromJson(json, res.status);
    }
    onOpen?.();
    const reader = res.body.getReader();
    const frames = envelopeReader();
    try {
      for (;;) {
        let chunk;
        try {
          chunk = await reader.read();
        } catch (e) {
          throw transportError(e);
        }
        if (chunk.done) break;
        for (const frame of frames.push(chunk.value)) {
          const json = JSON.parse(new TextDecoder().decode(frame.data));
          if ((frame.flags & 0x02) !== 0) {
            // End of stream: OK, or the error the call ended with.
            if (json.error !== undefined) throw errorFromJson(json.error, 200);
            return;
          }
          yield json;
        }
      }
    } finally {
      reader.cancel().catch(() => {});
    }
    // The body ended without the end-of-stream message: the connection broke.
    throw new RpcError("unavailable", "the stream was cut off");
  }

  return { unary, stream };
}

/**
 * Returns a reader of Connect envelopes (a flags byte, a big-endian uint32 length, the data)
 * from byte chunks of any size: push each chunk, get back the complete envelopes it finished.
 */
export function envelopeReader() {
  let buffer = new Uint8Array(0);
  return {
    push(chunk) {
      if (buffer.length === 0) {
        buffer = chunk;
      } else {
        const joined = new Uint8Array(buffer.length + chunk.length);
        joined.set(buffer, 0);
        joined.set(chunk, buffer.length);
        buffer = joined;
      }
      const out = [];
      while (buffer.length >= 5) {
        const length = new DataView(buffer.buffer, buffer.byteOffset, buffer.byteLength).getUint32(1);
        if (buffer.length < 5 + length) break;
        out.push({ flags: buffer[0], data: buffer.subarray(5, 5 + length) });
        buffer = buffer.subarray(5 + length);
      }
      return out;
    },
  };
}

/** Codes that another attempt would only repeat: a follower stops on them instead of reconnecting. */
export const PERMANENT_CODES = new Set([
  "invalid_argument",
  "not_found",
  "permission_denied",
  "unauthenticated",
  "failed_precondition",
  "unimplemented",
]);

/** Resolves after ms, or at once when the signal aborts. */
function sleep(ms, signal) {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    }
    signal.addEventListener("abort", done, { once: true });
  });
}

/**
 * Follows a server stream for as long as `signal` is not aborted: each message to `onMessage`,
 * reconnecting with backoff (250 ms doubling to 5 s) after the stream ends or breaks, with the
 * request `request()` returns at that moment (so that a resumable stream picks up where it left).
 * A stream silent for `idleMs` (when given) is taken for dead and reopened. `onState` hears
 * "connecting", "live" (the server answered), "reconnecting" and, on a permanent refusal,
 * "failed" with the error.
 */
export async function follow(client, method, request, { signal, onMessage, onState = () => {}, idleMs }) {
  let pause = 250;
  while (!signal.aborted) {
    const attempt = new AbortController();
    const stop = () => attempt.abort();
    signal.addEventListener("abort", stop, { once: true });
    let watchdog;
    const arm = () => {
      if (idleMs === undefined) return;
      clearTimeout(watchdog);
      watchdog = setTimeout(() => attempt.abort(), idleMs);
    };
    try {
      onState("connecting");
      arm();
      const opened = () => {
        pause = 250;
        onState("live");
      };
      for await (const m of client.stream(method, request(), { signal: attempt.signal, onOpen: opened })) {
        arm();
        onMessage(m);
      }
    } catch (e) {
      if (signal.aborted) break;
      const err = e instanceof RpcError ? e : new RpcError("unknown", String(e));
      if (PERMANENT_CODES.has(err.code)) {
        onState("failed", err);
        return;
      }
    } finally {
      clearTimeout(watchdog);
      signal.removeEventListener("abort", stop);
    }
    if (signal.aborted) break;
    onState("reconnecting");
    await sleep(pause, signal);
    pause = Math.min(pause * 2, 5000);
  }
}
