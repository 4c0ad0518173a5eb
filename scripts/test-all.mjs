#!/usr/bin/env node
// `npm test`: builds, then runs every suite — vitest (domain, service, end to end, TypeScript
// client), the Go client's `go test` and the Python client's pytest (in .venv, created on first
// use) — and ends with one plain line "N passed, N failed" counted across all of them. The
// same line is written to .cache/test-summary.txt for .ci/run.
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("..", import.meta.url));
const cache = join(root, ".cache");
mkdirSync(cache, { recursive: true });
const only = process.argv.slice(2); // e.g. `npm test -- go python`

const results = [];
function run(name, cmd, args, opts = {}) {
  console.log(`\n=== ${name}: ${cmd} ${args.join(" ")}`);
  const r = spawnSync(cmd, args, { stdio: "inherit", cwd: root, ...opts });
  return r.status === 0;
}
function record(suite, passed, failed, ok) {
  // A suite that crashed before reporting counts as one failure, never as silence.
  if (!ok && failed === 0) failed = 1;
  results.push({ suite, passed, failed });
}
const want = (s) => only.length === 0 || only.includes(s);

if (!run("build", "npx", ["tsc", "-b"])) {
  record("build", 0, 1, false);
} else {
  if (want("ts")) {
    const out = join(cache, "vitest.json");
    const ok = run("vitest", "npx", ["vitest", "run", "--reporter=default", "--reporter=json", `--outputFile.json=${out}`]);
    let passed = 0, failed = 0;
    if (existsSync(out)) {
      const j = JSON.parse(readFileSync(out, "utf8"));
      passed = j.numPassedTests;
      failed = j.numFailedTests + (j.numRuntimeErrorTestSuites ?? 0);
      // A suite that failed to load has no tests to count: make it visible.
      failed += j.testResults.filter((t) => t.status === "failed" && t.assertionResults.length === 0).length;
    }
    record("vitest", passed, failed, ok);
  }
  if (want("go") && existsSync(join(root, "clients/go/go.mod"))) {
    const out = join(cache, "go-test.json");
    const r = spawnSync("go", ["test", "-count=1", "-json", "./..."], { cwd: join(root, "clients/go"), encoding: "utf8", maxBuffer: 256 * 1024 * 1024, stdio: ["ignore", "pipe", "inherit"] });
    writeFileSync(out, r.stdout ?? "");
    let passed = 0, failed = 0;
    for (const line of (r.stdout ?? "").split("\n")) {
      if (!line.startsWith("{")) continue;
      const e = JSON.parse(line);
      if (e.Action === "output" && e.Test !== undefined && /^\s*(---|===) /.test(e.Output)) process.stdout.write(e.Output);
      if (e.Test === undefined) { if (e.Action === "output") process.stdout.write(e.Output); continue; }
      if (e.Action === "pass") passed++;
      if (e.Action === "fail") failed++;
    }
    console.log(`\n=== go test: ${passed} passed, ${failed} failed`);
    record("go", passed, failed, r.status === 0);
  }
  if (want("python") && existsSync(join(root, "clients/python/pyproject.toml"))) {
    const venv = join(root, ".venv");
    const py = join(venv, "bin", "python");
    let ok = true;
    if (!existsSync(py)) ok = run("python venv", "python3", ["-m", "venv", venv]);
    const stamp = join(venv, ".rollgate-installed");
    const pyproject = readFileSync(join(root, "clients/python/pyproject.toml"), "utf8");
    if (ok && (!existsSync(stamp) || readFileSync(stamp, "utf8") !== pyproject)) {
      ok = run("pip install", py, ["-m", "pip", "install", "--quiet", "-e", "clients/python[test]"]);
      if (ok) writeFileSync(stamp, pyproject);
    }
    const xml = join(cache, "pytest.xml");
    if (ok) ok = run("pytest", py, ["-m", "pytest", "-q", "clients/python/tests", `--junitxml=${xml}`]);
    let passed = 0, failed = 0;
    if (existsSync(xml)) {
      const suite = /<testsuite [^>]*>/.exec(readFileSync(xml, "utf8"))?.[0] ?? "";
      const n = (k) => Number(new RegExp(`${k}="(\\d+)"`).exec(suite)?.[1] ?? 0);
      failed = n("failures") + n("errors");
      passed = n("tests") - failed - n("skipped");
    }
    record("python", passed, failed, ok);
  }
}

const passed = results.reduce((a, r) => a + r.passed, 0);
const failed = results.reduce((a, r) => a + r.failed, 0);
console.log("\n=== summary");
for (const r of results) console.log(`${r.suite}: ${r.passed} passed, ${r.failed} failed`);
const line = `${passed} passed, ${failed} failed`;
writeFileSync(join(cache, "test-summary.txt"), line + "\n");
console.log(line);
process.exit(failed === 0 ? 0 : 1);
