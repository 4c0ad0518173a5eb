import { existsSync } from "node:fs";
import { createRollgateClient, type RollgateClient } from "rollgate-client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { cliPath, startTestServer, type TestServer } from "../helpers/servers.js";
import { runCli, startCli } from "./run-cli.js";

let server: TestServer;
let client: RollgateClient;
let rollgate: (args: string[], stdin?: string) => ReturnType<typeof runCli>;
beforeAll(async () => {
  server = await startTestServer();
  client = createRollgateClient({ baseUrl: server.url });
  rollgate = (args, stdin) => runCli(["--server", server.url, ...args], stdin === undefined ? {} : { stdin });
});
afterAll(async () => {
  await client.close();
  await server.stop();
});

/** A rollout with one error-rate gate (max 5%, 10 samples), evaluated every second. */
async function gated(name: string, minSamples = 10): Promise<void> {
  const yaml = [
    `name: ${name}`,
    "stableVersion: v1",
    "canaryVersion: v2",
    "gates:",
    "  - name: errors",
    `    minSamples: "${minSamples}"`,
    "    errorRate: { max: 0.05 }",
    "analysis: { interval: 1s, window: 60s }",
    "",
  ].join("\n");
  const r = await rollgate(["apply", "-f", "-"], yaml);
  expect(r.stderr).toBe("");
  expect(r.code).toBe(0);
}

describe("rollgate status", () => {
  it("shows each gate's observed value, threshold, baseline, samples and verdict, the score and the next action", async () => {
    await gated("judged");
    for (let i = 0; i < 50; i++) {
      client.recordOutcome("judged", { variant: "canary", success: true, latencyMs: 10 });
      client.recordOutcome("judged", { variant: "stable", success: true, latencyMs: 10 });
    }
    await client.flush();
    await expect
      .poll(
        async () => {
          const r = await rollgate(["status", "judged", "-o", "json"]);
          const h = JSON.parse(r.stdout) as { gates: { samples: string; verdict: string }[] };
          return h.gates[0];
        },
        { timeout: 20_000, interval: 500 },
      )
      .toMatchObject({ samples: "50", verdict: "VERDICT_PASS" });
    const r = await rollgate(["status", "judged"]);
    expect(r.code).toBe(0);
    const lines = r.stdout.split("\n");
    expect(lines[0]).toMatch(/^judged\s+v1 → v2\s+CANARY$/);
    expect(r.stdout).toMatch(/^\[[█░]{30}\] 5%\s+step 1\/4/m);
    expect(r.stdout).toMatch(/^health 1\.00 HEALTHY\s+samples canary 50 \/ stable 50/m);
    expect(r.stdout).toMatch(/^next action: \w+/m);
    expect(r.stdout).toMatch(/^GATE\s+KIND\s+OBSERVED\s+THRESHOLD\s+BASELINE\s+SAMPLES\s+VERDICT\s+BREACHES\s+ON BREACH$/m);
    expect(r.stdout).toMatch(/^errors\s+error_rate\s+0%\s+5%\s+\S+\s+50\s+PASS\s+0\s+ROLLBACK$/m);
  });

  it("an unknown rollout exits 1 with not_found", async () => {
    const r = await rollgate(["status", "nobody"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("not_found");
  });
});

describe("rollgate promote against the gates", () => {
  it("is refused while a gate lacks samples, listing the blocking gates; --force overrides with a reason", async () => {
    await gated("blocked", 1000);
    const r = await rollgate(["promote", "blocked"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^rollgate promote: failed_precondition: /);
    expect(r.stderr).toContain("blocked by:");
    expect(r.stderr).toMatch(/^errors\s+error_rate\s+-\s+5%\s+-\s+0\s+INCONCLUSIVE\s+0\s+ROLLBACK$/m);
    const forced = await rollgate(["promote", "blocked", "--force", "--reason", "hotfix verified by hand", "-o", "json"]);
    expect(forced.code).toBe(0);
    expect(JSON.parse(forced.stdout)).toMatchObject({ currentStep: 1, weightBp: 2500 });
  });
});

describe("what an operator reads when a rollout is refused or done", () => {
  it("a refused promote: one short line, the gates once as a table (a vs-stable rule, not 0%), then the override by its flags", async () => {
    const yaml = [
      "name: refused",
      "stableVersion: v1",
      "canaryVersion: v2",
      "gates:",
      "  - { name: errors, minSamples: \"1000\", errorRate: { max: 0.05 } }",
      "  - { name: vs-stable, minSamples: \"1000\", errorRate: { maxRatio: 1.2 } }",
      "  - { name: p99, minSamples: \"1000\", latency: { quantile: 0.99, maxRatio: 1.5 } }",
      "",
    ].join("\n");
    expect((await rollgate(["apply", "-f", "-"], yaml)).code).toBe(0);
    const r = await rollgate(["promote", "refused", "--to", "staging"]);
    expect(r).toMatchObject({ code: 1, stdout: "" });
    const lines = r.stderr.trimEnd().split("\n");
    expect(lines[0]).toBe('rollgate promote: failed_precondition: promotion of "refused" refused');
    expect(lines[1]).toBe("blocked by:");
    expect(lines[2]).toMatch(/^GATE\s+KIND\s+OBSERVED\s+THRESHOLD\s+BASELINE\s+SAMPLES\s+VERDICT\s+BREACHES\s+ON BREACH$/);
    expect(lines[3]).toMatch(/^errors\s+error_rate\s+-\s+5%\s+-\s+0\s+INCONCLUSIVE\s+0\s+ROLLBACK$/);
    expect(lines[4]).toMatch(/^vs-stable\s+error_rate\s+-\s+stable × 1\.2\s+-\s+0\s+INCONCLUSIVE\s+0\s+ROLLBACK$/);
    expect(lines[5]).toMatch(/^p99\s+latency\s+-\s+stable × 1\.5\s+-\s+0\s+INCONCLUSIVE\s+0\s+ROLLBACK$/);
    expect(lines[6]).toBe('to promote anyway: rollgate promote refused --to staging --force --reason "…" (the reason goes to the audit log)');
    expect(lines).toHaveLength(7);
    // Each gate once, no line of a paragraph's length.
    for (const gate of ["errors", "vs-stable", "p99"]) expect(r.stderr.split(gate).length - 1).toBe(1);
    expect(Math.max(...lines.map((l) => l.length))).toBeLessThan(120);
  });

  it("a rolled-back rollout shows where keys go and what can be done, not a live score or a next action; resume in the cooldown says what is possible", async () => {
    await gated("settled");
    expect((await rollgate(["rollback", "settled", "--reason", "pager"])).code).toBe(0);
    const r = await rollgate(["status", "settled"]);
    expect(r.code).toBe(0);
    const lines = r.stdout.trimEnd().split("\n");
    expect(lines[0]).toMatch(/^settled\s+v1 → v2\s+ROLLED_BACK$/);
    expect(lines[1]).toMatch(/^\[░{30}\] 0%\s+rolled_back$/);
    expect(lines[2]).toBe("rolled back: every key gets stable v1; not judged, gates do not act");
    expect(lines[3]).toMatch(/^next: rollgate resume settled --reason "…" once the cooldown ends \(in (29m\d\ds|30m00s)\), or apply a new canaryVersion now$/);
    expect(r.stdout).not.toMatch(/^health /m);
    expect(r.stdout).not.toMatch(/^next action:/m);
    expect(r.stdout).toMatch(/^gates over the current window \(for the record; not acting\):$/m);

    const resume = await rollgate(["resume", "settled", "--reason", "try again"]);
    expect(resume.code).toBe(1);
    expect(resume.stderr).toMatch(
      /^rollgate resume: failed_precondition: rollout "settled" is ROLLED_BACK and in its cooldown until \S+Z \((29|30) min from now\): resume it then, or start over now by setting a new canary_version; until then the only stage change allowed: HALTED\n$/,
    );
  });
});

describe("rollgate watch", () => {
  it("without a terminal prints one plain line per update, and --until-done exits 1 when the rollout is halted", async () => {
    await gated("watched-plain");
    const watch = startCli(["--server", server.url, "watch", "watched-plain", "--until-done"]);
    try {
      await watch.waitFor(/ watched-plain stage=CANARY step=1\/4 weight=5% score=[\d.]+ recommendation=\w+ next=\S+ gates=errors=\w+\n/);
      expect(watch.output()).not.toContain("\u001b[");
      expect((await rollgate(["halt", "watched-plain", "--reason", "watch test"])).code).toBe(0);
    } catch (e) {
      watch.child.kill("SIGKILL");
      throw e;
    }
    const done = await watch.exited;
    expect(done.code).toBe(1);
    const lines = done.stdout.trimEnd().split("\n");
    expect(lines.at(-2)).toMatch(/^\d{4}-\d\d-\d\dT[\d:.]+Z watched-plain stage=HALTED .*weight=0% /);
    expect(lines.at(-1)).toBe("watched-plain is HALTED");
  });

  it("--output json prints one HealthUpdate per line", async () => {
    await gated("watched-json");
    const watch = startCli(["--server", server.url, "watch", "watched-json", "--until-done", "-o", "json"]);
    try {
      await watch.waitFor(/\n/);
      expect((await rollgate(["promote", "watched-json", "--to", "production", "--force", "--reason", "done"])).code).toBe(0);
    } catch (e) {
      watch.child.kill("SIGKILL");
      throw e;
    }
    const done = await watch.exited;
    expect(done.code).toBe(0);
    const updates = done.stdout.trimEnd().split("\n").map((l) => JSON.parse(l) as { seq: string; health: { rollout: string; stage: string } });
    expect(updates[0]).toMatchObject({ seq: "1", health: { rollout: "watched-json", stage: "STAGE_CANARY" } });
    expect(updates.at(-1)!.health.stage).toBe("STAGE_PRODUCTION");
  });

  it("under a pseudo-terminal redraws in place with colours, a progress bar and the gate table", async () => {
    expect(existsSync("/usr/bin/script") || existsSync("/bin/script"), "util-linux `script` runs the CLI under a pseudo-terminal").toBe(true);
    await gated("watched-tty");
    const command = [process.execPath, cliPath, "--server", server.url, "watch", "watched-tty", "--until-done"].map((a) => `'${a}'`).join(" ");
    const watch = startCli(["-qfec", command, "/dev/null"], { command: "script", env: { NO_COLOR: "", TERM: "xterm-256color", COLUMNS: "120", LINES: "40" } });
    try {
      await watch.waitFor(/GATE\s+KIND\s+OBSERVED/);
      await watch.waitFor(/errors\s+error_rate/);
      expect((await rollgate(["rollback", "watched-tty", "--reason", "tty test"])).code).toBe(0);
    } catch (e) {
      watch.child.kill("SIGKILL");
      throw e;
    }
    const done = await watch.exited;
    expect(done.code).toBe(1);
    const out = done.stdout;
    expect(out).toContain("watched-tty");
    expect(out).toMatch(/\[(\u001b\[\d+m)?█*(\u001b\[\d+m)*░+/); // the weight bar
    expect(out).toContain("\u001b[2K"); // log-update erased the previous frame to redraw
    expect(out).toContain("\u001b[2mINCONCLUSIVE\u001b[22m"); // verdicts in colour
    expect(out).toContain("ROLLED_BACK");
    expect(out).not.toMatch(/^\d{4}-\d\d-\d\dT.* stage=/m); // not the plain line mode
  });
});
