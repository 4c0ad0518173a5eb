import { execFile, spawnSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { repoRoot, spawnServer, tempDir, type ServerProcess } from "../helpers/servers.js";

/** The Docker image's HEALTHCHECK command (Dockerfile: node scripts/healthcheck.mjs). */
const script = join(repoRoot, "scripts", "healthcheck.mjs");

/** Runs the healthcheck with exactly the given ROLLGATE_* environment. */
function healthcheck(env: Record<string, string>): Promise<{ code: number; stderr: string }> {
  const clean = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("ROLLGATE_")));
  return new Promise((resolve) => {
    execFile(process.execPath, [script], { env: { ...clean, ...env }, timeout: 20_000 }, (err, _stdout, stderr) => {
      resolve({ code: err === null ? 0 : typeof err.code === "number" ? err.code : -1, stderr });
    });
  });
}

const tmp = tempDir("rollgate-healthcheck-");
const ossl = (...args: string[]) => {
  const r = spawnSync("openssl", args, { cwd: tmp.dir, encoding: "utf8" });
  if (r.status !== 0) throw new Error(`openssl ${args.join(" ")}: ${r.stderr}`);
};
const p = (f: string) => join(tmp.dir, f);
const running: ServerProcess[] = [];
let plain: ServerProcess;
let tls: ServerProcess;
let mtls: ServerProcess;

beforeAll(async () => {
  const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1"];
  ossl("req", "-x509", ...ec, "-keyout", p("ca.key"), "-out", p("ca.pem"), "-subj", "/CN=test-ca");
  for (const [name, usage] of [["server", "serverAuth"], ["client", "clientAuth"]] as const) {
    writeFileSync(p(`${name}.ext`), `subjectAltName=DNS:rollgate.example\nextendedKeyUsage=${usage}\n`);
    ossl("req", ...ec.slice(0, -2), "-keyout", p(`${name}.key`), "-out", p(`${name}.csr`), "-subj", `/CN=${name}`);
    ossl("x509", "-req", "-in", p(`${name}.csr`), "-CA", p("ca.pem"), "-CAkey", p("ca.key"), "-set_serial", "1", "-days", "1", "-out", p(`${name}.pem`), "-extfile", p(`${name}.ext`));
  }
  const start = async (name: string, ...extra: string[]) => {
    const s = await spawnServer(["--listen", "127.0.0.1:0", "--db", p(`${name}.db`), ...extra]);
    running.push(s);
    return s;
  };
  [plain, tls, mtls] = await Promise.all([
    start("plain"),
    start("tls", "--tls-cert", p("server.pem"), "--tls-key", p("server.key")),
    start("mtls", "--tls-cert", p("server.pem"), "--tls-key", p("server.key"), "--tls-client-ca", p("ca.pem")),
  ]);
});
afterAll(() => {
  for (const s of running) s.child.kill("SIGKILL");
  tmp.cleanup();
});

describe("the image's healthcheck script", () => {
  it("passes on plain HTTP at the ROLLGATE_LISTEN port (not 8080)", async () => {
    expect(plain.port).not.toBe(8080);
    expect(await healthcheck({ ROLLGATE_LISTEN: `127.0.0.1:${plain.port}` })).toEqual({ code: 0, stderr: "" });
  });

  it("checks a wildcard listen address on loopback", async () => {
    expect((await healthcheck({ ROLLGATE_LISTEN: `0.0.0.0:${plain.port}` })).code).toBe(0);
  });

  it("passes over TLS when ROLLGATE_TLS_CERT is set, whatever name the certificate has", async () => {
    const env = { ROLLGATE_LISTEN: `127.0.0.1:${tls.port}`, ROLLGATE_TLS_CERT: p("server.pem"), ROLLGATE_TLS_KEY: p("server.key") };
    expect(await healthcheck(env)).toEqual({ code: 0, stderr: "" });
  });

  it("fails, saying why, when it speaks plain HTTP to a TLS server", async () => {
    const r = await healthcheck({ ROLLGATE_LISTEN: `127.0.0.1:${tls.port}` });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(new RegExp(`^unhealthy: http://127.0.0.1:${tls.port}/readyz: `));
  });

  it("fails when nothing listens on the port", async () => {
    const r = await healthcheck({ ROLLGATE_LISTEN: "127.0.0.1:1" });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^unhealthy: http:\/\/127.0.0.1:1\/readyz: .*ECONNREFUSED/);
  });

  it("with mTLS, passes with ROLLGATE_HEALTHCHECK_CERT/KEY and fails without them", async () => {
    const env = { ROLLGATE_LISTEN: `127.0.0.1:${mtls.port}`, ROLLGATE_TLS_CERT: p("server.pem"), ROLLGATE_TLS_KEY: p("server.key"), ROLLGATE_TLS_CLIENT_CA: p("ca.pem") };
    expect((await healthcheck(env)).code).toBe(1);
    expect(await healthcheck({ ...env, ROLLGATE_HEALTHCHECK_CERT: p("client.pem"), ROLLGATE_HEALTHCHECK_KEY: p("client.key") })).toEqual({ code: 0, stderr: "" });
  });

  it("refuses a malformed ROLLGATE_LISTEN with the server's own message", async () => {
    const r = await healthcheck({ ROLLGATE_LISTEN: "8080" });
    expect(r).toEqual({ code: 1, stderr: 'unhealthy: --listen/ROLLGATE_LISTEN: "8080" must be host:port, e.g. 127.0.0.1:8080\n' });
  });
});
