// Profiling rollgate under a load: the server runs with `node --cpu-prof`, and only the
// samples taken while the load ran are summarised.
import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { monotonicUs, summarize } from "./cpuprofile.mjs";
import { startRollgate } from "./rollgate.mjs";

/**
 * Starts rollgate with --cpu-prof, runs `setup(server)` then `load(server)`, stops it (the
 * profile is written on exit) and returns the summary of the samples taken during `load`,
 * plus whatever `load` returned.
 */
export async function profileRollgate({ setup, load, top = 15, fastPath = true }) {
  const dir = mkdtempSync(join(tmpdir(), "rollgate-prof-"));
  const rg = await startRollgate({ cpuProfDir: dir, fastPath });
  let window;
  let loadResult;
  try {
    await setup(rg);
    const fromUs = monotonicUs();
    loadResult = await load(rg);
    window = { fromUs, toUs: monotonicUs() };
  } finally {
    await rg.stop();
  }
  try {
    const file = readdirSync(dir).find((f) => f.endsWith(".cpuprofile"));
    if (file === undefined) throw new Error("no .cpuprofile written");
    return { ...summarize(join(dir, file), top, window), loadResult };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Returns markdown lines for a profile summary: areas, then the top functions by self time. */
export function profileMarkdown(title, s, { areas = 8 } = {}) {
  const lines = [`**${title}** — ${Math.round(s.busyMs)} ms of busy CPU sampled during the load.`, ""];
  lines.push("| area of code | self time | share |", "|---|---:|---:|");
  for (const a of s.areas.slice(0, areas)) lines.push(`| ${a.name} | ${a.ms.toFixed(0)} ms | ${a.pct.toFixed(1)}% |`);
  lines.push("", "| function (self time) | self time | share |", "|---|---:|---:|");
  for (const f of s.functions) lines.push(`| \`${f.name}\` | ${f.ms.toFixed(0)} ms | ${f.pct.toFixed(1)}% |`);
  return lines;
}
