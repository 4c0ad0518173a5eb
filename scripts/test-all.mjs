#!/usr/bin/env node
// `npm test`: builds, then runs every suite — vitest (domain, service, end to end, TypeScript
// client), the Go client's `go test`, the Python client's pytest (in .venv, created on first
// use), and "artifacts" (scripts/test-artifacts.mjs: the npm tarball, the Python wheel and sdist
// and the Go module, each installed into an empty directory and running its README's quick
// start against a live server). Each suite announces itself and streams its progress as it runs;
// the run ends with one plain line "N passed, N failed, N skipped" counted across all of them,
// also written to .cache/test-summary.txt for .ci/run.
import { spawn } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("..", import.meta.url));
const cache = join(root, ".cache");
mkdirSync(cache, { recursive: true });
const only = process.argv.slice(2); // e.g. `npm test -- go python artifacts`
const want = (s) => only.length === 0 || only.includes(s);
const started = Date.now();
const elapsed = () => `${((Date.now() - started) / 1000).toFixed(0)}s`;

/**
 * Runs a command with its output going straight to ours; `onLine`, when given, receives each
 * stdout line instead (to filter or parse as it arrives). Resolves with true on exit 0.
 */
function run(name, cmd, args, opts = {}) {
  console.log(`\n=== [${elapsed()}] ${name}: ${cmd} ${args.join(" ")}`);
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { cwd: opts.cwd ?? root, env: { ...process.env, ...opts.env }, stdio: ["ignore", opts.onLine ? "pipe" : "inherit", "inherit"] });
    if (opts.onLine) createInterface({ input: child.stdout }).on("line", opts.onLine);
    child.on("error", (e) => {
      console.log(`${cmd}: ${e.message}`);
      resolve(false);
    });
    child.on("close", (code) => resolve(code === 0));
  });
}

const results = [];
function record(suite, counts, ok) {
  let { passed = 0, failed = 0, skipped = 0 } = counts;
  // A suite that crashed before reporting counts as one failure, never as silence.
  if (!ok && failed === 0) failed = 1;
  results.push({ suite, passed, failed, skipped });
  console.log(`=== [${elapsed()}] ${suite}: ${passed} passed, ${failed} failed, ${skipped} skipped`);
}

async function vitest() {
  const out = join(cache, "vitest.json");
  rmSync(out, { force: true });
  const ok = await run("vitest", "npx", ["vitest", "run", "--reporter=default", "--reporter=json", `--outputFile.json=${out}`]);
  const counts = { passed: 0, failed: 0, skipped: 0 };
  if (existsSync(out)) {
    const j = JSON.parse(readFileSync(out, "utf8"));
    counts.passed = j.numPassedTests;
    counts.failed = j.numFailedTests + (j.numRuntimeErrorTestSuites ?? 0);
    counts.skipped = (j.numPendingTests ?? 0) + (j.numTodoTests ?? 0);
    // A suite that failed to load has no tests to count: make it visible.
    counts.failed += j.testResults.filter((t) => t.status === "failed" && t.assertionResults.length === 0).length;
  }
  record("vitest", counts, ok);
}

async function goTest() {
  // `go test -json` streamed event by event: the RUN/PASS/FAIL lines and every package line
  // are printed as they happen, and a failing test's full output is printed when it fails.
  const raw = [];
  const held = new Map(); // test -> its output lines, printed only if it fails
  const counts = { passed: 0, failed: 0, skipped: 0 };
  const ok = await run("go test", "go", ["test", "-count=1", "-json", "./..."], {
    cwd: join(root, "clients/go"),
    onLine(line) {
      raw.push(line);
      if (!line.startsWith("{")) return console.log(line);
      const e = JSON.parse(line);
      if (e.Test === undefined) {
        if (e.Action === "output") process.stdout.write(e.Output);
        return;
      }
      const key = `${e.Package} ${e.Test}`;
      if (e.Action === "output") {
        if (/^\s*(=== RUN|--- (PASS|SKIP))/.test(e.Output)) process.stdout.write(e.Output);
        else if (/^\s*--- FAIL/.test(e.Output)) {
          process.stdout.write((held.get(key) ?? []).join("") + e.Output);
          held.delete(key);
        } else {
          const lines = held.get(key) ?? [];
          lines.push(e.Output);
          held.set(key, lines);
        }
        return;
      }
      if (e.Action === "pass") counts.passed++;
      if (e.Action === "fail") counts.failed++;
      if (e.Action === "skip") counts.skipped++;
      if (e.Action === "pass" || e.Action === "skip") held.delete(key);
    },
  });
  writeFileSync(join(cache, "go-test.json"), raw.join("\n") + "\n");
  record("go", counts, ok);
}

async function python() {
  const venv = join(root, ".venv");
  const py = join(venv, "bin", "python");
  let ok = true;
  if (!existsSync(py)) ok = await run("python venv", "python3", ["-m", "venv", venv]);
  const stamp = join(venv, ".rollgate-installed");
  // `build` and the build backend make the wheel and sdist for the artifacts suite.
  const pyproject = readFileSync(join(root, "clients/python/pyproject.toml"), "utf8");
  const backend = JSON.parse(/^requires = (\[.*\])$/m.exec(pyproject)?.[1] ?? "[]");
  const install = ["-m", "pip", "install", "--progress-bar", "off", "-e", "clients/python[test]", "build", ...backend];
  const want = pyproject + install.join(" ");
  if (ok && (!existsSync(stamp) || readFileSync(stamp, "utf8") !== want)) {
    ok = await run("pip install", py, install);
    if (ok) writeFileSync(stamp, want);
  }
  return ok;
}

async function pytest(venvOk) {
  const xml = join(cache, "pytest.xml");
  rmSync(xml, { force: true });
  const py = join(root, ".venv", "bin", "python");
  const ok = venvOk && (await run("pytest", py, ["-m", "pytest", "-v", "clients/python/tests", `--junitxml=${xml}`]));
  const counts = { passed: 0, failed: 0, skipped: 0 };
  if (existsSync(xml)) {
    const suite = /<testsuite [^>]*>/.exec(readFileSync(xml, "utf8"))?.[0] ?? "";
    const n = (k) => Number(new RegExp(`${k}="(\\d+)"`).exec(suite)?.[1] ?? 0);
    counts.failed = n("failures") + n("errors");
    counts.skipped = n("skipped");
    counts.passed = n("tests") - counts.failed - counts.skipped;
  }
  record("python", counts, ok);
}

async function artifacts() {
  const out = join(cache, "artifacts.json");
  rmSync(out, { force: true });
  const ok = await run("artifacts", process.execPath, [join(root, "scripts/test-artifacts.mjs"), out]);
  const counts = existsSync(out) ? JSON.parse(readFileSync(out, "utf8")) : {};
  record("artifacts", counts, ok);
}

const hasGo = existsSync(join(root, "clients/go/go.mod"));
const hasPython = existsSync(join(root, "clients/python/pyproject.toml"));
console.log(`=== rollgate tests: build, then ${["ts", "go", "python", "artifacts"].filter(want).join(", ")}`);
if (!(await run("build", "npx", ["tsc", "-b"]))) {
  record("build", { failed: 1 }, false);
} else {
  // The venv first: vitest runs the README's Python snippets with it, and pytest and the
  // artifacts suite need it too.
  const venvOk = hasPython ? await python() : false;
  if (want("ts")) await vitest();
  if (want("go") && hasGo) await goTest();
  if (want("python") && hasPython) await pytest(venvOk);
  if (want("artifacts")) {
    if (venvOk || !hasPython) await artifacts();
    else record("artifacts", { failed: 1 }, false);
  }
}

const sum = (k) => results.reduce((a, r) => a + r[k], 0);
console.log(`\n=== summary (${elapsed()})`);
for (const r of results) console.log(`${r.suite}: ${r.passed} passed, ${r.failed} failed, ${r.skipped} skipped`);
const line = `${sum("passed")} passed, ${sum("failed")} failed, ${sum("skipped")} skipped`;
writeFileSync(join(cache, "test-summary.txt"), line + "\n");
console.log(line);
process.exit(sum("failed") === 0 ? 0 : 1);
