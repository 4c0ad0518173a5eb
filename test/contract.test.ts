import { execFileSync, spawnSync } from "node:child_process";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join, relative, sep } from "node:path";
import { describe, expect, it } from "vitest";
import { repoRoot } from "./helpers/servers.js";

const buf = join(repoRoot, "node_modules", ".bin", "buf");
const run = (cmd: string, args: string[]) => spawnSync(cmd, args, { cwd: repoRoot, encoding: "utf8" });

describe("the proto contract", () => {
  it("passes buf lint (STANDARD)", () => {
    const r = run(buf, ["lint"]);
    expect(r.stdout + r.stderr).toBe("");
    expect(r.status).toBe(0);
  });

  it("has no breaking change against the released baseline image (buf breaking, FILE rules)", () => {
    // proto/baseline/rollgate-v1.binpb is the contract as released; refresh it only for
    // additive changes (`buf build proto -o proto/baseline/rollgate-v1.binpb`).
    const r = run(buf, ["breaking", "proto", "--against", "proto/baseline/rollgate-v1.binpb"]);
    expect(r.stdout + r.stderr).toBe("");
    expect(r.status).toBe(0);
  });

  it("has generated code in gen/ that matches proto/", () => {
    const r = run(process.execPath, ["scripts/check-gen.mjs"]);
    expect(r.stderr).toBe("");
    expect(r.status).toBe(0);
  });
});

/** Returns every .ts file under a directory. */
function tsFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((f) => {
    const p = join(dir, f);
    return statSync(p).isDirectory() ? tsFiles(p) : p.endsWith(".ts") ? [p] : [];
  });
}

/** Returns the module specifiers a file imports (static imports and re-exports). */
function importsOf(file: string): string[] {
  const src = readFileSync(file, "utf8");
  return [...src.matchAll(/^\s*(?:import|export)\b[^;]*?\bfrom\s+"([^"]+)"/gms)].map((m) => m[1]!);
}

describe("architecture (docs/conventions.md)", () => {
  const layer = (dir: string) => tsFiles(join(repoRoot, "src", dir));
  const forbidden: Record<string, RegExp[]> = {
    // A pure core: no generated code, no Connect, no SQLite, no pino, no other layer.
    domain: [/gen\//, /@connectrpc/, /better-sqlite3/, /pino/, /\.\.\/(store|service|server|cli)\//],
    // Dependencies point one way: cli → server → service → domain, service → store → domain.
    store: [/\.\.\/(service|server|cli)\//, /gen\//, /@connectrpc/],
    service: [/\.\.\/(server|cli)\//],
    server: [/\.\.\/cli\//],
    // The CLI is a client of the server: the generated messages of rollgate-client only (never
    // the server's gen/ tree), the domain's pure logic, the service's protobuf-JSON conversions,
    // and of the server only its entry points for \`rollgate serve\`. No store, no server internals.
    cli: [/^(\.\.\/)+gen\//, /\.\.\/store\//, /\.\.\/service\/(?!proto-json\.js$)/, /\.\.\/server\/(?!(server|config)\.js$)/],
  };
  for (const [dir, rules] of Object.entries(forbidden)) {
    it(`src/${dir} imports only what its layer may`, () => {
      const offences = layer(dir).flatMap((f) =>
        importsOf(f)
          .filter((spec) => rules.some((r) => r.test(spec)))
          .map((spec) => `${relative(repoRoot, f)} imports ${spec}`),
      );
      expect(offences).toEqual([]);
    });
  }

  it("never throws ConnectError from the domain or builds wire errors in handlers by hand", () => {
    const domain = layer("domain").filter((f) => /new ConnectError|import[^;]*\bConnectError\b/.test(readFileSync(f, "utf8")));
    expect(domain.map((f) => relative(repoRoot, f))).toEqual([]);
    const handlers = ["rollout-service.ts", "decision-service.ts"].map((f) => join(repoRoot, "src", "service", f));
    for (const f of handlers) expect(readFileSync(f, "utf8")).not.toMatch(/new ConnectError\(/);
  });

  it("fences connect's internal protocol modules: protocol-grpc only in src/server/grpc/, protocol and protocol-connect only in src/server/connect/, pinned exactly", () => {
    // connect-es marks its protocol-* modules internal (not semver-stable). Each one in use has
    // one folder that may import it; any other protocol-* import needs a fence of its own here.
    const fences: Record<string, string> = {
      "@connectrpc/connect/protocol-grpc": join(repoRoot, "src", "server", "grpc") + sep,
      "@connectrpc/connect/protocol-connect": join(repoRoot, "src", "server", "connect") + sep,
      // The universal handler types, to correct connect-node's answers (request-decode-codes.ts).
      "@connectrpc/connect/protocol": join(repoRoot, "src", "server", "connect") + sep,
    };
    const internal = /^@connectrpc\/[\w-]+\/protocol/;
    const users = new Set<string>();
    const offences = tsFiles(join(repoRoot, "src")).flatMap((f) =>
      importsOf(f)
        .filter((spec) => internal.test(spec))
        .filter((spec) => {
          const fence = fences[spec];
          if (fence === undefined || !f.startsWith(fence)) return true;
          users.add(spec);
          return false;
        })
        .map((spec) => `${relative(repoRoot, f)} imports ${spec}`),
    );
    expect(offences).toEqual([]);
    expect([...users].sort()).toEqual(Object.keys(fences).sort()); // the fence holds what it says
    // The versions those imports were written against: exact in package.json, and the lock agrees.
    const pkg = JSON.parse(readFileSync(join(repoRoot, "package.json"), "utf8")) as { dependencies: Record<string, string> };
    const lock = JSON.parse(readFileSync(join(repoRoot, "package-lock.json"), "utf8")) as { packages: Record<string, { version?: string }> };
    for (const name of ["@connectrpc/connect", "@connectrpc/connect-node"]) {
      const pinned = pkg.dependencies[name];
      expect(pinned, name).toMatch(/^\d+\.\d+\.\d+$/);
      expect(lock.packages[`node_modules/${name}`]?.version, name).toBe(pinned);
    }
  });

  it("has no export * barrels in src/", () => {
    const barrels = tsFiles(join(repoRoot, "src")).filter((f) => /^export \* from/m.test(readFileSync(f, "utf8")));
    expect(barrels).toEqual([]);
  });

  it("keeps generated code untouched (every gen file says it is generated)", () => {
    const files = tsFiles(join(repoRoot, "gen"));
    expect(files.length).toBeGreaterThan(0);
    // Vendored protos keep their licence header above the generator's line.
    for (const f of files) expect(readFileSync(f, "utf8")).toMatch(/^((\/\/.*)?\n)*\/\/ @generated by protoc-gen-es/);
    expect(execFileSync("git", ["status", "--porcelain", "--", "gen"], { cwd: repoRoot, encoding: "utf8" })).toBe("");
  });
});
