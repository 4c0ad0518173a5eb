import { fuzzSuite } from "./fuzz-suite.js";

// The fuzz run, part 2 of 2 (the odd chunks of cases); fuzz.test.ts runs part 1. See fuzz-suite.ts.
fuzzSuite(1, 2);
