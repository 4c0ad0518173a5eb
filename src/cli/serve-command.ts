import { Command } from "commander";
import { ConfigError, DEFAULTS, loadConfig, type ServerFlags } from "../server/config.js";
import { startServer } from "../server/server.js";
import { StoreOpenError } from "../server/server.js";

/** Exit code for a bad setting, as for any usage error. */
const EXIT_USAGE = 2;

/** The longest a graceful shutdown may take before the process exits anyway (docs/design.md §1: 10 s). */
const SHUTDOWN_DEADLINE_MS = 9000;

/** Returns the `serve` command: runs the server until SIGTERM or SIGINT. */
export function serveCommand(): Command {
  return new Command("serve")
    .description("run the rollgate server (what `npm start` runs)")
    .option("--listen <host:port>", `address to serve on [env ROLLGATE_LISTEN] (default ${DEFAULTS.listen})`)
    .option("--db <path-or-url>", `SQLite database file, or a postgres:// URL [env ROLLGATE_DB] (default ${DEFAULTS.db})`)
    .option("--tokens <file>", "JSON array of {name, token, role} bearer tokens [env ROLLGATE_TOKENS_FILE]")
    .option("--insecure", "allow a non-loopback --listen without tokens [env ROLLGATE_INSECURE]")
    .option("--tls-cert <file>", "PEM certificate: serve TLS [env ROLLGATE_TLS_CERT]")
    .option("--tls-key <file>", "PEM private key [env ROLLGATE_TLS_KEY]")
    .option("--tls-client-ca <file>", "PEM CA bundle: require client certificates (mTLS) [env ROLLGATE_TLS_CLIENT_CA]")
    .option("--no-grpc-fast-path", "serve every gRPC call through connect-node (for conformance checks) [env ROLLGATE_GRPC_FAST_PATH=off]")
    .option("--no-connect-fast-path", "serve every Connect call through connect-node (for conformance checks) [env ROLLGATE_CONNECT_FAST_PATH=off]")
    .option("--replica-id <id>", "this replica's name in logs, metrics and the database [env ROLLGATE_REPLICA_ID] (default host-pid-random)")
    .option("--notify <file>", "YAML or JSON file of outbound notification webhooks [env ROLLGATE_NOTIFY_FILE]")
    .option("--public-url <url>", "the server's URL as users reach it, for dashboard links in notifications [env ROLLGATE_PUBLIC_URL] (default the listen address)")
    .option("--http2-keepalive <duration>", `PING each HTTP/2 connection this often, close it if unanswered as long [env ROLLGATE_HTTP2_KEEPALIVE] (default ${DEFAULTS.http2Keepalive}; 0 off)`)
    .option("--log-level <level>", `fatal|error|warn|info|debug|trace|silent [env LOG_LEVEL] (default ${DEFAULTS.logLevel})`)
    .action(async (options: ServerFlags, command: Command) => {
      // commander defaults a --no-* option to true; only an explicit flag may override the env.
      const { grpcFastPath, connectFastPath, ...rest } = options;
      const flags: ServerFlags = {
        ...rest,
        ...(command.getOptionValueSource("grpcFastPath") === "cli" ? { grpcFastPath: grpcFastPath ?? true } : {}),
        ...(command.getOptionValueSource("connectFastPath") === "cli" ? { connectFastPath: connectFastPath ?? true } : {}),
      };
      let config;
      try {
        config = loadConfig(flags, process.env);
      } catch (e) {
        if (!(e instanceof ConfigError)) throw e;
        process.stderr.write(`rollgate serve: ${e.message}\n`);
        process.exit(EXIT_USAGE);
      }
      let server;
      try {
        server = await startServer(config);
      } catch (e) {
        if (!(e instanceof StoreOpenError)) throw e;
        process.stderr.write(`rollgate serve: --db/ROLLGATE_DB: ${e.message}\n`);
        process.exit(EXIT_USAGE);
      }
      const stop = (signal: string) => {
        server.logger.info({ signal }, "signal received");
        setTimeout(() => {
          server.logger.error("graceful shutdown took too long; exiting");
          process.exit(1);
        }, SHUTDOWN_DEADLINE_MS).unref();
        server.close().then(
          () => process.exit(0),
          (e: unknown) => {
            server.logger.error({ err: e }, "shutdown failed");
            process.exit(1);
          },
        );
      };
      process.once("SIGTERM", () => stop("SIGTERM"));
      process.once("SIGINT", () => stop("SIGINT"));
    });
}
