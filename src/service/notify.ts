import { createHmac } from "node:crypto";
import type { Logger } from "pino";
import type { AuditEvent } from "../domain/audit-chain.js";
import type { Engine } from "./engine.js";
import type { NotifyWebhook } from "./notify-config.js";

/**
 * Outbound notifications: every audit event the engine publishes — an operator's change, an
 * evaluator's decision, the Alertmanager receiver's halt — that a configured webhook wants is
 * POSTed to it, signed, and retried with backoff for a bounded time. Delivery is fully off the
 * command path: the engine's event feed hands each event over (a push into a bounded queue per
 * webhook), and one worker per webhook sends them in order. A receiver that is slow, failing or
 * gone never delays a change, a decision or an RPC; past its queue's bound the oldest waiting
 * delivery is dropped and counted.
 *
 * Each POST carries `X-Rollgate-Delivery` (the same id on every attempt and on every replica:
 * `<seq>-<first 16 hex of the event hash>`), `X-Rollgate-Event`, `X-Rollgate-Timestamp` (Unix
 * seconds of this attempt) and `X-Rollgate-Signature: sha256=<hex>`, the HMAC-SHA256 under the
 * webhook's secret of `<timestamp>.<raw body>`.
 */

/** What happened to a delivery (or an attempt, for `retried`). */
export type DeliveryResult = "ok" | "failed" | "retried" | "dropped";

/** Counts of one webhook's deliveries. */
export interface WebhookStats {
  readonly name: string;
  /** Deliveries waiting (not counting the one being sent). */
  readonly queued: number;
  readonly inFlight: boolean;
  readonly ok: number;
  readonly failed: number;
  readonly retried: number;
  readonly dropped: number;
}

/** Hooks the server counts deliveries with. */
export interface NotifyObserver {
  delivery?(webhook: string, result: DeliveryResult): void;
}

/** Options of createNotifier. */
export interface NotifierOptions {
  readonly engine: Engine;
  readonly webhooks: readonly NotifyWebhook[];
  /** The dashboard's base URL (`--public-url`), for the links in each notification. */
  readonly publicUrl: string;
  readonly logger: Logger;
  readonly observer?: NotifyObserver;
  /** Wall-clock milliseconds (retry bounds, signature timestamps); Date.now by default. */
  readonly now?: () => number;
  /** Random number in [0, 1) for the backoff jitter; Math.random by default. */
  readonly random?: () => number;
}

/** The outbound notifier. */
export interface Notifier {
  /** Subscribes to the engine's audit events; call once, after the engine has loaded. */
  start(): void;
  /** Returns each webhook's counts. */
  stats(): WebhookStats[];
  /**
   * Stops: no new events are taken, waiting deliveries are dropped (logged with their
   * number), and an attempt in flight is aborted.
   */
  close(): Promise<void>;
}

/** The webhook body of an event in rollgate's JSON format. */
export interface NotificationBody {
  readonly id: string;
  readonly type: string;
  readonly rollout: string;
  readonly seq: number;
  readonly time: string;
  readonly actor: string;
  readonly reason: string;
  /** The rollout's version after the event, from its snapshot. */
  readonly version: number | undefined;
  /** The event's snapshot: stage, weight, score, every gate's values, and any `detail`. */
  readonly snapshot: Record<string, unknown> | undefined;
  /** The event's hash on the rollout's audit chain. */
  readonly hash: string;
  readonly links: { readonly dashboard: string };
}

/** Returns the delivery id of an event: the same on every attempt and every replica. */
export function deliveryId(e: AuditEvent): string {
  return `${e.seq}-${e.hash.slice(0, 16)}`;
}

/** Returns the signature header value of a body signed at `timestamp` (Unix seconds). */
export function signature(secret: string, timestamp: string, body: string): string {
  return `sha256=${createHmac("sha256", secret).update(`${timestamp}.${body}`).digest("hex")}`;
}

function parseSnapshot(e: AuditEvent): Record<string, unknown> | undefined {
  try {
    const s: unknown = JSON.parse(e.snapshot);
    return typeof s === "object" && s !== null && !Array.isArray(s) ? (s as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

/** Returns the dashboard page of a rollout under a public URL. */
export function dashboardLink(publicUrl: string, rollout: string): string {
  return `${publicUrl.replace(/\/+$/, "")}/ui/rollouts/${encodeURIComponent(rollout)}`;
}

/** Returns an event's notification in rollgate's JSON format. */
export function jsonBody(e: AuditEvent, publicUrl: string): NotificationBody {
  const snapshot = parseSnapshot(e);
  const version = snapshot?.version;
  return {
    id: deliveryId(e),
    type: e.type,
    rollout: e.rollout,
    seq: e.seq,
    time: new Date(Number(e.timeNs / 1_000_000n)).toISOString(),
    actor: e.actor,
    reason: e.reason,
    version: typeof version === "number" ? version : undefined,
    snapshot,
    hash: e.hash,
    links: { dashboard: dashboardLink(publicUrl, e.rollout) },
  };
}

/** Slack's escaping of `&`, `<` and `>` in mrkdwn text. */
function escapeSlack(text: string): string {
  return text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
}

/** Slack's limit on a section's text. */
const SLACK_TEXT_MAX = 3000;

function clip(text: string, max = SLACK_TEXT_MAX): string {
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}

/** Returns an event's notification as a Slack-compatible message: `text` (the fallback) and `blocks`. */
export function slackBody(e: AuditEvent, publicUrl: string): { text: string; blocks: unknown[] } {
  const b = jsonBody(e, publicUrl);
  const what = e.type.replace(/_/g, " ");
  const s = b.snapshot ?? {};
  const text = clip(`${e.rollout}: ${what} by ${e.actor} — ${e.reason}`);
  const fields: { type: "mrkdwn"; text: string }[] = [];
  if (typeof s.stage === "string") fields.push({ type: "mrkdwn", text: `*Stage*\n${escapeSlack(s.stage.toUpperCase())}` });
  if (typeof s.weight_bp === "number") fields.push({ type: "mrkdwn", text: `*Weight*\n${s.weight_bp / 100}%` });
  if (typeof s.score === "number") fields.push({ type: "mrkdwn", text: `*Health score*\n${s.score}` });
  if (typeof s.canary_version === "string") fields.push({ type: "mrkdwn", text: `*Canary*\n${escapeSlack(s.canary_version)}` });
  const gates = Array.isArray(s.gates) ? (s.gates as Record<string, unknown>[]) : [];
  const gateLines = gates.map((g) => {
    const baseline = g.baseline === undefined ? "" : `, stable ${String(g.baseline)}`;
    return `• \`${escapeSlack(String(g.name))}\` ${String(g.verdict).toUpperCase()}: ${String(g.observed)} vs ${String(g.threshold)}${baseline} (${String(g.samples)} samples)`;
  });
  const blocks: unknown[] = [
    {
      type: "section",
      text: {
        type: "mrkdwn",
        text: clip(`*<${b.links.dashboard}|${escapeSlack(e.rollout)}>* ${escapeSlack(what)} by \`${escapeSlack(e.actor)}\`\n>${escapeSlack(e.reason)}`),
      },
    },
  ];
  if (fields.length > 0) blocks.push({ type: "section", fields });
  if (gateLines.length > 0) blocks.push({ type: "section", text: { type: "mrkdwn", text: clip(gateLines.join("\n")) } });
  blocks.push({ type: "context", elements: [{ type: "mrkdwn", text: `rollgate · event ${e.seq} · ${b.time}` }] });
  return { text, blocks };
}

/** Returns whether a webhook wants an event. */
export function wants(w: NotifyWebhook, e: AuditEvent): boolean {
  if (w.events !== undefined && !w.events.has(e.type)) return false;
  return w.rollouts === undefined || w.rollouts.some((r) => r.test(e.rollout));
}

/** One event on its way to one webhook. */
interface Delivery {
  readonly id: string;
  readonly type: string;
  readonly rollout: string;
  readonly body: string;
}

/** How long to wait before retry `n` (1-based): exponential, capped, with jitter in [½, 1] of it. */
export function backoffMs(w: Pick<NotifyWebhook, "backoffInitialMs" | "backoffMaxMs">, n: number, random: () => number): number {
  const full = Math.min(w.backoffMaxMs, w.backoffInitialMs * 2 ** Math.min(n - 1, 30));
  return Math.round(full / 2 + (full / 2) * random());
}

/** Returns whether an HTTP status is worth retrying: 429 and 5xx. */
export function retryable(status: number): boolean {
  return status === 429 || status >= 500;
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const t = setTimeout(done, ms);
    function done() {
      clearTimeout(t);
      signal.removeEventListener("abort", done);
      resolve();
    }
    signal.addEventListener("abort", done, { once: true });
  });
}

/** Returns the outbound notifier over an engine's event feed (see the module comment). */
export function createNotifier(opts: NotifierOptions): Notifier {
  const { engine, logger, publicUrl } = opts;
  const now = opts.now ?? Date.now;
  const random = opts.random ?? Math.random;
  const stop = new AbortController();
  let subscription: { close(): void } | undefined;
  let feeding: Promise<void> | undefined;

  const lanes = opts.webhooks.map((w) => {
    const queue: Delivery[] = [];
    const counts = { ok: 0, failed: 0, retried: 0, dropped: 0 };
    let inFlight = false;
    let working: Promise<void> | undefined;
    const log = logger.child({ webhook: w.name });
    const count = (result: DeliveryResult) => {
      counts[result]++;
      opts.observer?.delivery?.(w.name, result);
    };

    /** Sends one delivery until it succeeds, fails for good, or runs out of time; never throws. */
    const send = async (d: Delivery): Promise<void> => {
      const first = now();
      for (let attempt = 1; ; attempt++) {
        const timestamp = String(Math.floor(now() / 1000));
        let problem: string;
        let retry: boolean;
        try {
          const res = await fetch(w.url, {
            method: "POST",
            headers: {
              "content-type": "application/json",
              "user-agent": "rollgate-notify",
              "x-rollgate-delivery": d.id,
              "x-rollgate-event": d.type,
              "x-rollgate-timestamp": timestamp,
              "x-rollgate-signature": signature(w.secret, timestamp, d.body),
            },
            body: d.body,
            redirect: "manual",
            signal: AbortSignal.any([stop.signal, AbortSignal.timeout(w.timeoutMs)]),
          });
          // The answer's body is not read: only its status counts.
          await res.body?.cancel().catch(() => undefined);
          if (res.status >= 200 && res.status < 300) {
            count("ok");
            if (attempt > 1) log.info({ delivery: d.id, rollout: d.rollout, attempt }, "notification delivered after retries");
            return;
          }
          problem = `HTTP ${res.status}`;
          retry = retryable(res.status);
        } catch (e) {
          if (stop.signal.aborted) return;
          const err = e as Error;
          problem = err.name === "TimeoutError" ? `no answer within ${w.timeoutMs} ms` : `${err.message}${err.cause instanceof Error ? `: ${err.cause.message}` : ""}`;
          retry = true;
        }
        const wait = backoffMs(w, attempt, random);
        if (!retry || now() + wait - first > w.retryForMs) {
          count("failed");
          log.warn(
            { delivery: d.id, rollout: d.rollout, event: d.type, attempts: attempt, error: problem },
            retry ? "notification not delivered: retried for the whole retry_for; giving up" : "notification refused by the receiver; not retried",
          );
          return;
        }
        count("retried");
        log.debug({ delivery: d.id, attempt, retryInMs: wait, error: problem }, "notification attempt failed; retrying");
        await sleep(wait, stop.signal);
        if (stop.signal.aborted) return;
      }
    };

    const work = async () => {
      for (let d = queue.shift(); d !== undefined && !stop.signal.aborted; d = queue.shift()) {
        inFlight = true;
        await send(d);
        inFlight = false;
      }
      inFlight = false;
      working = undefined;
    };

    return {
      w,
      enqueue(d: Delivery) {
        if (queue.length >= w.queueSize) {
          const dropped = queue.shift()!;
          count("dropped");
          log.warn({ delivery: dropped.id, rollout: dropped.rollout, queueSize: w.queueSize }, "notification queue full: dropped the oldest waiting notification");
        }
        queue.push(d);
        working ??= work();
      },
      stats: (): WebhookStats => ({ name: w.name, queued: queue.length, inFlight, ...counts }),
      async close() {
        const left = queue.length;
        queue.length = 0;
        if (left > 0) log.warn({ dropped: left }, "shutting down: undelivered notifications dropped");
        await working;
      },
    };
  });

  const dispatch = (e: AuditEvent) => {
    let json: NotificationBody | undefined;
    let slack: string | undefined;
    let plain: string | undefined;
    for (const lane of lanes) {
      if (!wants(lane.w, e)) continue;
      let body: string;
      if (lane.w.format === "slack") body = slack ??= JSON.stringify(slackBody(e, publicUrl));
      else body = plain ??= JSON.stringify((json ??= jsonBody(e, publicUrl)));
      lane.enqueue({ id: deliveryId(e), type: e.type, rollout: e.rollout, body });
    }
  };

  return {
    start() {
      if (feeding !== undefined || lanes.length === 0) return;
      feeding = (async () => {
        while (!stop.signal.aborted) {
          const sub = engine.subscribeEvents(undefined);
          subscription = sub;
          try {
            for await (const e of sub) dispatch(e);
          } catch (err) {
            logger.warn({ err: (err as Error).message }, "notify: the event feed ended");
          }
          if (stop.signal.aborted) break;
          // The feed ended under us (it should not: dispatch never falls behind); take it again.
          logger.warn("notify: resubscribing to audit events; events in between are not notified");
          await sleep(100, stop.signal);
        }
      })();
      logger.info({ webhooks: lanes.map((l) => l.w.name) }, "outbound notifications on");
    },
    stats: () => lanes.map((l) => l.stats()),
    async close() {
      stop.abort();
      subscription?.close();
      await feeding;
      await Promise.all(lanes.map((l) => l.close()));
    },
  };
}
