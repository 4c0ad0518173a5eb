import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { grpcurlPath } from "../helpers/grpcurl.js";
import { cliPath, repoRoot, startTestServer, type TestServer } from "../helpers/servers.js";

/**
 * The README's walkthroughs, run as written: every shell block of a section, line by line,
 * against a real server — the port swapped for the test server's, `npx rollgate` for the built
 * CLI (same program), and long-running `watch` commands skipped. Keeps the README true.
 */
function blocksOf(section: string): string[] {
  const readme = readFileSync(join(repoRoot, "README.md"), "utf8");
  const start = readme.indexOf(`## ${section}`);
  expect(start).toBeGreaterThanOrEqual(0);
  const end = readme.indexOf("\n## ", start + 1);
  const body = readme.slice(start, end === -1 ? undefined : end);
  return [...body.matchAll(/```sh\n([\s\S]*?)```/g)].map((m) => m[1]!);
}

describe("README walkthroughs", () => {
  let server: TestServer;
  let env: NodeJS.ProcessEnv;
  beforeAll(async () => {
    server = await startTestServer();
    env = { ...process.env, PATH: `${dirname(await grpcurlPath())}:${process.env.PATH}`, ROLLGATE_SERVER: server.url };
  });
  afterAll(async () => {
    await server.stop();
  });

  /** Runs a block as a script that stops at the first failing command (async: the server runs in this process). */
  const run = (block: string): Promise<{ block: string; status: number | null; out: string }> => {
    const script = block
      .split("\n")
      .filter((l) => !l.trim().startsWith("npx rollgate watch"))
      .join("\n")
      .replaceAll("localhost:8080", server.address)
      .replaceAll("npx rollgate", `node ${cliPath}`);
    return new Promise((resolve) => {
      const child = spawn("bash", ["-e", "-o", "pipefail", "-c", script], { cwd: repoRoot, env, timeout: 30_000 });
      let out = "";
      child.stdout.setEncoding("utf8").on("data", (d: string) => (out += d));
      child.stderr.setEncoding("utf8").on("data", (d: string) => (out += d));
      child.on("close", (status) => resolve({ block, status, out }));
    });
  };

  it("'A first rollout' runs as written", async () => {
    const results = [];
    for (const b of blocksOf("A first rollout")) results.push(await run(b));
    expect(results.length).toBe(4);
    for (const r of results) expect({ block: r.block, status: r.status, out: r.status === 0 ? "" : r.out }).toMatchObject({ status: 0 });
    const [create, route, outcomes, lifecycle] = results.map((r) => r.out);
    expect(create).toContain('"stage":"STAGE_CANARY"');
    expect(route).toContain('"variant": "VARIANT_CANARY"');
    expect(route).toContain('"bucket": 60');
    expect(route).toContain('"bucket":8170');
    expect(outcomes).toContain('{"accepted":400}');
    expect(outcomes).toMatch(/errors\s+error_rate\s+1%\s+2%/);
    expect(lifecycle).toContain("weight 25%");
    expect(lifecycle).toContain("weight 40%");
    expect(lifecycle).toContain("ROLLED_BACK");
    expect(lifecycle).toContain("hash chain intact: 4 events verified");
    expect(lifecycle).toMatch(/rolled_back\s+local\s+pager: checkout latency/);
  });

  it("'Watch a bad canary roll back' runs as written, and the canary is rolled back", async () => {
    const [apply, feed] = blocksOf("Watch a bad canary roll back");
    const applied = await run(apply!);
    expect({ status: applied.status, out: applied.out }).toMatchObject({ status: 0, out: expect.stringContaining("rollout/cart created") });
    // Wait for the rollback itself (the audit event), not for a guessed time.
    const live = server.engine.subscribeEvents("cart");
    const rolledBack = (async () => {
      for await (const e of live) if (e.type === "rolled_back") return;
    })();
    const fed = await run(feed!);
    expect(fed).toMatchObject({ status: 0 });
    expect(fed.out).toContain('{"accepted":400}');
    await rolledBack;
    live.close();
    const events = (await run("npx rollgate events cart")).out;
    expect(events).toMatch(/gate_breach\s+evaluator\s+errors: canary error rate 0\.3 > max 0\.05/);
    expect(events).toMatch(/rolled_back\s+evaluator\s+errors: canary error rate 0\.3 > max 0\.05 for 2 consecutive evaluations/);
    const route = await run(`curl -s localhost:8080/rollgate.v1.DecisionService/Route -H 'content-type: application/json' -d '{"rollout":"cart","key":"k"}'`);
    expect(route.out).toContain("ROUTE_REASON_ROLLED_BACK");
  });
});
