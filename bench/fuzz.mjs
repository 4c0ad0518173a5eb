#!/usr/bin/env node
// `npm run fuzz [-- --cases N --seed S --seconds T]`: the long fuzz run of
// test/reliability/fuzz.test.ts and fuzz-2.test.ts (its two halves, run side by side; default
// 100,000 cases in all, seed 20261201, no time limit), its
// figures added to bench/FUZZ.md's table of runs (date, commit, command, cases, findings, load).
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { loadavg } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("..", import.meta.url));
const arg = (name, def) => {
  const i = process.argv.indexOf(`--${name}`);
  return i < 0 ? def : process.argv[i + 1];
};
const cases = arg("cases", "100000");
const seed = arg("seed", "20261201");
const seconds = arg("seconds", "0");
const summary = join(root, ".cache", "fuzz-summary.json");
const env = { ...process.env, FUZZ_CASES: cases, FUZZ_SEED: seed, FUZZ_SECONDS: seconds, FUZZ_SUMMARY: summary };
const build = spawnSync("npx", ["tsc", "-b"], { cwd: root, stdio: "inherit" });
if (build.status !== 0) process.exit(1);
const parts = [0, 1].map((p) => `${summary}.part${p}`);
for (const f of parts) rmSync(f, { force: true });
// Both parts at once, one per vitest worker.
const run = spawnSync("npx", ["vitest", "run", "test/reliability/fuzz.test.ts", "test/reliability/fuzz-2.test.ts"], { cwd: root, env, stdio: "inherit" });
const got = parts.filter((f) => existsSync(f)).map((f) => JSON.parse(readFileSync(f, "utf8")));
const codes = {};
for (const g of got) for (const [k, v] of Object.entries(g.codes)) codes[k] = (codes[k] ?? 0) + v;
const s =
  got.length !== parts.length
    ? undefined
    : {
        cases: got.reduce((a, g) => a + g.cases, 0),
        seconds: Math.max(...got.map((g) => g.seconds)),
        findings: got.reduce((a, g) => a + g.findings, 0),
        codes: Object.fromEntries(Object.entries(codes).sort((a, b) => Number(a[0]) - Number(b[0]))),
      };
const commit = spawnSync("git", ["rev-parse", "--short", "HEAD"], { cwd: root, encoding: "utf8" }).stdout.trim();
const file = join(root, "bench", "FUZZ.md");
if (!existsSync(file)) {
  writeFileSync(file, "# Fuzz runs\n\n`npm run fuzz` (test/reliability/fuzz.test.ts and fuzz-2.test.ts, long): every RPC on both serving paths; see the test's header for the properties.\n\n| date | commit | command | cases | seconds | findings | codes | load at the end |\n|---|---|---|---|---|---|---|---|\n");
}
const command = `npm run fuzz -- --cases ${cases} --seed ${seed}${seconds !== "0" ? ` --seconds ${seconds}` : ""}`;
const row = `| ${new Date().toISOString().slice(0, 16).replace("T", " ")} UTC | ${commit} | \`${command}\` | ${s?.cases ?? "?"} | ${s?.seconds ?? "?"} | ${s === undefined ? "run failed" : s.findings} | ${s === undefined ? "" : JSON.stringify(s.codes)} | ${loadavg()[0].toFixed(1)} |`;
// The row goes at the end of the runs table (the first table of the file), not after the sections below it.
const lines = readFileSync(file, "utf8").split("\n");
const head = lines.findIndex((l) => l.startsWith("| date | commit |"));
let end = head + 2;
while (end < lines.length && lines[end].startsWith("|")) end++;
lines.splice(end, 0, row);
writeFileSync(file, lines.join("\n"));
process.exit(run.status ?? 1);
