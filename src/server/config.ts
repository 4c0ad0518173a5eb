import { randomBytes } from "node:crypto";
import { closeSync, openSync, readFileSync, readSync, statSync } from "node:fs";
import { hostname } from "node:os";
import { isIP } from "node:net";
import { NotifyConfigError, readNotifyConfig, type NotifyWebhook } from "../service/notify-config.js";
import { redactUrl } from "../store/redact-url.js";
import { tracingSettingsOf, type TracingSettings } from "./tracing.js";

/** A bearer token and who holds it (docs/design.md §8). */
export interface TokenEntry {
  readonly name: string;
  readonly token: string;
  readonly role: "admin" | "operator" | "reporter" | "reader";
}

/** Everything the server needs to start, validated. */
export interface ServerConfig {
  readonly host: string;
  readonly port: number;
  readonly dbPath: string;
  /** Where the state lives, from `dbPath`: a PostgreSQL URL, or a SQLite file path. */
  readonly database: DatabaseSetting;
  /** Undefined when no tokens file is configured: every caller is the local admin. */
  readonly tokens?: readonly TokenEntry[];
  readonly insecure: boolean;
  readonly tls?: { readonly cert: Buffer; readonly key: Buffer; readonly clientCa?: Buffer };
  readonly logLevel: string;
  /** Serve Route, RouteBatch and RecordOutcome over gRPC on the raw HTTP/2 fast path (default on). */
  readonly grpcFastPath: boolean;
  /** Serve Route, RouteBatch and RecordOutcome over the Connect protocol on the fast path (default on). */
  readonly connectFastPath: boolean;
  /** This process's name among replicas on one database (logs, metrics, window buckets). */
  readonly replicaId: string;
  /** Outbound notification webhooks (`--notify FILE`); undefined when none are configured. */
  readonly notify?: readonly NotifyWebhook[];
  /** The server's URL as its users reach it (dashboard links); undefined: the listen address. */
  readonly publicUrl?: string;
  /** OpenTelemetry traces, from the standard OTEL_* variables (tracing.ts); undefined when off. */
  readonly tracing?: TracingSettings;
  /** HTTP/2 keep-alive PING period in ms; a connection not answering within as long is closed (0: off). */
  readonly http2KeepaliveMs: number;
}

/** Raw settings as flags give them (commander's camelCase option names). */
export interface ServerFlags {
  readonly listen?: string;
  readonly db?: string;
  readonly tokens?: string;
  readonly insecure?: boolean;
  readonly tlsCert?: string;
  readonly tlsKey?: string;
  readonly tlsClientCa?: string;
  readonly logLevel?: string;
  /** commander's `--no-grpc-fast-path` gives false. */
  readonly grpcFastPath?: boolean;
  /** commander's `--no-connect-fast-path` gives false. */
  readonly connectFastPath?: boolean;
  readonly replicaId?: string;
  readonly notify?: string;
  readonly publicUrl?: string;
  readonly http2Keepalive?: string;
}

/** A setting that is wrong, named the way the operator wrote it. */
export class ConfigError extends Error {
  override readonly name = "ConfigError";
}

const ROLES = ["admin", "operator", "reporter", "reader"] as const;
const LEVELS = ["fatal", "error", "warn", "info", "debug", "trace", "silent"];

/** Defaults of the server settings. */
export const DEFAULTS = { listen: "127.0.0.1:8080", db: "./data/rollgate.db", logLevel: "info", http2Keepalive: "15s" } as const;

/**
 * Returns the server configuration from flags, then ROLLGATE_* environment variables, then
 * defaults (flag > env > default), or throws a ConfigError naming the bad setting.
 */
export function loadConfig(flags: ServerFlags, env: NodeJS.ProcessEnv): ServerConfig {
  const pick = (flag: string | undefined, name: string): string | undefined => flag ?? (env[name] === "" ? undefined : env[name]);
  const listen = pick(flags.listen, "ROLLGATE_LISTEN") ?? DEFAULTS.listen;
  const { host, port } = parseListen(listen);
  const dbPath = pick(flags.db, "ROLLGATE_DB") ?? DEFAULTS.db;
  const database = databaseOf(dbPath);
  const tokensFile = pick(flags.tokens, "ROLLGATE_TOKENS_FILE");
  // A malformed boolean is refused even when a flag overrides it: it is a mistake either way.
  const insecureEnv = parseBoolean("ROLLGATE_INSECURE", env.ROLLGATE_INSECURE);
  const fastPathEnv = parseBoolean("ROLLGATE_GRPC_FAST_PATH", env.ROLLGATE_GRPC_FAST_PATH);
  const connectFastPathEnv = parseBoolean("ROLLGATE_CONNECT_FAST_PATH", env.ROLLGATE_CONNECT_FAST_PATH);
  const insecure = flags.insecure ?? insecureEnv ?? false;
  const logLevel = pick(flags.logLevel, "LOG_LEVEL") ?? DEFAULTS.logLevel;
  if (!LEVELS.includes(logLevel)) throw new ConfigError(`--log-level/LOG_LEVEL: "${logLevel}" must be one of ${LEVELS.join(", ")}`);

  const grpcFastPath = flags.grpcFastPath ?? fastPathEnv ?? true;
  const connectFastPath = flags.connectFastPath ?? connectFastPathEnv ?? true;
  if (database.kind === "sqlite") checkDatabasePath(dbPath);

  const tokens = tokensFile === undefined ? undefined : loadTokens(tokensFile);
  if (tokens === undefined && !isLoopback(host) && !insecure) {
    throw new ConfigError(
      `--listen/ROLLGATE_LISTEN: refusing to serve ${listen} beyond loopback without tokens; ` +
        `set --tokens/ROLLGATE_TOKENS_FILE, or pass --insecure to accept unauthenticated callers`,
    );
  }

  const certPath = pick(flags.tlsCert, "ROLLGATE_TLS_CERT");
  const keyPath = pick(flags.tlsKey, "ROLLGATE_TLS_KEY");
  const caPath = pick(flags.tlsClientCa, "ROLLGATE_TLS_CLIENT_CA");
  if ((certPath === undefined) !== (keyPath === undefined)) {
    throw new ConfigError("--tls-cert/ROLLGATE_TLS_CERT and --tls-key/ROLLGATE_TLS_KEY must be set together");
  }
  if (caPath !== undefined && certPath === undefined) {
    throw new ConfigError("--tls-client-ca/ROLLGATE_TLS_CLIENT_CA needs --tls-cert and --tls-key");
  }
  const tls =
    certPath === undefined || keyPath === undefined
      ? undefined
      : {
          cert: readSetting("--tls-cert/ROLLGATE_TLS_CERT", certPath),
          key: readSetting("--tls-key/ROLLGATE_TLS_KEY", keyPath),
          ...(caPath === undefined ? {} : { clientCa: readSetting("--tls-client-ca/ROLLGATE_TLS_CLIENT_CA", caPath) }),
        };

  const notifyFile = pick(flags.notify, "ROLLGATE_NOTIFY_FILE");
  let notify: NotifyWebhook[] | undefined;
  try {
    notify = notifyFile === undefined ? undefined : readNotifyConfig(notifyFile, env);
  } catch (e) {
    if (e instanceof NotifyConfigError) throw new ConfigError(`--notify/ROLLGATE_NOTIFY_FILE: ${e.message}`);
    throw e;
  }
  const publicUrl = publicUrlOf(pick(flags.publicUrl, "ROLLGATE_PUBLIC_URL"));

  const tracing = tracingSettingsOf(env);
  return {
    host,
    port,
    dbPath,
    database,
    ...(tokens === undefined ? {} : { tokens }),
    insecure,
    ...(tls === undefined ? {} : { tls }),
    logLevel,
    grpcFastPath,
    connectFastPath,
    replicaId: replicaIdOf(pick(flags.replicaId, "ROLLGATE_REPLICA_ID")),
    ...(notify === undefined ? {} : { notify }),
    ...(publicUrl === undefined ? {} : { publicUrl }),
    ...(tracing === undefined ? {} : { tracing }),
    http2KeepaliveMs: keepaliveMsOf(pick(flags.http2Keepalive, "ROLLGATE_HTTP2_KEEPALIVE") ?? DEFAULTS.http2Keepalive),
  };
}

/** Returns the public URL setting without a trailing slash, or throws a ConfigError naming it. */
function publicUrlOf(setting: string | undefined): string | undefined {
  if (setting === undefined) return undefined;
  let url: URL | undefined;
  try {
    url = new URL(setting);
  } catch {
    url = undefined;
  }
  if (url === undefined || (url.protocol !== "http:" && url.protocol !== "https:") || url.search !== "" || url.hash !== "") {
    throw new ConfigError(`--public-url/ROLLGATE_PUBLIC_URL: "${setting}" must be an http:// or https:// URL without query, e.g. https://rollgate.example.com`);
  }
  return setting.replace(/\/+$/, "");
}

/**
 * Returns the HTTP/2 keep-alive period in ms from "15s", "500ms", "1m" or "0" (off); at least
 * 100 ms when on, at most an hour.
 */
export function keepaliveMsOf(setting: string): number {
  const m = /^(\d+)(ms|s|m)?$/.exec(setting);
  const ms = m === null ? NaN : Number(m[1]) * (m[2] === "ms" ? 1 : m[2] === "m" ? 60_000 : m[2] === "s" ? 1000 : NaN);
  if (m?.[1] === "0" && m[2] === undefined) return 0;
  if (!(ms === 0 || (ms >= 100 && ms <= 3_600_000))) {
    throw new ConfigError(`--http2-keepalive/ROLLGATE_HTTP2_KEEPALIVE: "${setting}" must be a duration from 100ms to 1h (e.g. 15s), or 0 for off`);
  }
  return ms;
}

const TRUE = /^(1|true|yes|on)$/i;
const FALSE = /^(0|false|no|off)$/i;

/**
 * Returns the boolean an environment variable spells (1/true/yes/on or 0/false/no/off, any case),
 * undefined when it is unset or empty, and throws a ConfigError naming it for anything else.
 */
export function parseBoolean(name: string, value: string | undefined): boolean | undefined {
  if (value === undefined || value === "") return undefined;
  if (TRUE.test(value)) return true;
  if (FALSE.test(value)) return false;
  throw new ConfigError(`${name}: "${value}" must be one of on, off, true, false, yes, no, 1, 0`);
}

/** The first 16 bytes of every SQLite 3 database file. */
const SQLITE_HEADER = Buffer.from("SQLite format 3\0", "latin1");

/**
 * Throws a ConfigError naming --db/ROLLGATE_DB when the path is a directory or an existing,
 * non-empty file that is not an SQLite database; a missing file is created at start.
 */
function checkDatabasePath(path: string): void {
  if (path === ":memory:") return;
  const setting = "--db/ROLLGATE_DB";
  let size: number;
  try {
    const st = statSync(path);
    if (st.isDirectory()) throw new ConfigError(`${setting}: ${path} is a directory; give the path of the database file, e.g. ${path.replace(/\/+$/, "")}/rollgate.db`);
    size = st.size;
  } catch (e) {
    if (e instanceof ConfigError) throw e;
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return;
    throw new ConfigError(`${setting}: cannot use ${path}: ${(e as Error).message}`);
  }
  if (size === 0) return; // SQLite initialises an empty file.
  const head = Buffer.alloc(SQLITE_HEADER.length);
  let fd: number | undefined;
  try {
    fd = openSync(path, "r");
    readSync(fd, head, 0, head.length, 0);
  } catch (e) {
    throw new ConfigError(`${setting}: cannot read ${path}: ${(e as Error).message}`);
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
  if (!head.equals(SQLITE_HEADER)) throw new ConfigError(`${setting}: ${path} is not an SQLite database (its first bytes are not "SQLite format 3")`);
}

/** Returns host and port of a `host:port` listen address (IPv6 in brackets). */
export function parseListen(listen: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]*)):(\d{1,5})$/.exec(listen);
  const host = m?.[1] ?? m?.[2];
  const port = Number(m?.[3]);
  if (m === null || host === undefined || host === "" || !(port >= 0 && port <= 65535)) {
    throw new ConfigError(`--listen/ROLLGATE_LISTEN: "${listen}" must be host:port, e.g. 127.0.0.1:8080`);
  }
  return { host, port };
}

/** Returns true for loopback hosts: 127.0.0.0/8, ::1 and localhost. */
export function isLoopback(host: string): boolean {
  if (host === "localhost" || host === "::1") return true;
  return isIP(host) === 4 && host.startsWith("127.");
}

function readSetting(setting: string, path: string): Buffer {
  try {
    return readFileSync(path);
  } catch (e) {
    throw new ConfigError(`${setting}: cannot read ${path}: ${(e as Error).message}`);
  }
}

/** Returns the validated entries of a tokens file (a JSON array of {name, token, role}). */
export function loadTokens(path: string): TokenEntry[] {
  const setting = "--tokens/ROLLGATE_TOKENS_FILE";
  let raw: unknown;
  try {
    raw = JSON.parse(readSetting(setting, path).toString("utf8"));
  } catch (e) {
    if (e instanceof ConfigError) throw e;
    throw new ConfigError(`${setting}: ${path} is not valid JSON: ${(e as Error).message}`);
  }
  if (!Array.isArray(raw) || raw.length === 0) throw new ConfigError(`${setting}: ${path} must hold a non-empty JSON array`);
  const names = new Set<string>();
  const secrets = new Set<string>();
  return raw.map((t: unknown, i): TokenEntry => {
    const at = `${setting}: ${path}[${i}]`;
    if (typeof t !== "object" || t === null) throw new ConfigError(`${at} must be an object {name, token, role}`);
    const { name, token, role } = t as Record<string, unknown>;
    if (typeof name !== "string" || !/^[A-Za-z0-9][A-Za-z0-9._@-]{0,62}$/.test(name)) {
      throw new ConfigError(`${at}.name must be 1..63 characters of [A-Za-z0-9._@-]`);
    }
    if (typeof token !== "string" || token.length < 16) throw new ConfigError(`${at}.token must be a string of at least 16 characters`);
    if (typeof role !== "string" || !(ROLES as readonly string[]).includes(role)) {
      throw new ConfigError(`${at}.role must be one of ${ROLES.join(", ")}`);
    }
    if (names.has(name)) throw new ConfigError(`${at}.name "${name}" is used twice`);
    if (secrets.has(token)) throw new ConfigError(`${at}.token is used twice`);
    names.add(name);
    secrets.add(token);
    return { name, token, role: role as TokenEntry["role"] };
  });
}

/** The database setting: PostgreSQL for several replicas, or the embedded SQLite file. */
export type DatabaseSetting = { readonly kind: "postgres"; readonly url: string } | { readonly kind: "sqlite"; readonly path: string };

/**
 * Returns what `--db`/`ROLLGATE_DB` names: a `postgres://` or `postgresql://` URL is PostgreSQL,
 * any other `scheme://` (or a `postgres:` that is not a URL) is refused, everything else is a
 * SQLite file path.
 */
export function databaseOf(setting: string): DatabaseSetting {
  const scheme = /^([A-Za-z][A-Za-z0-9+.-]*):/.exec(setting)?.[1]?.toLowerCase();
  const isPostgres = scheme === "postgres" || scheme === "postgresql";
  if (isPostgres || (scheme !== undefined && setting.slice(scheme.length + 1).startsWith("//"))) {
    if (!isPostgres) {
      throw new ConfigError(`--db/ROLLGATE_DB: "${scheme}://" is not a database rollgate can use; give a postgres:// URL or a SQLite file path`);
    }
    let valid = setting.slice(scheme.length + 1).startsWith("//");
    try {
      new URL(setting);
    } catch {
      valid = false;
    }
    if (!valid) throw new ConfigError(`--db/ROLLGATE_DB: "${redactUrl(setting)}" is not a valid URL, e.g. postgres://user@host:5432/rollgate`);
    return { kind: "postgres", url: setting };
  }
  return { kind: "sqlite", path: setting };
}

/** Returns the replica id: as set (1..63 of [A-Za-z0-9._-]), else host name, pid and a random suffix, unique per process. */
export function replicaIdOf(setting: string | undefined): string {
  if (setting === undefined) return `${hostname()}-${process.pid}-${randomBytes(2).toString("hex")}`.replace(/[^A-Za-z0-9._-]/g, "-").slice(0, 63);
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/.test(setting)) {
    throw new ConfigError(`--replica-id/ROLLGATE_REPLICA_ID: "${setting}" must be 1..63 characters of [A-Za-z0-9._-]`);
  }
  return setting;
}
