#!/usr/bin/env node
// Fails when gen/ is stale against proto/: regenerates into a temporary directory with the same
// buf template and compares file by file.
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("..", import.meta.url));
const tmp = mkdtempSync(join(tmpdir(), "rollgate-gen-"));
const template = readFileSync(join(root, "buf.gen.yaml"), "utf8").replace(/out: gen\b/g, `out: ${join(tmp, "gen")}`);
writeFileSync(join(tmp, "buf.gen.yaml"), template);
const env = { ...process.env, PATH: `${join(root, "node_modules/.bin")}:${process.env.PATH}` };
const r = spawnSync("buf", ["generate", "--template", join(tmp, "buf.gen.yaml")], { cwd: root, env, stdio: "inherit" });
if (r.status !== 0) process.exit(r.status ?? 1);

const list = (dir) =>
  readdirSync(dir).flatMap((f) => (statSync(join(dir, f)).isDirectory() ? list(join(dir, f)) : [join(dir, f)]));
const want = new Map(list(join(tmp, "gen")).map((f) => [relative(join(tmp, "gen"), f), readFileSync(f, "utf8")]));
const have = new Map(list(join(root, "gen")).map((f) => [relative(join(root, "gen"), f), readFileSync(f, "utf8")]));
rmSync(tmp, { recursive: true, force: true });
const stale = [...new Set([...want.keys(), ...have.keys()])].filter((f) => want.get(f) !== have.get(f));
if (stale.length > 0) {
  console.error(`gen/ is stale against proto/ — run \`npm run generate\` and commit:\n  ${stale.join("\n  ")}`);
  process.exit(1);
}
console.log(`gen/ is fresh (${have.size} files)`);
