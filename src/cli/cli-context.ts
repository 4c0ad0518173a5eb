import { toJson, type DescMessage, type MessageShape } from "@bufbuild/protobuf";
import { createRollgateClient, type RollgateClient } from "rollgate-client";
import type { Command, OptionValues } from "commander";
import { stringify as toYaml } from "yaml";
import { colorsWanted, palette, type Palette } from "./colors.js";

/** Exit status: the command did what was asked. */
export const EXIT_OK = 0;
/** Exit status: the server refused (or could not be reached); its explanation is on stderr. */
export const EXIT_REFUSED = 1;
/** Exit status: the command line (or an input file) is wrong. */
export const EXIT_USAGE = 2;

/** Output formats of the read commands. */
export const OUTPUT_FORMATS = ["table", "json", "yaml"] as const;
/** One output format. */
export type OutputFormat = (typeof OUTPUT_FORMATS)[number];

/** The global options every command sees. */
export interface GlobalOptions {
  readonly server: string;
  readonly token?: string;
  readonly tls?: boolean;
  readonly output: OutputFormat;
}

/** The default server, as `rollgate serve` listens by default. */
export const DEFAULT_SERVER = "http://127.0.0.1:8080";

/** What a command needs to do its work: the options, a client, and where to write. */
export interface CliContext {
  readonly options: GlobalOptions;
  readonly client: RollgateClient;
  readonly out: (line: string) => void;
  /** Colours for stdout. */
  readonly colors: Palette;
  /** Prints a message in the chosen format: JSON (protobuf JSON, zero values included), YAML, or the table text. */
  print<D extends DescMessage>(schema: D, message: MessageShape<D>, table: () => string): void;
  /** Prints plain data in the chosen format. */
  printData(data: unknown, table: () => string): void;
}

/** A mistake on the command line or in an input file; the CLI exits with EXIT_USAGE. */
export class UsageError extends Error {
  override readonly name = "UsageError";
}

/** Returns a usage error (exit status 2) with a message that names the argument and the rule. */
export function usageError(message: string): UsageError {
  return new UsageError(message);
}

/** Returns the server URL the global options name: `--tls` (or an https URL) means TLS. */
export function serverUrl(server: string, tls: boolean | undefined): string {
  let url = server.trim();
  if (!/^[a-z][a-z0-9+.-]*:\/\//i.test(url)) url = `${tls === true ? "https" : "http"}://${url}`;
  if (tls === true) url = url.replace(/^http:\/\//i, "https://");
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw usageError(`--server: "${server}" is not a URL or host:port`);
  }
  if (parsed.protocol !== "http:" && parsed.protocol !== "https:") throw usageError(`--server: "${server}" must be http:// or https://`);
  return url.replace(/\/+$/, "");
}

/** Returns the context of a command from its global options; the client is made once, lazily. */
export function contextOf(command: Command): CliContext & { close(): Promise<void> } {
  const opts = command.optsWithGlobals<GlobalOptions>();
  const url = serverUrl(opts.server, opts.tls);
  let client: RollgateClient | undefined;
  const colors = palette(colorsWanted(process.stdout));
  const out = (line: string) => {
    process.stdout.write(line.endsWith("\n") ? line : `${line}\n`);
  };
  const printData = (data: unknown, table: () => string) => {
    if (opts.output === "json") out(JSON.stringify(data, null, 2));
    else if (opts.output === "yaml") out(toYaml(data));
    else out(table());
  };
  return {
    options: opts,
    get client() {
      client ??= createRollgateClient({
        baseUrl: url,
        protocol: "grpc",
        ...(opts.token === undefined || opts.token === "" ? {} : { token: opts.token }),
      });
      return client;
    },
    out,
    colors,
    print(schema, message, table) {
      if (opts.output === "table") out(table());
      else printData(toJson(schema, message, { alwaysEmitImplicit: true }), table);
    },
    printData,
    async close() {
      await client?.close();
    },
  };
}

/**
 * Returns a commander action that runs `body` with the command's context, its positional
 * arguments and its own options, and closes the client afterwards. Errors propagate to main,
 * which maps them to exit codes; a returned number becomes the exit status.
 */
export function action<O extends OptionValues = OptionValues>(body: (ctx: CliContext, args: string[], opts: O) => Promise<number | void>) {
  return async function (this: Command): Promise<void> {
    const ctx = contextOf(this);
    let code: number | void;
    try {
      code = await body(ctx, this.processedArgs as string[], this.opts<O>());
    } finally {
      await ctx.close().catch(() => undefined);
    }
    if (typeof code === "number" && code !== EXIT_OK) process.exitCode = code;
  };
}
