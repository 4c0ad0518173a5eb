#!/usr/bin/env node
// The clients as a user gets them: builds each distributable artifact — the npm tarball
// (`npm pack` of clients/typescript), the Python wheel and sdist (`python -m build`), the Go
// module (used through a `replace` directive) — installs each into an empty temporary directory,
// and runs the quick start of that client's README, taken from the README itself, against a live
// server (`node dist/src/cli/main.js serve --listen 127.0.0.1:0`). Run by `npm test` (suite
// "artifacts"); `node scripts/test-artifacts.mjs` alone needs the server built (`npx tsc -b`)
// and the repository's .venv (`npm test -- python` creates it).
//
// Prints "--- PASS: name" / "--- FAIL: name" per check as it finishes, and writes
// {passed, failed, skipped, checks} to .cache/artifacts.json (or the path in argv[2]).
import { spawn } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("..", import.meta.url));
const out = process.argv[2] ?? join(root, ".cache", "artifacts.json");
const tmp = mkdtempSync(join(tmpdir(), "rollgate-artifacts-"));
const venvPython = join(root, ".venv", "bin", "python");
const README_URL = "http://127.0.0.1:8080";

/** Runs a command, streaming its output with a prefix; resolves with its output, rejects on failure. */
function sh(cmd, args, opts = {}) {
  return new Promise((resolve, reject) => {
    console.log(`    $ ${cmd} ${args.join(" ")}${opts.cwd ? `   (in ${opts.cwd})` : ""}`);
    const child = spawn(cmd, args, { cwd: opts.cwd ?? root, env: { ...process.env, ...opts.env }, stdio: ["ignore", "pipe", "pipe"] });
    let text = "";
    for (const s of [child.stdout, child.stderr]) {
      createInterface({ input: s }).on("line", (line) => {
        text += line + "\n";
        if (!opts.quiet) console.log(`      ${line}`);
      });
    }
    child.on("error", reject);
    child.on("close", (code) => (code === 0 ? resolve(text) : reject(new Error(`${cmd} ${args.join(" ")} exited ${code}\n${opts.quiet ? text : ""}`))));
  });
}

/** Starts the server on 127.0.0.1:0 with a fresh database; resolves once it logs "ready". */
function startServer() {
  const main = join(root, "dist", "src", "cli", "main.js");
  if (!existsSync(main)) throw new Error(`${main} missing: build the server first (npx tsc -b)`);
  const child = spawn(process.execPath, [main, "serve", "--listen", "127.0.0.1:0", "--db", join(tmp, "server", "rollgate.db")], {
    env: { ...process.env, LOG_LEVEL: "info" },
    stdio: ["ignore", "pipe", "inherit"],
  });
  return new Promise((resolve, reject) => {
    let port;
    const timer = setTimeout(() => reject(new Error("the server did not log ready within 60 s")), 60_000);
    createInterface({ input: child.stdout }).on("line", (line) => {
      let e;
      try {
        e = JSON.parse(line);
      } catch {
        return;
      }
      if (e.msg === "listening") port = e.port;
      if (e.msg === "ready" && port !== undefined) {
        clearTimeout(timer);
        resolve({ child, url: `http://127.0.0.1:${port}` });
      }
    });
    child.on("exit", (code) => reject(new Error(`the server exited (${code}) before it was ready`)));
  });
}

async function connectJson(url, procedure, body) {
  const res = await fetch(`${url}/${procedure}`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
  const json = await res.json();
  if (!res.ok) throw new Error(`${procedure}: ${res.status} ${JSON.stringify(json)}`);
  return json;
}

/** Returns rollgate_outcomes_total summed over the variants of one rollout. */
async function outcomesRecorded(url, rollout) {
  const text = await (await fetch(`${url}/metrics`)).text();
  let n = 0;
  for (const line of text.split("\n")) {
    if (line.startsWith("rollgate_outcomes_total{") && line.includes(`rollout="${rollout}"`)) n += Number(line.slice(line.lastIndexOf(" ") + 1));
  }
  return n;
}

/** Returns the first ```lang block of a client README, pointed at the live server. */
function quickStart(readme, lang, url) {
  const text = readFileSync(join(root, readme), "utf8");
  const m = new RegExp("```" + lang + "\\n([\\s\\S]*?)```").exec(text);
  if (m === null) throw new Error(`${readme} has no \`\`\`${lang} block`);
  if (!m[1].includes(README_URL)) throw new Error(`${readme}'s quick start does not use ${README_URL}`);
  return m[1].replaceAll(README_URL, url);
}

const checks = [];
async function check(name, fn) {
  const started = Date.now();
  console.log(`=== RUN   ${name}`);
  try {
    await fn();
    checks.push({ name, ok: true });
    console.log(`--- PASS: ${name} (${((Date.now() - started) / 1000).toFixed(1)}s)`);
  } catch (e) {
    checks.push({ name, ok: false, error: String(e?.stack ?? e) });
    console.log(`--- FAIL: ${name} (${((Date.now() - started) / 1000).toFixed(1)}s)\n${String(e?.message ?? e).replace(/^/gm, "      ")}`);
  }
}

/** Runs a quick start and checks that the server recorded exactly the one outcome it reports. */
async function runsQuickStart(url, run) {
  const before = await outcomesRecorded(url, "checkout");
  await run();
  const after = await outcomesRecorded(url, "checkout");
  if (after !== before + 1) throw new Error(`the quick start should have recorded 1 outcome of checkout; the server counted ${after - before}`);
}

let server;
try {
  server = await startServer();
  const { url } = server;
  console.log(`    server at ${url}`);
  // The quick starts route "checkout": the README's first rollout.
  await connectJson(url, "rollgate.v1.RolloutService/CreateRollout", {
    rollout: { name: "checkout", stableVersion: "v1.4.2", canaryVersion: "v1.5.0" },
    reason: "artifact quick starts",
  });

  // --- npm ------------------------------------------------------------------------------------
  let tarball;
  await check("npm pack of clients/typescript", async () => {
    const dest = join(tmp, "npm-pack");
    mkdirSync(dest);
    const json = await sh("npm", ["pack", "--json", "--pack-destination", dest], { cwd: join(root, "clients/typescript"), quiet: true });
    const [info] = JSON.parse(json.slice(json.indexOf("[")));
    const files = info.files.map((f) => f.path);
    for (const want of ["package.json", "README.md", "dist/index.js", "dist/index.d.ts", "dist/web.js", "dist/gen/rollgate/v1/decision_service_pb.js"]) {
      if (!files.includes(want)) throw new Error(`the tarball lacks ${want}`);
    }
    const stray = files.filter((f) => /tsbuildinfo$|^test\/|node_modules/.test(f));
    if (stray.length > 0) throw new Error(`the tarball carries ${stray.join(", ")}`);
    if (info.name !== "rollgate-client") throw new Error(`packed as ${info.name}`);
    tarball = join(dest, info.filename);
    console.log(`    ${info.filename}: ${files.length} files, ${info.size} bytes`);
  });
  await check("npm: the tarball installs into an empty directory and runs the README quick start", async () => {
    if (tarball === undefined) throw new Error("no tarball (npm pack failed)");
    const app = join(tmp, "npm-app");
    mkdirSync(app);
    writeFileSync(join(app, "package.json"), JSON.stringify({ name: "quickstart", private: true, type: "module" }));
    await sh("npm", ["install", "--no-audit", "--no-fund", "--prefer-offline", tarball], { cwd: app });
    writeFileSync(join(app, "quickstart.mjs"), `const userId = "user-42";\n${quickStart("clients/typescript/README.md", "ts", url)}`);
    await runsQuickStart(url, () => sh(process.execPath, ["quickstart.mjs"], { cwd: app }));
  });

  // --- Python ---------------------------------------------------------------------------------
  const pyDist = join(tmp, "py-dist");
  // Wheels of the build backend and of the client's dependencies, downloaded once into the
  // cache and installed from there (offline), so a run does not fetch them again.
  const wheels = join(root, ".cache", "py-wheels");
  const offline = { PIP_NO_INDEX: "1", PIP_FIND_LINKS: wheels };
  /** Puts wheels satisfying `reqs` into the cache: from the cache itself if it can, else online. */
  const fillCache = async (reqs) => {
    const args = ["-m", "pip", "download", "--disable-pip-version-check", "--progress-bar", "off", "--dest", wheels, ...reqs];
    try {
      await sh(venvPython, args, { quiet: true, env: offline });
    } catch {
      await sh(venvPython, args, { quiet: true });
    }
  };
  await check("python -m build: wheel and sdist of clients/python", async () => {
    if (!existsSync(venvPython)) throw new Error(`${venvPython} missing: npm test -- python creates it`);
    const pyproject = readFileSync(join(root, "clients/python/pyproject.toml"), "utf8");
    const backend = JSON.parse(/^requires = (\[.*\])$/m.exec(pyproject)[1]);
    await fillCache(backend);
    // --no-isolation: the backend comes from .venv (npm test installs it there), which saves
    // two throwaway build environments per run; the sdist install below builds in isolation.
    await sh(venvPython, ["-m", "build", "--no-isolation", "--outdir", pyDist, join(root, "clients/python")], { quiet: true, env: offline });
    const built = readdirSync(pyDist).sort();
    const want = ["rollgate_client-0.1.0-py3-none-any.whl", "rollgate_client-0.1.0.tar.gz"];
    if (JSON.stringify(built) !== JSON.stringify(want)) throw new Error(`built ${built.join(", ")}; want ${want.join(", ")}`);
    const listing = await sh(venvPython, ["-c", "import sys, zipfile; print('\\n'.join(zipfile.ZipFile(sys.argv[1]).namelist()))", join(pyDist, want[0])], { quiet: true });
    for (const f of ["rollgate/__init__.py", "rollgate/py.typed", "rollgate/v1/decision_service_pb2.py", "rollgate/v1/decision_service_pb2_grpc.py", "rollgate/v1/decision_service_pb2.pyi"]) {
      if (!listing.split("\n").includes(f)) throw new Error(`the wheel lacks ${f}`);
    }
    // The dependencies the wheel declares, into the cache (a no-op once they are there).
    await fillCache([join(pyDist, want[0])]);
    rmSync(join(wheels, want[0]), { force: true });
    console.log(`    ${built.join(", ")}`);
  });
  for (const [kind, file] of [["wheel", "rollgate_client-0.1.0-py3-none-any.whl"], ["sdist", "rollgate_client-0.1.0.tar.gz"]]) {
    await check(`python: the ${kind} installs into an empty venv and runs the README quick start`, async () => {
      const artifact = join(pyDist, file);
      if (!existsSync(artifact)) throw new Error(`no ${kind} (python -m build failed)`);
      const app = join(tmp, `py-${kind}`);
      mkdirSync(app);
      // A venv without its own pip, installed into by .venv's pip (--python): saves ensurepip.
      await sh("python3", ["-m", "venv", "--without-pip", join(app, "venv")]);
      const py = join(app, "venv", "bin", "python");
      await sh(venvPython, ["-m", "pip", "--python", py, "install", "--disable-pip-version-check", "--progress-bar", "off", artifact], { cwd: app, env: offline });
      const listed = await sh(py, ["-c", "import importlib.metadata as m; print(m.version('rollgate-client'))"], { cwd: app, quiet: true });
      if (listed.trim() !== "0.1.0") throw new Error(`rollgate-client ${listed.trim()} installed, want 0.1.0`);
      // `import os` is prepended in case the README's block leaves it out.
      writeFileSync(join(app, "quickstart.py"), `import os\nuser_id = "user-42"\n${quickStart("clients/python/README.md", "python", url)}`);
      await runsQuickStart(url, () => sh(py, ["quickstart.py"], { cwd: app }));
    });
  }

  // --- Go ---------------------------------------------------------------------------------------
  await check("go: a fresh module requires the client through a replace directive and runs the README quick start", async () => {
    const app = join(tmp, "go-app");
    mkdirSync(app);
    const mod = readFileSync(join(root, "clients/go/go.mod"), "utf8");
    const path = /^module (\S+)/m.exec(mod)[1];
    const goVersion = /^go (\S+)/m.exec(mod)[1];
    writeFileSync(join(app, "go.mod"), `module quickstart\n\ngo ${goVersion}\n\nrequire ${path} v0.0.0\n\nreplace ${path} => ${join(root, "clients/go")}\n`);
    const body = quickStart("clients/go/README.md", "go", url);
    const tail = `\t_ = h\n\tif err != nil {\n\t\tpanic(err)\n\t}\n\tfmt.Println("routed to", r.Version)\n`;
    const code = `ctx := context.Background()\nuserID := "user-42"\n${body}${tail}`;
    const imports = ["context", "errors", "fmt", "log", "os", "time"].filter((p) => new RegExp(`\\b${p}\\.`).test(code));
    const src = `package main\n\nimport (\n${imports.map((p) => `\t"${p}"\n`).join("")}\n\trollgate "${path}"\n)\n\nfunc main() {\n${code.replace(/^/gm, "\t")}\n}\n`;
    writeFileSync(join(app, "main.go"), src);
    const env = { GOFLAGS: "-mod=mod" };
    await sh("go", ["mod", "tidy"], { cwd: app, env });
    await runsQuickStart(url, () => sh("go", ["run", "."], { cwd: app, env }));
  });
} catch (e) {
  checks.push({ name: "artifacts setup", ok: false, error: String(e?.stack ?? e) });
  console.log(`--- FAIL: artifacts setup\n      ${e?.message ?? e}`);
} finally {
  server?.child.kill("SIGTERM");
  rmSync(tmp, { recursive: true, force: true });
}

const passed = checks.filter((c) => c.ok).length;
const failed = checks.length - passed;
mkdirSync(join(out, ".."), { recursive: true });
writeFileSync(out, JSON.stringify({ passed, failed, skipped: 0, checks }, null, 2));
console.log(`=== artifacts: ${passed} passed, ${failed} failed`);
process.exit(failed === 0 ? 0 : 1);
