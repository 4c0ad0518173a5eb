import { createServer, connect, type Socket } from "node:net";

/** A TCP proxy on 127.0.0.1:0 in front of a server, whose connections a test can cut. */
export interface TcpProxy {
  readonly url: string;
  /** Connections accepted so far. */
  connections(): number;
  /** Destroys every open connection (both sides), as a network failure would. */
  cut(): void;
  /** Stops forwarding on every open connection without closing it (a dead link); new connections work. */
  stall(): void;
  close(): Promise<void>;
}

/** Starts a TCP proxy to `host:port` on a free port. */
export async function startTcpProxy(host: string, port: number): Promise<TcpProxy> {
  const open = new Set<Socket>();
  const pairs = new Set<[Socket, Socket]>();
  let accepted = 0;
  const server = createServer((client) => {
    accepted++;
    const upstream = connect(port, host);
    const pair: [Socket, Socket] = [client, upstream];
    pairs.add(pair);
    for (const s of pair) {
      open.add(s);
      s.on("close", () => {
        open.delete(s);
        pairs.delete(pair);
      });
      s.on("error", () => undefined);
    }
    client.pipe(upstream).pipe(client);
    client.on("close", () => upstream.destroy());
    upstream.on("close", () => client.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  if (address === null || typeof address === "string") throw new Error("proxy has no port");
  return {
    url: `http://127.0.0.1:${address.port}`,
    connections: () => accepted,
    cut() {
      for (const s of open) s.destroy();
    },
    stall() {
      for (const [client, upstream] of pairs) {
        client.unpipe(upstream);
        upstream.unpipe(client);
        // Read and discard, so that neither side sees back-pressure or a close.
        client.on("data", () => undefined);
        upstream.on("data", () => undefined);
      }
      pairs.clear();
    },
    close() {
      for (const s of open) s.destroy();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}

/** Starts a TCP server on a free port that accepts connections and never answers. */
export async function startSilentServer(): Promise<{ url: string; close(): Promise<void> }> {
  const sockets = new Set<Socket>();
  const server = createServer((s) => {
    sockets.add(s);
    s.on("error", () => undefined);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  if (address === null || typeof address === "string") throw new Error("no port");
  return {
    url: `http://127.0.0.1:${address.port}`,
    close() {
      for (const s of sockets) s.destroy();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}

/** Returns the URL of a port that was free a moment ago and is closed now (connections are refused). */
export async function closedPortUrl(): Promise<string> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  if (address === null || typeof address === "string") throw new Error("no port");
  await new Promise((resolve) => server.close(resolve));
  return `http://127.0.0.1:${address.port}`;
}
