import { DomainError } from "../domain/errors.js";
import type { Commit } from "./store.js";

/** What a commit requires of the stored version of the rollout it changes (see `Commit.expectedVersion`). */
export interface VersionRequirement {
  readonly name: string;
  /** The stored version must be exactly this; 0: the rollout must not exist. */
  readonly exact?: number;
  /** The stored version must be below this (or the rollout absent): a put never overwrites its own or a newer version. */
  readonly below?: number;
  /** The rollout must exist (a remove without an expected version). */
  readonly exists?: true;
}

/** Returns what a commit requires of its rollout's stored version, or undefined for an events-only commit. */
export function versionRequirement(change: Commit): VersionRequirement | undefined {
  const name = change.put?.name ?? change.remove;
  if (name === undefined) return undefined;
  if (change.expectedVersion !== undefined) return { name, exact: change.expectedVersion };
  return change.put !== undefined ? { name, below: change.put.version } : { name, exists: true };
}

/**
 * Throws the DomainError for a stored version (undefined: no such rollout) that does not meet
 * the requirement; returns quietly when it does.
 */
export function checkVersion(req: VersionRequirement, stored: number | undefined): void {
  const { name } = req;
  if (req.exact === 0 || (req.below === 1 && stored !== undefined)) {
    if (stored !== undefined) throw new DomainError("already_exists", `rollout "${name}" already exists`);
    return;
  }
  if (stored === undefined) {
    if (req.below !== undefined) return;
    throw new DomainError("not_found", `rollout "${name}" not found`);
  }
  const expected = req.exact ?? (req.below !== undefined && stored >= req.below ? req.below - 1 : undefined);
  if (expected !== undefined && stored !== expected) {
    throw new DomainError("aborted", `rollout "${name}" is at version ${stored}, not the expected ${expected}; re-read it and retry`);
  }
}

/** The refusal of a group-commit change whose `dependsOn` change was refused (see Commit.dependsOn). */
export function dependencyRefused(change: Commit): DomainError {
  const name = change.put?.name ?? change.remove ?? change.events[0]?.rollout ?? "";
  return new DomainError("aborted", `rollout "${name}" changed while this change was being committed; re-read it and retry`);
}
