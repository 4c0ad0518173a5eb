import type { ServerResponse } from "node:http";
import { Code, ConnectError } from "@connectrpc/connect";
import type { Logger } from "pino";
import { Counter, type Registry } from "prom-client";
import { isDomainError } from "../domain/errors.js";
import * as machine from "../domain/rollout-machine.js";
import type { Rollout } from "../domain/rollout.js";
import { LIMITS } from "../domain/validation.js";
import type { Caller, Engine } from "../service/engine.js";
import type { Admit } from "./admit.js";
import { parseAlertmanagerPayload, PayloadError, type Alert, type AlertAction } from "./alertmanager-payload.js";
import type { RequestHandler } from "./http-endpoints.js";
import type { CallReporter } from "./observe.js";
import { bodyPending, stopReading } from "./refused-body.js";

/**
 * The Alertmanager receiver, `POST /webhooks/alertmanager` on the server's own port: a firing
 * alert with a `rollout` label halts that rollout (or rolls it back, or pauses it, as its
 * `rollgate_action` label says) through the engine's normal change path — the same queue,
 * durability, audit chain and state machine as the Halt/Rollback/Pause RPCs — with actor
 * `alertmanager`, the alert's `summary` annotation as the reason and the alert's name and
 * fingerprint in the audit event's snapshot (`detail`). Resolved alerts are logged and counted,
 * never acted on: only an operator resumes.
 *
 * Answers: 200 with what was done per alert; 400 for a payload that is not Alertmanager's (nothing
 * is changed); 413 beyond the size or alert bounds; 401/403 without an operator token (when
 * tokens are configured); 503 while the server starts, drains or cannot reach its database, so
 * that Alertmanager retries (it retries 5xx, not 4xx).
 */

/** The receiver's path. */
export const ALERTMANAGER_PATH = "/webhooks/alertmanager";
/** Largest notification body accepted; larger ones get 413. */
export const ALERTMANAGER_MAX_BODY_BYTES = 1024 * 1024;
/** Most alerts per notification; more get 413 (Alertmanager's `max_alerts` caps what it sends). */
export const ALERTMANAGER_MAX_ALERTS = 1000;
/** The actor recorded in the audit log for changes the receiver makes. */
export const ALERTMANAGER_ACTOR = "alertmanager";
/** The procedure the receiver is reported under (metrics, logs). */
export const ALERTMANAGER_PROCEDURE = "webhooks/Alertmanager";
/**
 * The RPC a notification is admitted as (readiness, then authorization with the API's own
 * authenticator): Halt, which needs an operator token, as Rollback and Pause do.
 */
const ADMITTED_AS = "rollgate.v1.RolloutService/Halt";

/** What happened to one alert. */
export type AlertOutcome =
  /** The rollout was changed (an audit event was appended). */
  | "applied"
  /** The rollout already was where the action would put it: nothing to do, nothing recorded. */
  | "already"
  /** The state machine refuses the action at the rollout's stage (e.g. rolling back a finished rollout). */
  | "not_applicable"
  /** No rollout has that name. */
  | "unknown_rollout"
  /** The alert has no `rollout` label. */
  | "no_rollout"
  /** A resolved alert: recorded, never acted on. */
  | "resolved";

/** One alert's result, as the 200 answer lists it. */
export interface AlertResult {
  readonly alertname: string;
  readonly fingerprint: string;
  readonly rollout?: string;
  readonly action?: AlertAction;
  readonly outcome: AlertOutcome;
  readonly stage?: string;
  readonly message?: string;
}

/** What the receiver needs from the server. */
export interface AlertmanagerOptions {
  readonly engine: Engine;
  readonly admit: Admit;
  readonly report: CallReporter;
  readonly logger: Logger;
  /** The registry the receiver's counter is registered on. */
  readonly registry: Registry;
  /** False while the database is known to be unreachable: answer 503 without acting. */
  readonly databaseUp: () => boolean;
  readonly maxBodyBytes?: number;
  readonly maxAlerts?: number;
}

/** Returns whether a rollout already is where `action` would put it. */
export function alreadyDone(r: Rollout, action: AlertAction): boolean {
  switch (action) {
    // A rolled-back rollout sends no traffic to the canary and is never restarted
    // automatically: halting it too would only make two stop alerts flip it back and forth.
    case "halt":
      return r.stage === "halted" || r.stage === "rolled_back";
    case "rollback":
      return r.stage === "rolled_back";
    case "pause":
      return r.paused || r.stage === "halted" || r.stage === "rolled_back";
  }
}

const TRANSITIONS: Readonly<Record<AlertAction, (r: Rollout, actor: machine.Actor) => machine.Transition>> = {
  halt: (r, actor) => machine.halt(r, actor),
  rollback: (r, actor) => machine.rollback(r, actor),
  pause: (r, actor) => machine.pause(r, actor),
};

/** Returns the reason an alert's change is recorded with: its summary, else its description, else its name. */
export function reasonOf(alert: Alert): string {
  const text = alert.annotations.summary ?? alert.annotations.description ?? `alert ${alert.alertname || "(unnamed)"} firing`;
  const trimmed = text.trim();
  return trimmed.length > LIMITS.reasonChars ? `${trimmed.slice(0, LIMITS.reasonChars - 1)}…` : trimmed;
}

/** An answer refused for a reason that is not the payload's: a status and a message. */
class Refusal extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

/**
 * Returns a handler that answers `ALERTMANAGER_PATH` and passes every other request to `next`.
 */
export function withAlertmanager(opts: AlertmanagerOptions, next: RequestHandler): RequestHandler {
  const maxBody = opts.maxBodyBytes ?? ALERTMANAGER_MAX_BODY_BYTES;
  const maxAlerts = opts.maxAlerts ?? ALERTMANAGER_MAX_ALERTS;
  const { engine, logger } = opts;
  const alerts = new Counter({
    name: "rollgate_alertmanager_alerts_total",
    help: "Alerts received on /webhooks/alertmanager, by alert status, action and what was done (applied, already, not_applicable, unknown_rollout, no_rollout, resolved).",
    labelNames: ["status", "action", "outcome"] as const,
    registers: [opts.registry],
  });
  const refused = new Counter({
    name: "rollgate_alertmanager_refused_total",
    help: "Notifications refused on /webhooks/alertmanager, by HTTP status.",
    labelNames: ["status"] as const,
    registers: [opts.registry],
  });

  /** Acts on one firing alert; throws DomainError unavailable/aborted (→ 503) and anything unexpected. */
  const act = async (alert: Alert, rollout: string, groupKey: string): Promise<AlertResult> => {
    const base = { alertname: alert.alertname, fingerprint: alert.fingerprint, rollout, action: alert.action };
    let current: Rollout;
    try {
      current = engine.get(rollout);
    } catch (e) {
      if (isDomainError(e) && e.kind === "not_found") return { ...base, outcome: "unknown_rollout" };
      throw e;
    }
    if (alreadyDone(current, alert.action)) return { ...base, outcome: "already", stage: current.stage };
    const caller: Caller = {
      actor: ALERTMANAGER_ACTOR,
      reason: reasonOf(alert),
      detail: {
        source: "alertmanager",
        alertname: alert.alertname,
        fingerprint: alert.fingerprint,
        action: alert.action,
        ...(groupKey === "" ? {} : { group_key: groupKey }),
        ...(alert.startsAt === "" ? {} : { starts_at: alert.startsAt }),
        ...(alert.generatorURL === "" ? {} : { generator_url: alert.generatorURL }),
      },
    };
    try {
      const after = await engine.change(rollout, caller, TRANSITIONS[alert.action]);
      // The state machine said "unchanged" (e.g. a pause raced with another): nothing recorded.
      const outcome: AlertOutcome = after.version === current.version ? "already" : "applied";
      return { ...base, outcome, stage: after.stage };
    } catch (e) {
      if (isDomainError(e) && e.kind === "not_found") return { ...base, outcome: "unknown_rollout" };
      // Retrying cannot change the stage rule: acknowledge, say why.
      if (isDomainError(e) && e.kind === "failed_precondition") return { ...base, outcome: "not_applicable", message: e.message };
      throw e;
    }
  };

  const handle = async (payloadText: string, requestId: string): Promise<AlertResult[]> => {
    const payload = parseAlertmanagerPayload(payloadText, maxAlerts);
    const results: AlertResult[] = [];
    for (const alert of payload.alerts) {
      const base = { alertname: alert.alertname, fingerprint: alert.fingerprint };
      let result: AlertResult;
      if (alert.status === "resolved") {
        result = { ...base, ...(alert.rollout === undefined ? {} : { rollout: alert.rollout }), outcome: "resolved" };
      } else if (alert.rollout === undefined) {
        result = { ...base, outcome: "no_rollout" };
      } else {
        result = await act(alert, alert.rollout, payload.groupKey);
      }
      results.push(result);
      alerts.labels(alert.status, result.action ?? "none", result.outcome).inc();
      const line = {
        requestId,
        receiver: payload.receiver,
        groupKey: payload.groupKey,
        alertname: alert.alertname,
        fingerprint: alert.fingerprint,
        status: alert.status,
        ...(result.rollout === undefined ? {} : { rollout: result.rollout, action: alert.action }),
        outcome: result.outcome,
        ...(result.message === undefined ? {} : { message: result.message }),
      };
      if (result.outcome === "applied") logger.warn({ ...line, reason: reasonOf(alert) }, "alert acted on");
      else if (result.outcome === "unknown_rollout" || result.outcome === "not_applicable") logger.warn(line, "alert not acted on");
      else logger.info(line, alert.status === "resolved" ? "alert resolved: recorded, nothing resumed" : "alert received");
    }
    if (payload.truncatedAlerts > 0) {
      logger.warn({ requestId, groupKey: payload.groupKey, truncatedAlerts: payload.truncatedAlerts }, "Alertmanager truncated this notification (max_alerts)");
    }
    return results;
  };

  return (req, res) => {
    const path = (req.url ?? "/").split("?", 1)[0];
    if (path !== ALERTMANAGER_PATH) return next(req, res);
    const started = process.hrtime.bigint();
    const r = res as ServerResponse;
    const rid = req.headers["x-request-id"];
    const a = opts.admit(ADMITTED_AS, req.headers.authorization, Array.isArray(rid) ? rid[0] : rid);
    const { requestId } = a;
    const report = (error: unknown) =>
      opts.report({ procedure: ALERTMANAGER_PROCEDURE, method: "Alertmanager", requestId, caller: a.caller.name, rollout: "", started }, error);
    let read = 0;
    const send = (status: number, body: unknown, headers: Record<string, string> = {}) => {
      if (status !== 200) refused.labels(String(status)).inc();
      const pending = bodyPending(req);
      const http2 = "stream" in req;
      r.writeHead(status, {
        "content-type": "application/json",
        "cache-control": "no-store",
        "x-request-id": requestId,
        ...(pending && !http2 ? { connection: "close" } : {}),
        ...headers,
      });
      r.end(JSON.stringify(body));
      // A refusal answered before the body is in: read no more of it than the bound allows.
      if (pending) stopReading(req, r, Math.max(0, maxBody - read));
    };
    const fail = (e: unknown) => {
      if (e instanceof PayloadError || e instanceof Refusal) {
        report(new ConnectError(e.message, e.status === 413 ? Code.ResourceExhausted : e.status === 503 ? Code.Unavailable : Code.InvalidArgument));
        logger.warn({ requestId, status: e.status, error: e.message }, "Alertmanager notification refused");
        return send(e.status, { error: e.message });
      }
      // Unavailable, a version race, or a full disk (SQLite): nothing was changed; a retry may succeed.
      if (isDomainError(e) && (e.kind === "unavailable" || e.kind === "aborted" || e.kind === "resource_exhausted")) {
        // Alertmanager retries 5xx: alerts already acted on are "already" on the retry.
        report(new ConnectError(e.message, Code.Unavailable));
        logger.warn({ requestId, error: e.message }, "Alertmanager notification not processed; Alertmanager will retry");
        return send(503, { error: `try again: ${e.message}` }, { "retry-after": "1" });
      }
      report(new ConnectError("internal error", Code.Internal, undefined, undefined, e));
      return send(500, { error: `internal error (request id ${requestId})` });
    };
    if (a.refusal !== undefined) {
      report(a.refusal);
      const status = a.refusal.code === Code.Unavailable ? 503 : a.refusal.code === Code.PermissionDenied ? 403 : 401;
      return send(status, { error: a.refusal.rawMessage }, status === 401 ? { "www-authenticate": "Bearer" } : {});
    }
    if (req.method !== "POST") {
      report(new ConnectError("the Alertmanager receiver takes POST", Code.Unimplemented));
      return send(405, { error: "the Alertmanager receiver takes POST" }, { allow: "POST" });
    }
    const type = String(req.headers["content-type"] ?? "").split(";", 1)[0]!.trim().toLowerCase();
    if (type !== "application/json") {
      report(new ConnectError("content-type must be application/json", Code.InvalidArgument));
      return send(415, { error: `content-type must be application/json (Alertmanager sends it), not ${JSON.stringify(type)}` });
    }
    if (!opts.databaseUp()) return fail(new Refusal(503, "the database is unreachable; nothing was changed"));
    const declared = Number(req.headers["content-length"] ?? 0);
    if (declared > maxBody) return fail(new PayloadError(413, `request body exceeds ${maxBody} bytes`));
    const chunks: Buffer[] = [];
    let done = false;
    const onData = (c: Buffer) => {
      read += c.length;
      if (read > maxBody) {
        req.off("data", onData);
        done = true;
        return fail(new PayloadError(413, `request body exceeds ${maxBody} bytes`));
      }
      chunks.push(c);
    };
    req.on("data", onData);
    req.on("error", () => (done = true));
    req.on("end", () => {
      if (done) return;
      done = true;
      handle(Buffer.concat(chunks).toString("utf8"), requestId).then(
        (results) => {
          report(undefined);
          send(200, { status: "ok", alerts: results });
        },
        fail,
      );
    });
  };
}

