import { describe, expect, it } from "vitest";
import { manualClock } from "../../src/domain/clock.js";

describe("manualClock", () => {
  it("moves only when told", () => {
    const c = manualClock(1000);
    expect(c.now()).toBe(1000);
    c.advance(500);
    expect(c.now()).toBe(1500);
    c.set(42);
    expect(c.now()).toBe(42);
  });
});
