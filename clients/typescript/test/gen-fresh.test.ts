import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

const root = fileURLToPath(new URL("../../../", import.meta.url));
const committed = join(root, "clients/typescript/src/gen");

function listFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((f) => (statSync(join(dir, f)).isDirectory() ? listFiles(join(dir, f)) : [join(dir, f)]));
}

describe("generated code", () => {
  it("src/gen is what buf generates from proto/rollgate today (run `npm run generate -w rollgate-client`)", () => {
    const tmp = mkdtempSync(join(tmpdir(), "rollgate-client-gen-"));
    try {
      const template = readFileSync(join(root, "clients/typescript/buf.gen.yaml"), "utf8").replace(
        "out: clients/typescript/src/gen",
        `out: ${join(tmp, "gen")}`,
      );
      expect(template).toContain(join(tmp, "gen"));
      writeFileSync(join(tmp, "buf.gen.yaml"), template);
      const env = { ...process.env, PATH: `${join(root, "node_modules/.bin")}:${process.env.PATH ?? ""}` };
      const r = spawnSync("buf", ["generate", "--template", join(tmp, "buf.gen.yaml"), "--path", "proto/rollgate"], { cwd: root, env, encoding: "utf8" });
      expect(r.stderr).toBe("");
      expect(r.status).toBe(0);
      const want = new Map(listFiles(join(tmp, "gen")).map((f) => [relative(join(tmp, "gen"), f), readFileSync(f, "utf8")]));
      const have = new Map(listFiles(committed).map((f) => [relative(committed, f), readFileSync(f, "utf8")]));
      expect([...have.keys()].sort()).toEqual([...want.keys()].sort());
      for (const [file, text] of want) expect({ file, text: have.get(file) }).toEqual({ file, text });
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
  });
});
