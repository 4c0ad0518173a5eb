// Per-evaluation cost of a sequential error-rate gate (issue 18), printed, not asserted:
// `node bench/sequential-gate.mjs` after `npx tsc -b` (the same as `node bench/run.mjs --only=sequential`).
import { sequentialCase } from "./cases/sequential.mjs";

await sequentialCase({ rounds: 5 });
