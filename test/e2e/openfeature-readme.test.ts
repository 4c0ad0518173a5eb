import { spawn } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { bucketOf } from "../../src/domain/bucketing.js";
import { specFixture } from "../helpers/rollouts.js";
import { repoRoot, startTestServer, TEST_TOKENS, type TestServer } from "../helpers/servers.js";

/** The README's "OpenFeature" blocks of a language, run as written against a real server (the port swapped). */
function blocks(lang: string): string[] {
  const readme = readFileSync(join(repoRoot, "README.md"), "utf8");
  const start = readme.indexOf("## OpenFeature");
  expect(start).toBeGreaterThanOrEqual(0);
  const section = readme.slice(start, readme.indexOf("\n## ", start + 1));
  return [...section.matchAll(new RegExp("```" + lang + "\\n([\\s\\S]*?)```", "g"))].map((m) => m[1]!);
}
const run = (cmd: string, args: string[], env: NodeJS.ProcessEnv) =>
  new Promise<{ status: number | null; out: string }>((resolve) => {
    const child = spawn(cmd, args, { cwd: repoRoot, timeout: 30_000, env: { ...process.env, ...env } });
    let out = "";
    child.stdout.setEncoding("utf8").on("data", (d: string) => (out += d));
    child.stderr.setEncoding("utf8").on("data", (d: string) => (out += d));
    child.on("close", (status) => resolve({ status, out }));
  });

describe("README: OpenFeature", () => {
  let server: TestServer;
  const dir = join(repoRoot, ".cache", `readme-openfeature-${process.pid}`);
  // A reporter token: enough for OFREP, WatchRoutes and track.
  const env = { ROLLGATE_TOKEN: TEST_TOKENS.find((t) => t.role === "reporter")!.token };
  const canary = bucketOf("checkout", "user-42") < 500;
  const version = canary ? "v1.5.0" : "v1.4.2";
  beforeAll(async () => {
    server = await startTestServer({}, { tokens: TEST_TOKENS });
    await server.engine.create(
      specFixture({ name: "checkout", salt: "checkout", stableVersion: "v1.4.2", canaryVersion: "v1.5.0", features: new Map([["new-ui", true]]) }),
      { actor: "readme", reason: "" },
    );
    mkdirSync(dir, { recursive: true });
  });
  afterAll(async () => {
    rmSync(dir, { recursive: true, force: true });
    await server.stop();
  });

  it("has two TypeScript snippets, and both answer what Route answers", async () => {
    const [ofrep, inProcess] = blocks("ts");
    expect(inProcess).toBeDefined();
    // Plain JavaScript as well as TypeScript: run as modules in the repository, where
    // rollgate-client resolves to clients/typescript.
    writeFileSync(join(dir, "ofrep.mjs"), ofrep!.replaceAll("http://localhost:8080", server.url));
    const a = await run(process.execPath, [join(dir, "ofrep.mjs")], env);
    expect(a).toMatchObject({ status: 0 });
    expect(a.out.trim()).toBe(`${version} ${canary}`);
    writeFileSync(join(dir, "in-process.mjs"), inProcess!.replaceAll("http://localhost:8080", server.url));
    const b = await run(process.execPath, [join(dir, "in-process.mjs")], env);
    expect(b).toMatchObject({ status: 0 });
    expect(b.out.trim()).toBe(`${version} ${canary ? "canary" : "stable"} SPLIT`);
    // The snippet's track call reached the rollout's window.
    const h = await server.engine.health("checkout");
    expect(h.samples.stable + h.samples.canary).toBe(1);
  });

  const python = join(repoRoot, ".venv", "bin", "python");
  it.skipIf(!existsSync(python))("has two Python snippets that answer what Route answers (with the test runner's .venv)", async () => {
    const [ofrep, inProcess] = blocks("python");
    expect(inProcess).toBeDefined();
    const a = await run(python, ["-c", ofrep!.replaceAll("http://localhost:8080", server.url)], env);
    expect(a).toMatchObject({ status: 0 });
    expect(a.out.trim()).toBe(version);
    const b = await run(python, ["-c", inProcess!.replaceAll("http://localhost:8080", server.url)], env);
    expect(b).toMatchObject({ status: 0 });
    expect(b.out.trim()).toBe(`${version} ${canary ? "canary" : "stable"} SPLIT`);
  });
});
