// vitest globalSetup: makes sure the external tools the end-to-end tests drive are on the
// machine before any test runs, so that a first install on a fresh machine (grpcurl through
// `go install`, which downloads its modules: a minute or more with a cold Go cache) is not
// charged to one test's timeout. A failed install is only reported here; the tests that need
// the tool then fail with the install error.
import { grpcurlPath } from "../helpers/grpcurl.js";

export default async function setup(): Promise<void> {
  try {
    await grpcurlPath();
  } catch (e) {
    process.stderr.write(`test setup: ${(e as Error).message}\n`);
  }
}
