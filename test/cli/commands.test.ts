import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { bucketOf } from "../../src/domain/bucketing.js";
import { TEST_TOKENS, repoRoot, startTestServer, tempDir, type TestServer } from "../helpers/servers.js";
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

async function create(name: string, extra = ""): Promise<void> {
  const r = await rollgate(["apply", "-f", "-"], `name: ${name}\nstableVersion: v1\ncanaryVersion: v2\n${extra}`);
  expect(r.stderr).toBe("");
  expect(r.code).toBe(0);
}

async function json(args: string[]): Promise<Record<string, unknown>> {
  const r = await rollgate([...args, "--output", "json"]);
  expect(r.stderr).toBe("");
  expect(r.code).toBe(0);
  return JSON.parse(r.stdout) as Record<string, unknown>;
}

describe("read commands", () => {
  it("get shows the configuration and state; list shows every rollout; both as JSON with --output json", async () => {
    await create("reader-a", "steps: [10%, 100%]\nfeatures: { beta: true }\n");
    await create("reader-b");
    const table = await rollgate(["get", "reader-a"]);
    expect(table.code).toBe(0);
    expect(table.stdout).toMatch(/^name\s+reader-a$/m);
    expect(table.stdout).toMatch(/^stage\s+CANARY$/m);
    expect(table.stdout).toMatch(/^steps\s+10% → 100%$/m);
    expect(table.stdout).toMatch(/^features\s+beta=on$/m);
    expect(await json(["get", "reader-a"])).toMatchObject({ name: "reader-a", stage: "STAGE_CANARY", weightBp: 1000, version: "1" });
    const list = await rollgate(["list"]);
    expect(list.stdout.split("\n")[0]).toMatch(/^NAME\s+STAGE\s+STEP\s+WEIGHT\s+STABLE\s+CANARY/);
    expect(list.stdout).toMatch(/^reader-a\s+CANARY\s+1\/2\s+10%\s+v1\s+v2/m);
    const listed = (await json(["list"])) as unknown as { name: string }[];
    expect(listed.map((r) => r.name)).toEqual(expect.arrayContaining(["reader-a", "reader-b"]));
    const yaml = await rollgate(["get", "reader-a", "-o", "yaml"]);
    expect(yaml.stdout).toContain("name: reader-a\n");
    // What get prints as YAML is an apply file that changes nothing.
    expect((await rollgate(["apply", "-f", "-"], yaml.stdout)).stdout).toBe("rollout/reader-a unchanged (version 1)\n");
  });

  it("route answers like the server's Route, matching the reference vectors", async () => {
    const vectors = (JSON.parse(readFileSync(join(repoRoot, "vectors/reference/bucketing-v1-vectors.json"), "utf8")) as {
      vectors: { salt: string; key: string; bucket: number; weight_bp: number; variant: string }[];
    }).vectors.filter((v) => v.salt === "checkout-v2");
    await create("routed", "salt: checkout-v2\n");
    for (const v of vectors.slice(0, 6)) {
      expect((await rollgate(["set-weight", "routed", `${v.weight_bp}bp`])).code).toBe(0);
      const r = await json(["route", "routed", v.key]);
      expect(r).toMatchObject({ bucket: v.bucket, variant: v.variant, weightBp: v.weight_bp });
    }
    const text = await rollgate(["route", "routed", "user-1"]);
    expect(text.stdout).toMatch(new RegExp(`^bucket\\s+${bucketOf("checkout-v2", "user-1")} `, "m"));
    expect(text.stdout).toMatch(/^reason\s+weight$/m);
  });
});

describe("traffic commands", () => {
  it("set-weight takes 25%, 12.5% or 2500bp; anything else is a usage error", async () => {
    await create("weights");
    expect(await json(["set-weight", "weights", "25%"])).toMatchObject({ weightBp: 2500 });
    expect(await json(["set-weight", "weights", "12.5%"])).toMatchObject({ weightBp: 1250 });
    expect(await json(["set-weight", "weights", "42bp"])).toMatchObject({ weightBp: 42 });
    const line = await rollgate(["set-weight", "weights", "0%", "--reason", "drain"]);
    expect(line.stdout).toMatch(/^weights\s+CANARY\s+step 1\/4\s+weight 0%/);
    for (const bad of ["25", "101%", "abc", "-5%", "10001bp", "12.345%"]) {
      const r = await rollgate(["set-weight", "weights", bad]);
      expect({ bad, code: r.code }).toEqual({ bad, code: 2 });
      if (!bad.startsWith("-")) expect(r.stderr).toContain(`weight "${bad}"`);
    }
    expect((await json(["get", "weights"])).version).toBe("5");
  });

  it("feature turns flags on and off; override pins a key, and clear removes the pin", async () => {
    await create("toggles");
    expect(await json(["feature", "toggles", "new-ui", "on"])).toMatchObject({ features: { "new-ui": true } });
    expect(await json(["feature", "toggles", "new-ui", "off"])).toMatchObject({ features: { "new-ui": false } });
    expect((await rollgate(["feature", "toggles", "new-ui", "maybe"])).code).toBe(2);

    expect(await json(["override", "toggles", "vip-7", "canary", "--reason", "beta tester"])).toMatchObject({ overrides: { "vip-7": "VARIANT_CANARY" } });
    expect(await json(["route", "toggles", "vip-7"])).toMatchObject({ variant: "VARIANT_CANARY", reason: "ROUTE_REASON_OVERRIDE", version: "v2" });
    expect(await json(["override", "toggles", "vip-7", "stable"])).toMatchObject({ overrides: { "vip-7": "VARIANT_STABLE" } });
    expect((await json(["override", "toggles", "vip-7", "clear"])).overrides).toEqual({});
    expect(await json(["route", "toggles", "vip-7"])).toMatchObject({ reason: "ROUTE_REASON_WEIGHT" });
    expect((await rollgate(["override", "toggles", "vip-7", "green"])).code).toBe(2);
  });
});

describe("lifecycle commands", () => {
  it("pause, resume, halt, rollback; the server's refusals exit 1 with its explanation", async () => {
    await create("life");
    expect(await json(["pause", "life", "--reason", "lunch"])).toMatchObject({ paused: true });
    expect(await json(["resume", "life", "--reason", "back"])).toMatchObject({ paused: false });
    expect(await json(["halt", "life", "--reason", "incident 42"])).toMatchObject({ stage: "STAGE_HALTED", weightBp: 0 });
    const refused = await rollgate(["promote", "life", "--force", "--reason", "try"]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/^rollgate promote: failed_precondition: rollout "life" is HALTED.*allowed: /m);
    expect(await json(["resume", "life", "--reason", "fixed"])).toMatchObject({ stage: "STAGE_CANARY" });
    expect(await json(["rollback", "life", "--reason", "abandon"])).toMatchObject({ stage: "STAGE_ROLLED_BACK" });
    const route = await json(["route", "life", "anyone"]);
    expect(route).toMatchObject({ variant: "VARIANT_STABLE", reason: "ROUTE_REASON_ROLLED_BACK" });
  });

  it("promote --force needs --reason (exit 2); forced promotions step, go to staging and to production", async () => {
    await create("shipping");
    const noReason = await rollgate(["promote", "shipping", "--force"]);
    expect(noReason.code).toBe(2);
    expect(noReason.stderr).toContain("--force needs --reason");
    expect(await json(["promote", "shipping", "--force", "--reason", "verified by hand"])).toMatchObject({ currentStep: 1, weightBp: 2500 });
    expect(await json(["promote", "shipping", "--to", "staging", "--force", "--reason", "qa"])).toMatchObject({ stage: "STAGE_STAGING" });
    const done = await rollgate(["promote", "shipping", "--to", "production", "--force", "--reason", "ship"]);
    expect(done.code).toBe(0);
    expect(done.stdout).toMatch(/^shipping\s+PRODUCTION\s+weight 0%\s+v2 → v2/);
    expect((await rollgate(["promote", "shipping", "--to", "moon"])).code).toBe(2);
  });

  it("unknown rollout: exit 1 with not_found", async () => {
    const r = await rollgate(["pause", "ghost"]);
    expect(r).toMatchObject({ code: 1, stdout: "" });
    expect(r.stderr).toBe('rollgate pause: not_found: rollout "ghost" not found\n');
  });
});

describe("usage and connection", () => {
  it.each([
    [["--bogus"], "unknown option"],
    [["frobnicate"], "unknown command"],
    [["get"], "missing required argument"],
    [["list", "--output", "xml"], "xml"],
    [["route", "only-name"], "missing required argument"],
    [["--server", "ftp://example.com", "list"], "must be http"],
  ])("%j exits 2", async (args, message) => {
    const r = await runCli(args);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(message);
  });

  it("--help exits 0 and lists every command", async () => {
    const r = await runCli(["--help"]);
    expect(r.code).toBe(0);
    for (const c of ["serve", "apply", "get", "list", "status", "watch", "promote", "rollback", "pause", "resume", "halt", "set-weight", "feature", "override", "route", "events"]) {
      expect(r.stdout).toMatch(new RegExp(`^  ${c}\\b`, "m"));
    }
  });

  it("--version prints the package version and exits 0", async () => {
    const { version } = JSON.parse(readFileSync(join(repoRoot, "package.json"), "utf8")) as { version: string };
    for (const flag of ["--version", "-V"]) expect(await runCli([flag])).toMatchObject({ code: 0, stdout: `${version}\n`, stderr: "" });
  });

  it("a command's --help lists the global options too", async () => {
    for (const c of ["status", "promote", "events", "apply"]) {
      const r = await runCli([c, "--help"]);
      expect(r.code).toBe(0);
      const global = r.stdout.slice(r.stdout.indexOf("Global Options:"));
      expect(global).toMatch(/^Global Options:$/m);
      for (const o of [/^  --server <url> .*\n.*env:\s+ROLLGATE_SERVER/m, /^  --token <token>\s+bearer token \(env: ROLLGATE_TOKEN\)$/m, /^  -o, --output <format>/m]) {
        expect({ c, help: global }).toEqual({ c, help: expect.stringMatching(o) });
      }
    }
  });

  it("an unreachable server exits 1 and says so", async () => {
    const probe = await startTestServer();
    const url = probe.url;
    await probe.stop();
    const r = await runCli(["--server", url, "list"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("rollgate list: unavailable:");
  });

  it("ROLLGATE_SERVER and host:port without a scheme work", async () => {
    await create("env-server");
    const r = await runCli(["get", "env-server", "-o", "json"], { env: { ROLLGATE_SERVER: server.address } });
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ name: "env-server" });
  });
});

describe("--token and --tls", () => {
  const tmp = tempDir();
  let secured: TestServer;
  let tls: TestServer;
  let caFile: string;
  beforeAll(async () => {
    secured = await startTestServer({}, { tokens: TEST_TOKENS });
    const key = join(tmp.dir, "key.pem");
    caFile = join(tmp.dir, "cert.pem");
    const openssl = await new Promise<number | null>((resolve) => {
      const p = spawn("openssl", [
        "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-keyout", key, "-out", caFile, "-days", "1", "-subj", "/CN=localhost",
        "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
      ], { stdio: "ignore" });
      p.on("close", resolve);
    });
    expect(openssl, "openssl makes the throwaway certificate").toBe(0);
    tls = await startTestServer({ tlsCert: caFile, tlsKey: key });
  });
  afterAll(async () => {
    await secured.stop();
    await tls.stop();
    tmp.cleanup();
  });

  it("sends --token (or ROLLGATE_TOKEN) as a bearer token; without one the server refuses with exit 1", async () => {
    const created = await runCli(["--server", secured.url, "--token", "operator-token-0123456789", "apply", "-f", "-"], {
      stdin: "name: guarded\nstableVersion: a\ncanaryVersion: b\n",
    });
    expect(created).toMatchObject({ code: 0, stdout: "rollout/guarded created (version 1)\n" });
    const asReader = await runCli(["--server", secured.url, "get", "guarded", "-o", "json"], { env: { ROLLGATE_TOKEN: "reader-token-01234567890" } });
    expect(JSON.parse(asReader.stdout)).toMatchObject({ createdBy: "deployer" });
    const denied = await runCli(["--server", secured.url, "--token", "reader-token-01234567890", "halt", "guarded"]);
    expect(denied.code).toBe(1);
    expect(denied.stderr).toContain("permission_denied");
    const anonymous = await runCli(["--server", secured.url, "list"]);
    expect(anonymous.code).toBe(1);
    expect(anonymous.stderr).toContain("unauthenticated");
  });

  it("--tls talks TLS to host:port (and an https:// server implies it)", async () => {
    const env = { NODE_EXTRA_CA_CERTS: caFile };
    const hostPort = tls.address;
    const viaFlag = await runCli(["--server", hostPort, "--tls", "apply", "-f", "-"], { env, stdin: "name: secret\nstableVersion: a\ncanaryVersion: b\n" });
    expect(viaFlag).toMatchObject({ code: 0, stdout: "rollout/secret created (version 1)\n" });
    const viaUrl = await runCli(["--server", `https://${hostPort}`, "get", "secret", "-o", "json"], { env });
    expect(JSON.parse(viaUrl.stdout)).toMatchObject({ name: "secret" });
    const plain = await runCli(["--server", hostPort, "list"], { env });
    expect(plain.code).toBe(1);
  });
});
