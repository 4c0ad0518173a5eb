// Preloaded into a rollgate server process by the benchmark (node --expose-gc --import):
// on SIGUSR2 it runs a full GC and prints one JSON line {"probe": memoryUsage()} on stdout,
// so the suite can read heap and RSS after garbage is gone. It changes nothing else.
process.on("SIGUSR2", () => {
  globalThis.gc?.();
  globalThis.gc?.();
  const m = process.memoryUsage();
  process.stdout.write(JSON.stringify({ probe: { rss: m.rss, heapUsed: m.heapUsed, heapTotal: m.heapTotal, external: m.external, arrayBuffers: m.arrayBuffers } }) + "\n");
});
