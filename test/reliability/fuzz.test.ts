import { fuzzSuite } from "./fuzz-suite.js";

// The fuzz run, part 1 of 2 (the even chunks of cases), and the batch check's unit tests;
// fuzz-2.test.ts runs part 2, so vitest's two workers share the run. See fuzz-suite.ts.
fuzzSuite(0, 2);
