import { readFileSync } from "node:fs";
import { parse as parseYaml } from "yaml";
import type { EventType } from "../domain/audit-chain.js";

/**
 * The outbound notification settings (`--notify FILE` / `ROLLGATE_NOTIFY_FILE`): a YAML or JSON
 * file with a list of webhooks, validated at start. Each webhook says where to POST, which
 * audit events it wants (by type, `*` for all), of which rollouts (names or globs), the secret
 * that signs each body, the body's format, and how long a delivery may be retried.
 */

/** The body format of a webhook: rollgate's JSON event, or a Slack-compatible message (`text` + `blocks`). */
export type NotifyFormat = "json" | "slack";

/** One configured webhook, validated, its secret resolved. */
export interface NotifyWebhook {
  /** Its name in logs and metrics (never the URL, which may hold a credential). */
  readonly name: string;
  readonly url: URL;
  /** Event types it wants; undefined for every type (`*`). */
  readonly events: ReadonlySet<EventType> | undefined;
  /** Rollout names or globs (`*`, `?`) it wants; undefined for every rollout. */
  readonly rollouts: readonly RegExp[] | undefined;
  readonly secret: string;
  readonly format: NotifyFormat;
  /** Longest an attempt may take before it is abandoned and counted as a failure to retry. */
  readonly timeoutMs: number;
  /** How long after its first attempt a delivery is still retried. */
  readonly retryForMs: number;
  /** First retry delay; each next one doubles, up to `backoffMaxMs`, with jitter. */
  readonly backoffInitialMs: number;
  readonly backoffMaxMs: number;
  /** Most deliveries waiting for this webhook; past it the oldest waiting one is dropped. */
  readonly queueSize: number;
}

/** Defaults of the optional webhook settings. */
export const NOTIFY_DEFAULTS = {
  format: "json",
  timeoutMs: 5_000,
  retryForMs: 10 * 60_000,
  backoffInitialMs: 1_000,
  backoffMaxMs: 60_000,
  queueSize: 1_000,
} as const;

/** Most webhooks one file may configure. */
export const MAX_WEBHOOKS = 100;

/** Every audit event type a webhook may ask for: the compiler makes a new type fail until it is listed. */
const EVENT_TYPES: Readonly<Record<EventType, true>> = {
  created: true,
  updated: true,
  deleted: true,
  step_changed: true,
  weight_changed: true,
  promoted: true,
  rolled_back: true,
  halted: true,
  resumed: true,
  paused: true,
  feature_changed: true,
  override_changed: true,
  gate_breach: true,
  decision: true,
};

/** A notification file that is wrong: the message names the file and the field. */
export class NotifyConfigError extends Error {
  override readonly name = "NotifyConfigError";
}

const KEYS = [
  "name",
  "url",
  "events",
  "rollouts",
  "secret",
  "secret_env",
  "format",
  "timeout",
  "retry_for",
  "backoff_initial",
  "backoff_max",
  "queue_size",
] as const;

const DURATION = /^(\d+(?:\.\d+)?)(ms|s|m|h)$/;
const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** Returns milliseconds of a duration like `500ms`, `5s`, `10m`, `1h`. */
export function parseDuration(text: string): number | undefined {
  const m = DURATION.exec(text);
  if (m === null) return undefined;
  return Math.round(Number(m[1]) * UNIT_MS[m[2]!]!);
}

/** Returns the regular expression of a rollout glob: `*` any run of characters, `?` one. */
export function globToRegExp(glob: string): RegExp {
  const body = glob.replace(/[.+^${}()|[\]\\-]/g, "\\$&").replace(/\*/g, ".*").replace(/\?/g, ".");
  return new RegExp(`^${body}$`);
}

/** Reads and validates a notification file; throws NotifyConfigError naming the file and field. */
export function readNotifyConfig(path: string, env: NodeJS.ProcessEnv): NotifyWebhook[] {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (e) {
    throw new NotifyConfigError(`cannot read ${path}: ${(e as Error).message}`);
  }
  return parseNotifyConfig(text, path, env);
}

/**
 * Returns the webhooks of a notification file's text (YAML, or JSON, which is YAML too), or
 * throws NotifyConfigError naming `where` and the field and the rule.
 */
export function parseNotifyConfig(text: string, where: string, env: NodeJS.ProcessEnv): NotifyWebhook[] {
  let raw: unknown;
  try {
    raw = parseYaml(text);
  } catch (e) {
    throw new NotifyConfigError(`${where} is not valid YAML or JSON: ${(e as Error).message.split("\n", 1)[0]}`);
  }
  const fail = (field: string, rule: string) => new NotifyConfigError(`${where}: ${field}: ${rule}`);
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) throw fail("(top level)", "must be an object with a webhooks list");
  for (const k of Object.keys(raw)) if (k !== "webhooks") throw fail(k, "is not a setting (the file holds `webhooks:` only)");
  const list = (raw as { webhooks?: unknown }).webhooks;
  if (!Array.isArray(list) || list.length === 0) throw fail("webhooks", "must be a non-empty list");
  if (list.length > MAX_WEBHOOKS) throw fail("webhooks", `at most ${MAX_WEBHOOKS} webhooks`);
  const names = new Set<string>();
  return list.map((entry: unknown, i): NotifyWebhook => {
    const at = `webhooks[${i}]`;
    if (typeof entry !== "object" || entry === null || Array.isArray(entry)) throw fail(at, "must be an object");
    const w = entry as Record<string, unknown>;
    for (const k of Object.keys(w)) {
      if (!(KEYS as readonly string[]).includes(k)) throw fail(`${at}.${k}`, `is not a setting; the settings are ${KEYS.join(", ")}`);
    }
    const name = w.name;
    if (typeof name !== "string" || !/^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/.test(name)) throw fail(`${at}.name`, "must be 1..63 characters of [A-Za-z0-9._-]");
    if (names.has(name)) throw fail(`${at}.name`, `"${name}" is used twice`);
    names.add(name);

    let url: URL;
    try {
      if (typeof w.url !== "string") throw new Error();
      url = new URL(w.url);
    } catch {
      throw fail(`${at}.url`, "must be an absolute http:// or https:// URL");
    }
    if (url.protocol !== "http:" && url.protocol !== "https:") throw fail(`${at}.url`, "must be an absolute http:// or https:// URL");

    const events = w.events;
    if (!Array.isArray(events) || events.length === 0) throw fail(`${at}.events`, `must be a non-empty list of event types (${Object.keys(EVENT_TYPES).join(", ")}) or "*"`);
    let wanted: Set<EventType> | undefined = new Set();
    events.forEach((t: unknown, j) => {
      if (t === "*") wanted = undefined;
      else if (typeof t === "string" && Object.hasOwn(EVENT_TYPES, t)) wanted?.add(t as EventType);
      else throw fail(`${at}.events[${j}]`, `${JSON.stringify(t)} must be "*" or one of ${Object.keys(EVENT_TYPES).join(", ")}`);
    });

    let rollouts: RegExp[] | undefined;
    if (w.rollouts !== undefined) {
      if (!Array.isArray(w.rollouts) || w.rollouts.length === 0) throw fail(`${at}.rollouts`, "must be a non-empty list of rollout names or globs");
      rollouts = w.rollouts.map((g: unknown, j) => {
        if (typeof g !== "string" || !/^[a-z0-9._*?-]{1,63}$/.test(g)) {
          throw fail(`${at}.rollouts[${j}]`, "must be a rollout name or a glob of [a-z0-9._-] with * and ?");
        }
        return globToRegExp(g);
      });
    }

    if ((w.secret === undefined) === (w.secret_env === undefined)) throw fail(`${at}.secret`, "give exactly one of secret and secret_env");
    let secret: string;
    if (w.secret !== undefined) {
      if (typeof w.secret !== "string" || w.secret.length < 16) throw fail(`${at}.secret`, "must be a string of at least 16 characters");
      secret = w.secret;
    } else {
      const variable = w.secret_env;
      if (typeof variable !== "string" || !/^[A-Za-z_][A-Za-z0-9_]*$/.test(variable)) throw fail(`${at}.secret_env`, "must name an environment variable");
      const value = env[variable];
      if (value === undefined || value.length < 16) throw fail(`${at}.secret_env`, `${variable} must be set to at least 16 characters`);
      secret = value;
    }

    const format = w.format ?? NOTIFY_DEFAULTS.format;
    if (format !== "json" && format !== "slack") throw fail(`${at}.format`, "must be json or slack");

    const duration = (key: string, fallback: number, min: number): number => {
      const v = w[key];
      if (v === undefined) return fallback;
      const ms = typeof v === "string" ? parseDuration(v) : undefined;
      if (ms === undefined || ms < min) throw fail(`${at}.${key}`, `must be a duration like 500ms, 5s, 10m, 1h, at least ${min} ms`);
      return ms;
    };
    const timeoutMs = duration("timeout", NOTIFY_DEFAULTS.timeoutMs, 10);
    const retryForMs = duration("retry_for", NOTIFY_DEFAULTS.retryForMs, 0);
    const backoffInitialMs = duration("backoff_initial", NOTIFY_DEFAULTS.backoffInitialMs, 1);
    const backoffMaxMs = duration("backoff_max", Math.max(NOTIFY_DEFAULTS.backoffMaxMs, backoffInitialMs), 1);
    if (backoffMaxMs < backoffInitialMs) throw fail(`${at}.backoff_max`, "must be at least backoff_initial");

    const queueSize = w.queue_size ?? NOTIFY_DEFAULTS.queueSize;
    if (typeof queueSize !== "number" || !Number.isInteger(queueSize) || queueSize < 1 || queueSize > 100_000) {
      throw fail(`${at}.queue_size`, "must be an integer 1..100000");
    }
    return { name, url, events: wanted, rollouts, secret, format, timeoutMs, retryForMs, backoffInitialMs, backoffMaxMs, queueSize };
  });
}
