import { readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { repoRoot, startTestServer, type TestServer } from "../helpers/servers.js";
import { runCli } from "./run-cli.js";

let server: TestServer;
let rollgate: (args: string[], stdin?: string) => ReturnType<typeof runCli>;
beforeAll(async () => {
  server = await startTestServer();
  rollgate = (args, stdin) => runCli(["--server", server.url, ...args], stdin === undefined ? {} : { stdin });
});
afterAll(async () => {
  await server.stop();
});

const examples = readdirSync(join(repoRoot, "examples")).filter((f) => f.endsWith(".yaml"));

async function getJson(name: string): Promise<Record<string, unknown>> {
  const r = await rollgate(["get", name, "--output", "json"]);
  expect(r.stderr).toBe("");
  expect(r.code).toBe(0);
  return JSON.parse(r.stdout) as Record<string, unknown>;
}

describe("rollgate apply", () => {
  it("ships an example for each seed scenario", () => {
    expect(examples).toEqual(expect.arrayContaining(["checkout-p99.yaml", "payments-waves.yaml"]));
    const p99 = readFileSync(join(repoRoot, "examples/checkout-p99.yaml"), "utf8");
    for (const w of ["5%", "25%", "50%", "100%"]) expect(p99).toContain(`weight: ${w}`);
    expect(p99).toMatch(/quantile: 0\.99/);
    expect(p99).toMatch(/metric:\s+metric: basket_value/);
    const waves = readFileSync(join(repoRoot, "examples/payments-waves.yaml"), "utf8");
    for (const w of ["10%", "25%", "50%", "100%"]) expect(waves).toContain(`weight: ${w}`);
    expect(waves).toContain("invariant:");
    expect(waves).toContain("errorRate:");
  });

  it.each(examples)("creates %s, then re-applying it changes nothing", async (file) => {
    const path = join(repoRoot, "examples", file);
    const first = await rollgate(["apply", "-f", path]);
    expect(first.stderr).toBe("");
    expect(first.code).toBe(0);
    const name = /^name: (\S+)$/m.exec(readFileSync(path, "utf8"))![1]!;
    expect(first.stdout).toBe(`rollout/${name} created (version 1)\n`);
    const again = await rollgate(["apply", "-f", path]);
    expect(again).toMatchObject({ code: 0, stdout: `rollout/${name} unchanged (version 1)\n` });
    expect(await getJson(name)).toMatchObject({ name, version: "1" });
  });

  it("the seed scenarios arrive as written: 5/25/50/100 with p99 and metric gates; 10/25/50/100 waves with the decision tree", async () => {
    await rollgate(["apply", "-f", join(repoRoot, "examples/checkout-p99.yaml")]);
    await rollgate(["apply", "-f", join(repoRoot, "examples/payments-waves.yaml")]);
    const checkout = await getJson("checkout");
    expect((checkout.steps as { weightBp: number; minDuration?: string }[]).map((s) => s.weightBp)).toEqual([500, 2500, 5000, 10000]);
    expect((checkout.steps as { minDuration?: string }[])[0]!.minDuration).toBe("300s");
    expect(checkout.gates).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ name: "latency-p99", latency: { quantile: 0.99, maxMs: 450, maxRatio: 1.2 } }),
        expect.objectContaining({ name: "basket-value", onBreach: "ACTION_HOLD", metric: expect.objectContaining({ metric: "basket_value", maxDelta: 2.5 }) }),
      ]),
    );
    const payments = await getJson("payments");
    expect((payments.steps as { weightBp: number }[]).map((s) => s.weightBp)).toEqual([1000, 2500, 5000, 10000]);
    expect((payments.gates as { name: string; onBreach: string }[]).map((g) => [g.name, g.onBreach])).toEqual([
      ["ledger-invariant", "ACTION_HALT"],
      ["errors-absolute", "ACTION_ROLLBACK"],
      ["errors-vs-stable", "ACTION_STEP_BACK"],
      ["success-rate", "ACTION_SCALE_DOWN"],
    ]);
    expect(payments.analysis).toMatchObject({ window: "600s", interval: "15s", consecutiveBreaches: 3, autoPromote: true });
  });

  it("shows a field-level diff, updates with expected_version, and records the change", async () => {
    const base = "name: diffed\nstableVersion: v1\ncanaryVersion: v2\nsteps: [5%, 25%, 100%]\nfeatures:\n  dark-mode: true\n";
    expect((await rollgate(["apply", "-f", "-"], base)).code).toBe(0);
    const changed = base.replace("canaryVersion: v2", "canaryVersion: v3").replace("25%", "30%").replace("dark-mode: true", "dark-mode: false") + "salt: reshuffled\n";
    const dry = await rollgate(["apply", "-f", "-", "--dry-run"], changed);
    expect(dry.code).toBe(0);
    expect(dry.stdout).toContain("rollout/diffed would update (version 1)");
    expect((await getJson("diffed")).version).toBe("1");
    const r = await rollgate(["apply", "-f", "-", "--reason", "ticket 7"], changed);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(r.stdout.split("\n")).toEqual([
      "rollout/diffed updated (version 2)",
      '  ~ canaryVersion: "v2" → "v3"',
      "  ~ steps[1].weightBp: 2500 → 3000",
      "  ~ features.dark-mode: true → false",
      '  ~ salt: "diffed" → "reshuffled"',
      "",
    ]);
    expect(await getJson("diffed")).toMatchObject({ version: "2", canaryVersion: "v3", salt: "reshuffled", features: { "dark-mode": false } });
    const events = JSON.parse((await rollgate(["events", "diffed", "-o", "json"])).stdout) as { type: string; reason: string }[];
    expect(events.at(-1)).toMatchObject({ type: "EVENT_TYPE_UPDATED", reason: "ticket 7" });
    expect((await rollgate(["apply", "-f", "-"], changed)).stdout).toBe("rollout/diffed unchanged (version 2)\n");
  });

  it("treats a field left out as the server's default: removing it from the file resets it", async () => {
    const withGate = "name: defaults\nstableVersion: a\ncanaryVersion: b\ngates:\n  - name: errs\n    errorRate: { max: 0.1 }\nanalysis: { interval: 5s, autoPromote: true }\n";
    expect((await rollgate(["apply", "-f", "-"], withGate)).code).toBe(0);
    const plain = "name: defaults\nstableVersion: a\ncanaryVersion: b\n";
    const r = await rollgate(["apply", "-f", "-", "-o", "json"], plain);
    expect(r.code).toBe(0);
    const [result] = JSON.parse(r.stdout) as { action: string; changes: { path: string; op: string }[] }[];
    expect(result!.action).toBe("updated");
    expect(result!.changes.map((c) => c.path)).toEqual(expect.arrayContaining(["gates", "analysis.autoPromote", "analysis.interval"]));
    const got = await getJson("defaults");
    expect(got.gates).toEqual([]);
    expect(got.analysis).toMatchObject({ interval: "10s" });
  });

  it("applies every document of a multi-document file", async () => {
    const r = await rollgate(["apply", "-f", "-"], "name: multi-a\nstableVersion: a\ncanaryVersion: b\n---\nname: multi-b\nstableVersion: a\ncanaryVersion: b\n");
    expect(r).toMatchObject({ code: 0, stdout: "rollout/multi-a created (version 1)\nrollout/multi-b created (version 1)\n" });
  });

  it("refuses a bad file with exit 2 and says where; a configuration the server refuses exits 1 with its reason", async () => {
    const syntax = await rollgate(["apply", "-f", "-"], "name: [unclosed\n");
    expect(syntax.code).toBe(2);
    expect(syntax.stderr).toContain("rollgate apply: -:");
    const unknown = await rollgate(["apply", "-f", "-"], "name: typo\nstableVersion: a\ncanaryVersoin: b\n");
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain("canaryVersoin");
    const weight = await rollgate(["apply", "-f", "-"], "name: w\nstableVersion: a\ncanaryVersion: b\nsteps: [25]\n");
    expect(weight.code).toBe(2);
    const noName = await rollgate(["apply", "-f", "-"], "stableVersion: a\ncanaryVersion: b\n");
    expect(noName).toMatchObject({ code: 2, stderr: expect.stringContaining("name is required") });
    const missing = await rollgate(["apply", "-f", "/nonexistent/rollout.yaml"]);
    expect(missing.code).toBe(2);
    const noFile = await rollgate(["apply"]);
    expect(noFile.code).toBe(2);

    const descending = "name: refused\nstableVersion: a\ncanaryVersion: b\nsteps: [50%, 25%]\n";
    const created = await rollgate(["apply", "-f", "-"], descending);
    expect(created.code).toBe(1);
    expect(created.stderr).toContain("invalid_argument: rollout.steps[1].weight_bp");
    expect((await rollgate(["apply", "-f", "-"], "name: refused\nstableVersion: a\ncanaryVersion: b\n")).code).toBe(0);
    const updated = await rollgate(["apply", "-f", "-"], descending);
    expect(updated.code).toBe(1);
    expect(updated.stderr).toContain("rollout.steps[1].weight_bp");
    expect((await getJson("refused")).version).toBe("1");
  });
});
