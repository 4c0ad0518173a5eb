import { spawn } from "node:child_process";
import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { bucketOf } from "../../src/domain/bucketing.js";
import { grpcurlPath } from "../helpers/grpcurl.js";
import { specFixture } from "../helpers/rollouts.js";
import { repoRoot, startTestServer, type TestServer } from "../helpers/servers.js";

/** The README's "Local evaluation" blocks, run as written against a real server (the port swapped). */
function section(): string {
  const readme = readFileSync(join(repoRoot, "README.md"), "utf8");
  const start = readme.indexOf("## Local evaluation");
  expect(start).toBeGreaterThanOrEqual(0);
  return readme.slice(start, readme.indexOf("\n## ", start + 1));
}
const block = (lang: string) => {
  const m = new RegExp("```" + lang + "\\n([\\s\\S]*?)```").exec(section());
  expect(m).not.toBeNull();
  return m![1]!;
};
const run = (cmd: string, args: string[]) =>
  new Promise<{ status: number | null; out: string }>((resolve) => {
    const child = spawn(cmd, args, { cwd: repoRoot, timeout: 30_000 });
    let out = "";
    child.stdout.setEncoding("utf8").on("data", (d: string) => (out += d));
    child.stderr.setEncoding("utf8").on("data", (d: string) => (out += d));
    child.on("close", (status) => resolve({ status, out }));
  });

describe("README: Local evaluation", () => {
  let server: TestServer;
  const dir = join(repoRoot, ".cache", `readme-local-${process.pid}`);
  beforeAll(async () => {
    server = await startTestServer();
    await server.engine.create(specFixture({ name: "checkout", salt: "checkout", stableVersion: "v1.4.2", canaryVersion: "v1.5.0" }), { actor: "readme", reason: "" });
    mkdirSync(dir, { recursive: true });
  });
  afterAll(async () => {
    rmSync(dir, { recursive: true, force: true });
    await server.stop();
  });

  it("the TypeScript snippet routes locally, as Route does", async () => {
    // The snippet is plain JavaScript as well as TypeScript: run it as a module in the repository,
    // where rollgate-client resolves to clients/typescript.
    const file = join(dir, "snippet.mjs");
    writeFileSync(file, block("ts").replaceAll("http://localhost:8080", server.url));
    const r = await run(process.execPath, [file]);
    expect(r).toMatchObject({ status: 0 });
    const [variant, version, reason, since] = r.out.trim().split(/\s+/);
    const canary = bucketOf("checkout", "user-42") < 500;
    expect({ variant, version, reason }).toEqual({ variant: canary ? "canary" : "stable", version: canary ? "v1.5.0" : "v1.4.2", reason: "weight" });
    expect(Number(since)).toBeLessThan(6000);
  });

  it("the grpcurl command shows a snapshot", async () => {
    const cmd = block("sh").trim().replace("localhost:8080", server.address).split(/\s+/);
    expect(cmd[0]).toBe("grpcurl");
    const args = ["-max-time", "2", ...cmd.slice(1).map((a) => a.replace(/^'(.*)'$/, "$1"))];
    const r = await run(await grpcurlPath(), args);
    const first = JSON.parse(r.out.slice(0, r.out.indexOf("\n}") + 2)) as { reset: boolean; routes: { rollout: string }[] };
    expect(first.reset).toBe(true);
    expect(first.routes.map((s) => s.rollout)).toEqual(["checkout"]);
  });
});
