import { isDomainError } from "../domain/errors.js";
import { validateName } from "../domain/validation.js";

/**
 * The Alertmanager webhook payload (`version: "4"`, Alertmanager's notify/webhook Message over
 * template.Data), parsed and validated: every field rollgate reads is checked for its type, and
 * what rollgate acts on (the `rollout` and `rollgate_action` labels) for its value. Fields
 * rollgate does not know (Grafana's `orgId`, `silenceURL`, …) are ignored.
 */

/** What a firing alert asks rollgate to do to its rollout. */
export type AlertAction = "halt" | "rollback" | "pause";

/** The actions a `rollgate_action` label may name; `halt` when it is absent. */
export const ALERT_ACTIONS: readonly AlertAction[] = ["halt", "rollback", "pause"];

/** The label naming the rollout an alert is about. */
export const ROLLOUT_LABEL = "rollout";
/** The label naming the action (ALERT_ACTIONS). */
export const ACTION_LABEL = "rollgate_action";

/** One alert of a notification. */
export interface Alert {
  readonly status: "firing" | "resolved";
  readonly labels: Readonly<Record<string, string>>;
  readonly annotations: Readonly<Record<string, string>>;
  readonly startsAt: string;
  readonly endsAt: string;
  readonly generatorURL: string;
  readonly fingerprint: string;
  /** `labels.alertname`, or "" when the alert has none. */
  readonly alertname: string;
  /** The rollout the `rollout` label names (a valid rollout name), if any. */
  readonly rollout: string | undefined;
  /** The action the alert asks for: its `rollgate_action` label, else `halt`. */
  readonly action: AlertAction;
}

/** A notification: one group of alerts. */
export interface AlertmanagerPayload {
  readonly version: "4";
  readonly groupKey: string;
  readonly truncatedAlerts: number;
  readonly status: "firing" | "resolved";
  readonly receiver: string;
  readonly groupLabels: Readonly<Record<string, string>>;
  readonly commonLabels: Readonly<Record<string, string>>;
  readonly commonAnnotations: Readonly<Record<string, string>>;
  readonly externalURL: string;
  readonly alerts: readonly Alert[];
}

/** A payload rollgate refuses: the HTTP status (400 or 413) and a message naming the field. */
export class PayloadError extends Error {
  override readonly name = "PayloadError";
  constructor(
    readonly status: 400 | 413,
    message: string,
  ) {
    super(message);
  }
}

const STATUSES = ["firing", "resolved"] as const;

type Json = Record<string, unknown>;

function isObject(v: unknown): v is Json {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function bad(field: string, rule: string): PayloadError {
  return new PayloadError(400, `${field}: ${rule}`);
}

function stringField(o: Json, key: string, at: string, required: boolean): string {
  const v = o[key];
  if (v === undefined && !required) return "";
  if (typeof v !== "string") throw bad(`${at}${key}`, required && v === undefined ? "is required (a string)" : "must be a string");
  return v;
}

function statusField(o: Json, at: string): "firing" | "resolved" {
  const v = o.status;
  if (v !== "firing" && v !== "resolved") throw bad(`${at}status`, `must be one of ${STATUSES.join(", ")}`);
  return v;
}

/** Returns a label set or annotation set (string → string), `{}` when absent and optional. */
function kvField(o: Json, key: string, at: string, required: boolean): Record<string, string> {
  const v = o[key];
  if (v === undefined && !required) return {};
  // Alertmanager's Go encoder never sends null for these, but an empty set is harmless.
  if (v === null && !required) return {};
  if (!isObject(v)) throw bad(`${at}${key}`, required && v === undefined ? "is required (an object of strings)" : "must be an object of strings");
  const out: Record<string, string> = {};
  for (const [k, value] of Object.entries(v)) {
    if (typeof value !== "string") throw bad(`${at}${key}.${k}`, "must be a string");
    out[k] = value;
  }
  return out;
}

/** Returns an RFC 3339 time as sent (Go's zero time `0001-01-01T00:00:00Z` included), "" when absent. */
function timeField(o: Json, key: string, at: string): string {
  const v = stringField(o, key, at, false);
  if (v !== "" && !(/^\d{4}-\d{2}-\d{2}T/.test(v) && Number.isFinite(Date.parse(v)))) throw bad(`${at}${key}`, "must be an RFC 3339 time");
  return v;
}

/**
 * Returns the validated payload of an Alertmanager webhook notification, or throws a
 * PayloadError: 400 naming the field and the rule, 413 for more than `maxAlerts` alerts.
 */
export function parseAlertmanagerPayload(body: string, maxAlerts: number): AlertmanagerPayload {
  let raw: unknown;
  try {
    raw = JSON.parse(body);
  } catch (e) {
    throw new PayloadError(400, `request body is not JSON: ${(e as Error).message}`);
  }
  if (!isObject(raw)) throw new PayloadError(400, "request body must be a JSON object (Alertmanager's webhook payload)");
  if (raw.version !== "4") {
    throw bad("version", `must be "4" (Alertmanager's webhook payload version), not ${JSON.stringify(raw.version) ?? "absent"}`);
  }
  const truncated = raw.truncatedAlerts;
  if (truncated !== undefined && !(typeof truncated === "number" && Number.isSafeInteger(truncated) && truncated >= 0)) {
    throw bad("truncatedAlerts", "must be a non-negative integer");
  }
  const alerts = raw.alerts;
  if (!Array.isArray(alerts)) throw bad("alerts", "is required (an array)");
  if (alerts.length > maxAlerts) {
    throw new PayloadError(413, `alerts: at most ${maxAlerts} alerts per notification (got ${alerts.length}); set max_alerts in Alertmanager's webhook_config`);
  }
  return {
    version: "4",
    groupKey: stringField(raw, "groupKey", "", false),
    truncatedAlerts: truncated ?? 0,
    status: statusField(raw, ""),
    receiver: stringField(raw, "receiver", "", false),
    groupLabels: kvField(raw, "groupLabels", "", false),
    commonLabels: kvField(raw, "commonLabels", "", false),
    commonAnnotations: kvField(raw, "commonAnnotations", "", false),
    externalURL: stringField(raw, "externalURL", "", false),
    alerts: alerts.map((a: unknown, i) => parseAlert(a, `alerts[${i}].`)),
  };
}

function parseAlert(a: unknown, at: string): Alert {
  if (!isObject(a)) throw bad(at.slice(0, -1), "must be an object");
  const labels = kvField(a, "labels", at, true);
  const rolloutLabel = labels[ROLLOUT_LABEL];
  if (rolloutLabel !== undefined) {
    try {
      validateName(`${at}labels.${ROLLOUT_LABEL}`, rolloutLabel);
    } catch (e) {
      if (isDomainError(e)) throw new PayloadError(400, e.message);
      throw e;
    }
  }
  const actionLabel = labels[ACTION_LABEL];
  if (actionLabel !== undefined && !(ALERT_ACTIONS as readonly string[]).includes(actionLabel)) {
    throw bad(`${at}labels.${ACTION_LABEL}`, `${JSON.stringify(actionLabel)} must be one of ${ALERT_ACTIONS.join(", ")}`);
  }
  const fingerprint = stringField(a, "fingerprint", at, false);
  if (fingerprint.length > 128) throw bad(`${at}fingerprint`, "must be at most 128 characters");
  return {
    status: statusField(a, at),
    labels,
    annotations: kvField(a, "annotations", at, false),
    startsAt: timeField(a, "startsAt", at),
    endsAt: timeField(a, "endsAt", at),
    generatorURL: stringField(a, "generatorURL", at, false),
    fingerprint,
    alertname: labels.alertname ?? "",
    rollout: rolloutLabel,
    action: (actionLabel as AlertAction | undefined) ?? "halt",
  };
}
