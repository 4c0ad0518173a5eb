// The rollgate dashboard: the rollout list at /ui/, a rollout's page at /ui/rollouts/<name>.
// Everything it shows and does goes through the public API (Connect JSON), with the caller's
// token when the server has tokens, so the same validation, roles and audit apply.

import { canVerify, createChainVerifier } from "./chain.js";
import { createClient, follow } from "./connect.js";
import { h, put, s } from "./dom.js";
import { durationMs, enumShort, gateValue, localTime, relative, scoreText, span, timeMs, tone, weightText, words } from "./format.js";
import { chart } from "./plot.js";

const RS = "rollgate.v1.RolloutService/";
const DS = "rollgate.v1.DecisionService/";
const TOKEN_KEY = "rollgate.token";
/** WatchEvents sends a keep-alive at least every 20 s: a stream silent for longer is dead. */
const EVENTS_IDLE_MS = 45_000;
/** Audit events listed on a rollout's page before "show more". */
const EVENTS_SHOWN = 50;

const $ = (id) => document.getElementById(id);
const main = $("main");

const token = () => sessionStorage.getItem(TOKEN_KEY) ?? "";
const client = createClient({ token });

// ---------------------------------------------------------------- live status

const streams = new Map();

/** Records a stream's state ("connecting", "live", "reconnecting", "failed") and shows the page's. */
function streamState(id, state) {
  streams.set(id, state);
  showLive();
}

function showLive() {
  const el = $("live");
  const states = [...streams.values()];
  // A stream's answer starts with its first message, and WatchEvents may have none to send for
  // a while: the page is live once one stream answers and none is down.
  let st = "connecting";
  if (states.includes("failed")) st = "failed";
  else if (states.includes("reconnecting")) st = "reconnecting";
  else if (states.includes("live")) st = "live";
  el.hidden = states.length === 0;
  el.dataset.state = st;
  el.textContent = { live: "live", failed: "not live", reconnecting: "reconnecting…", connecting: "connecting…" }[st];
  el.title = st === "live" ? "following the server's streams" : "the page is not receiving live updates";
}

/** Follows a server stream for the current view, its state shown in the header. */
function followStream(id, method, request, signal, onMessage, opts = {}) {
  streamState(id, "connecting");
  follow(client, method, request, {
    signal,
    onMessage,
    ...opts,
    onState(state, err) {
      if (signal.aborted) return;
      streamState(id, state);
      if (state === "failed") {
        if (err.code === "unauthenticated") askToken(err);
        else if (opts.onFailed) opts.onFailed(err);
        else toast(`${err.code}: ${err.message}`, "bad");
      }
    },
  });
}

// ---------------------------------------------------------------- token

function tokenButton() {
  const b = $("token-button");
  b.hidden = token() === "" && !document.body.classList.contains("needs-token");
  b.textContent = token() === "" ? "Enter token" : "Token ✓";
  b.title = token() === "" ? "this server needs a bearer token" : "a token is set for this tab; click to change or forget it";
}

/** Opens the token prompt; `err` (when given) says why the last token did not do. */
function askToken(err) {
  document.body.classList.add("needs-token");
  tokenButton();
  const why = $("token-error");
  if (err !== undefined && token() !== "") {
    why.textContent = `The server refused the token: ${err.code}: ${err.message}`;
    why.hidden = false;
  } else {
    why.hidden = true;
  }
  $("token-forget").hidden = token() === "";
  const dialog = $("token-dialog");
  if (!dialog.open) dialog.showModal();
  $("token-input").focus();
}

$("token-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const value = $("token-input").value.trim();
  if (value === "") return;
  sessionStorage.setItem(TOKEN_KEY, value);
  $("token-input").value = "";
  $("token-dialog").close();
  tokenButton();
  render();
});
$("token-forget").addEventListener("click", () => {
  sessionStorage.removeItem(TOKEN_KEY);
  $("token-dialog").close();
  tokenButton();
  render();
});
$("token-button").addEventListener("click", () => askToken());

// ---------------------------------------------------------------- shared pieces

function toast(text, kind = "good") {
  const t = h("div", { class: `toast ${kind}`, role: kind === "bad" ? "alert" : "status" }, text);
  $("toasts").append(t);
  setTimeout(() => t.remove(), 6000);
}

function badge(name, extra = "") {
  return h("span", { class: `badge ${tone(name)} ${extra}`.trim() }, words(name));
}

function crumbs(parts) {
  put($("crumbs"), h("a", { href: "/ui/", "data-nav": true }, "Rollouts"), parts.map((p) => [h("span", { class: "sep" }, "/"), h("span", {}, p)]));
}

/** A thin bar of a weight: an SVG, so no inline style is needed. */
function weightBar(bp) {
  const pct = Math.min(100, Math.max(0, (bp ?? 0) / 100));
  return s(
    "svg",
    { class: "bar", viewBox: "0 0 100 6", preserveAspectRatio: "none", "aria-hidden": "true" },
    s("rect", { class: "bar-bg", width: 100, height: 6, rx: 3 }),
    pct > 0 ? s("rect", { class: "bar-fg", width: Math.max(pct, 1.5), height: 6, rx: 3 }) : null,
  );
}

/** A time relative to now that the view's ticker keeps current. */
function when(ms, prefix = "", isDue = false) {
  return h("span", { class: "when", "data-at": ms, "data-prefix": prefix, "data-due": isDue, title: localTime(ms) }, `${prefix}${isDue ? due(ms) : relative(ms)}`);
}

/** A time when something is due: "in 12s", or "due" once passed. */
function due(ms) {
  const text = relative(ms);
  return text.endsWith(" ago") || text === "now" ? "due" : text;
}

function refreshTimes() {
  for (const el of main.querySelectorAll("[data-at]")) {
    const at = Number(el.dataset.at);
    const text = `${el.dataset.prefix ?? ""}${el.dataset.due === undefined ? relative(at) : due(at)}`;
    if (el.textContent !== text) el.textContent = text;
  }
}

/** Returns true for the stages the evaluator judges and acts on. */
function judged(stage) {
  return stage === "CANARY" || stage === "STAGING";
}

/** What the evaluator does next, and when, as a cell's content ("–" for a rollout it no longer judges). */
function nextAction(health) {
  if (!judged(enumShort(health?.stage, "STAGE_"))) return h("span", { class: "muted" }, "–");
  const action = enumShort(health?.nextAction, "DECISION_");
  const at = timeMs(health?.nextActionAt);
  return [badge(action, "plain"), at === undefined ? null : [" ", when(at, "", true)]];
}

/**
 * A relative gate's bound in words ("stable × 1.2", "stable ± 5") when it has no absolute one:
 * its threshold is only a number once the stable has samples (as the CLI shows it).
 */
function relativeBound(gate) {
  if (gate === undefined) return undefined;
  if (gate.errorRate && gate.errorRate.max === undefined && gate.errorRate.maxRatio !== undefined) return `stable × ${gate.errorRate.maxRatio}`;
  if (gate.latency && gate.latency.maxMs === undefined && gate.latency.maxRatio !== undefined) return `stable × ${gate.latency.maxRatio}`;
  if (gate.metric && gate.metric.max === undefined && gate.metric.maxDelta !== undefined) return `stable ± ${gate.metric.maxDelta}`;
  return undefined;
}

function thresholdText(g, gate) {
  const rule = relativeBound(gate);
  const verdict = enumShort(g.verdict, "VERDICT_");
  if (rule !== undefined && (verdict === "INCONCLUSIVE" || g.baseline === undefined)) return rule;
  return gateValue(g.kind, g.threshold ?? 0);
}

/** The gates table: observed, threshold, stable baseline, samples, verdict (the CLI's columns). */
function gatesTable(gates, config = [], compact = false) {
  if (gates.length === 0) return h("p", { class: "muted" }, "No gates: this rollout is promoted by hand or by its steps alone.");
  const all = ["Gate", "Observed", "Threshold", "Stable baseline", "Samples", "Verdict", "Breaches", "On breach"];
  // In a dialog: the columns that say why a gate blocks.
  const shown = (label) => !compact || !["Stable baseline", "Breaches", "On breach"].includes(label);
  const head = all.filter(shown);
  return h(
    "div",
    { class: "table-wrap" },
    h(
      "table",
      { class: compact ? "gates compact" : "gates" },
      h("thead", {}, h("tr", {}, head.map((t) => h("th", { scope: "col" }, t)))),
      h(
        "tbody",
        {},
        gates.map((g) => {
          const samples = Number(g.samples ?? 0);
          const verdict = enumShort(g.verdict, "VERDICT_");
          return h(
            "tr",
            { "data-gate": g.name, "data-verdict": verdict },
            h("td", { "data-label": "Gate" }, h("div", { class: "name" }, g.name), h("div", { class: "sub" }, g.kind ?? ""), g.message ? h("div", { class: "sub msg" }, g.message) : null),
            h("td", { class: "num", "data-label": "Observed" }, samples === 0 ? "–" : gateValue(g.kind, g.observed ?? 0)),
            h("td", { class: "num", "data-label": "Threshold" }, thresholdText(g, config.find((c) => c.name === g.name))),
            shown("Stable baseline") ? h("td", { class: "num", "data-label": "Stable baseline" }, gateValue(g.kind, g.baseline)) : null,
            h("td", { class: "num", "data-label": "Samples" }, samples.toLocaleString("en-US")),
            h("td", { "data-label": "Verdict" }, badge(verdict)),
            shown("Breaches") ? h("td", { class: "num", "data-label": "Breaches" }, String(g.consecutiveBreaches ?? 0)) : null,
            shown("On breach") ? h("td", { "data-label": "On breach" }, words(enumShort(g.onBreach, "ACTION_"))) : null,
          );
        }),
      ),
    ),
  );
}

/** An API error in full: code, message and what its details say (blocking gates, allowed transitions, fields). */
function errorView(err, config = []) {
  const parts = [h("p", { class: "error-line" }, h("strong", { class: "code" }, err.code), " ", err.message)];
  const blocked = err.detail?.("rollgate.v1.PromotionBlocked");
  if (blocked !== undefined) {
    parts.push(
      h("p", { class: "blocked-title" }, "Promotion blocked by these gates:"),
      h("div", { class: "blocked" }, gatesTable(blocked.gates ?? [], config, true)),
      h("p", { class: "muted" }, "Tick “force” to promote anyway; the reason goes to the audit log."),
    );
  }
  const allowed = err.detail?.("rollgate.v1.AllowedTransitions");
  if (allowed !== undefined && !err.message.includes("allowed:")) {
    parts.push(h("p", {}, "Allowed from here: ", (allowed.allowed ?? []).join(", ") || "nothing"));
  }
  const fields = err.detail?.("rollgate.v1.FieldViolations");
  if (fields !== undefined) {
    const list = (fields.violations ?? []).filter((v) => !err.message.includes(`${v.field}: ${v.description}`));
    if (list.length > 0) parts.push(h("ul", {}, list.map((v) => h("li", {}, h("code", {}, v.field), ": ", v.description))));
  }
  if (err.code === "unauthenticated" || err.code === "permission_denied") {
    parts.push(h("p", {}, h("button", { type: "button", class: "link", onclick: () => askToken(err) }, token() === "" ? "Enter a token" : "Use another token")));
  }
  if (err.code === "unavailable") parts.push(h("p", { class: "muted" }, "Is the server running? The page retries its live streams on its own."));
  return h("div", { class: "error-box", "data-code": err.code }, parts);
}

/** Shows an error that stops a view from loading, with the token prompt when that is the cause. */
function viewError(err) {
  if (err.code === "unauthenticated") {
    askToken(err);
    put(main, h("section", { class: "card" }, h("h1", {}, "Token required"), h("p", {}, "This server has bearer tokens, so the dashboard needs one to read rollouts (role reader; operator to act)."), errorView(err)));
    return;
  }
  put(main, h("section", { class: "card" }, h("h1", {}, "Could not load"), errorView(err), h("p", {}, h("a", { href: location.pathname, "data-nav": true }, "Try again"))));
}

async function listAllRollouts(signal) {
  const out = [];
  let pageToken = "";
  do {
    const res = await client.unary(`${RS}ListRollouts`, { pageToken }, { signal });
    out.push(...(res.rollouts ?? []));
    pageToken = res.nextPageToken ?? "";
  } while (pageToken !== "");
  return out;
}

async function listAllEvents(name, signal) {
  const out = [];
  let after = "0";
  for (;;) {
    const page = (await client.unary(`${RS}ListEvents`, { name, afterSeq: after, limit: 1000 }, { signal })).events ?? [];
    if (page.length === 0) return out;
    out.push(...page);
    after = page[page.length - 1].seq;
  }
}

// ---------------------------------------------------------------- views

let current = new AbortController();
let onTick = () => {};
let onResize = () => {};

function render() {
  // A new view (or a new token) starts afresh: an action asked of the old one is dropped.
  if ($("action-dialog").open) $("action-dialog").close();
  current.abort();
  current = new AbortController();
  streams.clear();
  showLive();
  onTick = () => {};
  onResize = () => {};
  const m = /^\/ui\/rollouts\/([^/]+)\/?$/.exec(location.pathname);
  const signal = current.signal;
  const view = m === null ? listView(signal) : rolloutView(decodeURIComponent(m[1]), signal);
  view.catch((err) => {
    if (!signal.aborted) viewError(err);
  });
}

document.addEventListener("click", (ev) => {
  const a = ev.target instanceof Element ? ev.target.closest("a[data-nav]") : null;
  if (a === null || ev.defaultPrevented || ev.button !== 0 || ev.metaKey || ev.ctrlKey || ev.shiftKey || ev.altKey) return;
  ev.preventDefault();
  if (a.getAttribute("href") !== location.pathname) history.pushState(null, "", a.getAttribute("href"));
  render();
  window.scrollTo(0, 0);
});
addEventListener("popstate", render);
setInterval(() => onTick(), 1000);
let resizeTimer;
addEventListener("resize", () => {
  clearTimeout(resizeTimer);
  resizeTimer = setTimeout(() => onResize(), 150);
});

/** The list: every rollout with its stage, weight, health and next action, kept live by WatchHealth. */
async function listView(signal) {
  document.title = "Rollouts · rollgate";
  crumbs([]);
  const rollouts = new Map();
  const healths = new Map();
  const tbody = h("tbody");
  const count = h("span", { class: "count muted" });
  const empty = h("p", { class: "empty muted", hidden: true }, "No rollouts yet. Create one with ", h("code", {}, "rollgate apply -f rollout.yaml"), " or the CreateRollout RPC; it appears here at once.");
  const head = ["Rollout", "Stage", "Weight", "Health", "Next action"];
  put(
    main,
    h(
      "section",
      { class: "card" },
      h("div", { class: "card-head" }, h("h1", {}, "Rollouts"), count),
      h("div", { class: "table-wrap" }, h("table", { class: "rollouts" }, h("thead", {}, h("tr", {}, head.map((t) => h("th", { scope: "col" }, t)))), tbody)),
      empty,
    ),
  );

  const draw = () => {
    const names = [...rollouts.keys()].sort();
    count.textContent = names.length === 1 ? "1 rollout" : `${names.length} rollouts`;
    empty.hidden = names.length > 0;
    put(tbody, names.map((n) => row(rollouts.get(n), healths.get(n))));
  };
  let drawQueued = false;
  const drawSoon = () => {
    if (drawQueued) return;
    drawQueued = true;
    requestAnimationFrame(() => {
      drawQueued = false;
      if (!signal.aborted) draw();
    });
  };
  const refreshing = new Set();
  const refresh = (name) => {
    if (refreshing.has(name)) return;
    refreshing.add(name);
    client
      .unary(`${RS}GetRollout`, { name }, { signal })
      .then((res) => rollouts.set(name, res.rollout), () => {})
      .finally(() => {
        refreshing.delete(name);
        drawSoon();
      });
  };

  for (const r of await listAllRollouts(signal)) rollouts.set(r.name, r);
  draw();
  followStream("health", `${DS}WatchHealth`, () => ({}), signal, (m) => {
    const health = m.health;
    if (health === undefined) return;
    if (m.deleted) {
      rollouts.delete(health.rollout);
      healths.delete(health.rollout);
    } else {
      healths.set(health.rollout, health);
      const r = rollouts.get(health.rollout);
      if (r === undefined || r.version !== health.rolloutVersion) refresh(health.rollout);
    }
    drawSoon();
  });
  onTick = refreshTimes;
}

function row(r, health) {
  const stage = enumShort(health?.stage ?? r.stage, "STAGE_");
  const step = Number(health?.currentStep ?? r.currentStep ?? 0);
  const paused = health?.paused ?? r.paused ?? false;
  const weight = health?.weightBp ?? r.weightBp ?? 0;
  const rec = enumShort(health?.recommendation, "RECOMMENDATION_");
  const href = `/ui/rollouts/${encodeURIComponent(r.name)}`;
  return h(
    "tr",
    { "data-rollout": r.name, "data-stage": stage },
    h("td", { "data-label": "Rollout" }, h("a", { class: "name", href, "data-nav": true }, r.name), h("div", { class: "sub" }, `${r.stableVersion ?? ""} → ${r.canaryVersion ?? ""}`)),
    h(
      "td",
      { "data-label": "Stage" },
      badge(stage),
      paused ? [" ", h("span", { class: "tag" }, "paused")] : null,
      stage === "CANARY" ? h("div", { class: "sub" }, `step ${step + 1} of ${(r.steps ?? []).length}`) : null,
    ),
    h("td", { "data-label": "Weight", class: "weight" }, h("span", { class: "num" }, weightText(weight)), weightBar(weight)),
    h(
      "td",
      { "data-label": "Health" },
      health === undefined ? h("span", { class: "muted" }, "–") : [h("span", { class: "score num" }, scoreText(health.score)), " ", badge(rec)],
    ),
    h("td", { "data-label": "Next action" }, health === undefined ? "–" : nextAction(health)),
  );
}

/** What each action asks and calls: the same RPCs as the API and the CLI. */
const ACTIONS = {
  promote: {
    label: "Promote",
    title: "Promote",
    rpc: "Promote",
    hint: "Move to the next step (or to staging or production). Refused while a gate fails or lacks samples, unless forced.",
    fields: () => [
      h("label", { for: "action-target" }, "Target"),
      h(
        "select",
        { id: "action-target", name: "target" },
        h("option", { value: "PROMOTE_TARGET_NEXT_STEP" }, "next step"),
        h("option", { value: "PROMOTE_TARGET_STAGING" }, "staging (all traffic to the canary)"),
        h("option", { value: "PROMOTE_TARGET_PRODUCTION" }, "production (the canary becomes stable)"),
      ),
      h("label", { class: "check" }, h("input", { type: "checkbox", name: "force", id: "action-force" }), " Force: promote even while gates fail or lack samples"),
    ],
    request: (name, form) => ({ name, target: form.get("target"), force: form.get("force") === "on", reason: form.get("reason") }),
  },
  weight: {
    label: "Set weight",
    title: "Set the weight of",
    rpc: "SetWeight",
    hint: "Scale the canary by hand to any share of keys, 0–100%.",
    fields: (r) => [
      h("label", { for: "action-weight" }, "Canary weight (%)"),
      h("input", { id: "action-weight", name: "weight", type: "number", min: 0, max: 100, step: 0.01, required: true, value: (r?.weightBp ?? 0) / 100, inputmode: "decimal" }),
    ],
    request: (name, form) => ({ name, weightBp: Math.round(Number(form.get("weight")) * 100), reason: form.get("reason") }),
  },
  pause: { label: "Pause", title: "Pause", rpc: "Pause", hint: "Hold the current weight: no automatic step changes (a rollback can still happen)." },
  resume: { label: "Resume", title: "Resume", rpc: "Resume", hint: "Unpause; restart a halted rollout at its step, or a rolled-back one after its cooldown." },
  halt: { label: "Halt", title: "Halt", rpc: "Halt", danger: true, hint: "The kill switch: weight 0, features off, automatic actions suspended until an operator resumes." },
  rollback: { label: "Roll back", title: "Roll back", rpc: "Rollback", danger: true, hint: "Abandon the canary: every key goes to the stable version and the canary's window is cleared." },
};

let pendingAction;

function openAction(kind, name, rollout, onDone) {
  const spec = ACTIONS[kind];
  pendingAction = { kind, spec, name, rollout, onDone };
  const dialog = $("action-dialog");
  dialog.dataset.action = kind;
  $("action-title").textContent = `${spec.title} ${name}`;
  $("action-hint").textContent = spec.hint;
  put($("action-fields"), spec.fields?.(rollout) ?? []);
  $("action-reason").value = "";
  $("action-error").hidden = true;
  put($("action-error"));
  const submit = $("action-submit");
  submit.disabled = false;
  submit.textContent = spec.label;
  submit.className = spec.danger ? "danger" : "primary";
  dialog.showModal();
  $("action-reason").focus();
}

$("action-cancel").addEventListener("click", () => $("action-dialog").close());
$("action-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const p = pendingAction;
  if (p === undefined) return;
  const form = new FormData($("action-form"));
  const reason = String(form.get("reason") ?? "").trim();
  form.set("reason", reason);
  const request = p.spec.request ? p.spec.request(p.name, form) : { name: p.name, reason };
  const submit = $("action-submit");
  submit.disabled = true;
  submit.textContent = "Working…";
  try {
    const res = await client.unary(`${RS}${p.spec.rpc}`, request);
    $("action-dialog").close();
    const r = res.rollout;
    toast(`${p.spec.label}: ${p.name} is ${words(enumShort(r?.stage, "STAGE_"))} at ${weightText(r?.weightBp)}${r?.paused ? ", paused" : ""}`);
    p.onDone(r);
  } catch (err) {
    put($("action-error"), errorView(err, p.rollout?.gates ?? []));
    $("action-error").hidden = false;
    $("action-error").scrollIntoView({ block: "nearest" });
    submit.disabled = false;
    submit.textContent = p.spec.label;
  }
});

/** A rollout's page: steps, gates, plots, audit log and actions, kept live by WatchHealth and WatchEvents. */
async function rolloutView(name, signal) {
  document.title = `${name} · rollgate`;
  crumbs([name]);
  put(main, h("p", { class: "muted loading" }, "Loading…"));
  let [rollout, health, events] = await Promise.all([
    client.unary(`${RS}GetRollout`, { name }, { signal }).then((r) => r.rollout),
    client.unary(`${DS}Health`, { rollout: name }, { signal }).then((r) => r.health),
    listAllEvents(name, signal),
  ]);
  let deleted = false;
  const verifier = createChainVerifier();
  const verifiable = canVerify();
  let verdict;
  let shown = EVENTS_SHOWN;

  // The plots' history, kept here from the Health answer and every WatchHealth message.
  const history = { score: [], gates: new Map() };
  let lastEvaluated;
  const windowMs = () => Math.max(durationMs(rollout.analysis?.window) || 300_000, 10_000);
  const record = (hl) => {
    const t = timeMs(hl.evaluatedAt) ?? Date.now();
    if (t === lastEvaluated) return;
    lastEvaluated = t;
    history.score.push([t, hl.score ?? 0]);
    for (const g of hl.gates ?? []) {
      let series = history.gates.get(g.name);
      if (series === undefined) history.gates.set(g.name, (series = { kind: g.kind, observed: [], threshold: [], baseline: [] }));
      const verdict = enumShort(g.verdict, "VERDICT_");
      if (Number(g.samples ?? 0) > 0) series.observed.push([t, g.observed ?? 0]);
      if (verdict !== "INCONCLUSIVE" || relativeBound(rollout.gates?.find((c) => c.name === g.name)) === undefined) series.threshold.push([t, g.threshold ?? 0]);
      if (g.baseline !== undefined) series.baseline.push([t, g.baseline]);
    }
    const oldest = Date.now() - windowMs() * 1.2;
    const trim = (list) => {
      let i = 0;
      while (i < list.length - 1 && list[i][0] < oldest) i++;
      if (i > 0) list.splice(0, i);
    };
    trim(history.score);
    for (const series of history.gates.values()) ["observed", "threshold", "baseline"].forEach((k) => trim(series[k]));
  };
  record(health);

  const headEl = h("section", { class: "card head" });
  const summaryEl = h("div", { class: "tiles" });
  const stepsEl = h("section", { class: "card" });
  const gatesEl = h("section", { class: "card" });
  const chartsEl = h("div", { class: "charts" });
  const eventsEl = h("section", { class: "card" });
  const chainEl = h("p", { class: "chain" });
  put(
    main,
    headEl,
    summaryEl,
    stepsEl,
    gatesEl,
    h("section", { class: "card" }, h("div", { class: "card-head" }, h("h2", {}, "Over the window"), h("span", { class: "muted" }, "kept by this page from the live health stream")), chartsEl),
    eventsEl,
  );

  const act = (kind) => openAction(kind, name, rollout, (r) => {
    if (r !== undefined) {
      rollout = r;
      drawHead();
      drawSteps();
    }
  });

  // The head and the steps are redrawn only when what they show changes, so that a focused
  // button keeps its focus while health streams in every interval.
  let headKey;
  let stepsKey;
  const drawHead = () => {
    const stage = enumShort(health.stage ?? rollout.stage, "STAGE_");
    const key = JSON.stringify([stage, health.paused, deleted, rollout.stableVersion, rollout.canaryVersion]);
    if (key === headKey) return;
    headKey = key;
    headEl.dataset.stage = stage;
    put(
      headEl,
      h(
        "div",
        { class: "head-main" },
        h("h1", {}, name, " ", badge(stage, "big"), health.paused ? [" ", h("span", { class: "tag" }, "paused")] : null),
        h("p", { class: "versions" }, h("span", { class: "muted" }, "stable "), h("code", {}, rollout.stableVersion), h("span", { class: "arrow" }, "→"), h("span", { class: "muted" }, "canary "), h("code", {}, rollout.canaryVersion)),
        deleted ? h("p", { class: "banner bad", role: "alert" }, "This rollout was deleted.") : null,
      ),
      h(
        "div",
        { class: "actions", role: "toolbar", "aria-label": "actions" },
        Object.entries(ACTIONS).map(([kind, spec]) =>
          h("button", { type: "button", class: spec.danger ? "danger" : "secondary", "data-action": kind, disabled: deleted, onclick: () => act(kind) }, spec.label),
        ),
      ),
    );
  };

  const drawSummary = () => {
    const rec = enumShort(health.recommendation, "RECOMMENDATION_");
    const samples = health.samples ?? {};
    const tile = (label, value, sub) => h("div", { class: "tile" }, h("div", { class: "tile-label" }, label), h("div", { class: "tile-value" }, value), sub ? h("div", { class: "tile-sub" }, sub) : null);
    put(
      summaryEl,
      tile("Weight", h("span", { class: "num" }, weightText(health.weightBp)), weightBar(health.weightBp)),
      tile("Health score", [h("span", { class: "num", id: "score" }, scoreText(health.score)), " ", badge(rec)], `${health.consecutiveBreaches ?? 0} consecutive breaches`),
      tile("Next action", nextAction(health), health.message ?? ""),
      tile("Samples in window", h("span", { class: "num" }, `${Number(samples.canary ?? 0).toLocaleString("en-US")}`), `canary · ${Number(samples.stable ?? 0).toLocaleString("en-US")} stable`),
    );
  };

  const drawSteps = () => {
    const stage = enumShort(health.stage ?? rollout.stage, "STAGE_");
    const currentStep = Number(health.currentStep ?? rollout.currentStep ?? 0);
    const steps = rollout.steps ?? [];
    const auto = rollout.analysis?.autoPromote === true;
    const key = JSON.stringify([stage, currentStep, steps, auto, rollout.stepStartedAt]);
    if (key === stepsKey) return;
    stepsKey = key;
    put(
      stepsEl,
      h("div", { class: "card-head" }, h("h2", {}, "Steps"), h("span", { class: "muted" }, auto ? "promoted automatically when every gate passes" : "promoted by hand (auto-promote off)")),
      h(
        "ol",
        { class: "steps" },
        steps.map((st, i) => {
          const state = stage === "CANARY" ? (i < currentStep ? "done" : i === currentStep ? "current" : "todo") : stage === "STAGING" || stage === "PRODUCTION" ? "done" : i === currentStep ? "stopped" : "todo";
          const minimums = [durationMs(st.minDuration) > 0 ? `≥ ${span(durationMs(st.minDuration))}` : null, Number(st.minSamples ?? 0) > 0 ? `≥ ${Number(st.minSamples).toLocaleString("en-US")} samples` : null].filter(Boolean).join(", ");
          return h(
            "li",
            { class: state, "aria-current": state === "current" ? "step" : undefined, "data-step": i + 1 },
            h("span", { class: "dot" }, String(i + 1)),
            h("span", { class: "step-weight" }, weightText(st.weightBp)),
            h("span", { class: "step-sub" }, state === "current" ? ["current", timeMs(rollout.stepStartedAt) ? h("span", { class: "step-since" }, " · since ", when(timeMs(rollout.stepStartedAt))) : null] : minimums || " "),
          );
        }),
        h(
          "li",
          { class: stage === "PRODUCTION" ? "current done" : stage === "STAGING" ? "current" : "todo", "aria-current": stage === "STAGING" || stage === "PRODUCTION" ? "step" : undefined },
          h("span", { class: "dot" }, "✓"),
          h("span", { class: "step-weight" }, stage === "STAGING" ? "staging" : [h("span", { class: "long" }, "production"), h("span", { class: "short" }, "prod")]),
          h("span", { class: "step-sub" }, stage === "PRODUCTION" ? "done: the canary is stable" : "the canary becomes stable"),
        ),
      ),
      stage === "ROLLED_BACK" || stage === "HALTED"
        ? h("p", { class: `banner ${tone(stage)}` }, stage === "HALTED" ? "Halted (kill switch): every key gets the stable version; automatic actions are off until resumed." : "Rolled back: every key gets the stable version; the gates do not act. Resume restarts the canary after its cooldown.")
        : null,
    );
  };

  const drawGates = () => {
    put(gatesEl, h("div", { class: "card-head" }, h("h2", {}, "Gates"), h("span", { class: "muted" }, `evaluated ${localTime(timeMs(health.evaluatedAt))}`)), gatesTable(health.gates ?? [], rollout.gates ?? []));
  };

  const drawCharts = () => {
    const width = chartsEl.clientWidth || 600;
    const cols = width >= 760 ? 2 : 1;
    chartsEl.classList.toggle("cols-2", cols === 2);
    const w = (width - (cols - 1) * 16) / cols;
    const t1 = Date.now();
    const t0 = t1 - windowMs();
    const figures = [
      h(
        "figure",
        { class: "plot", "data-plot": "score" },
        h("figcaption", {}, "Health score", h("span", { class: "legend" }, h("i", { class: "key line-score" }), "score", h("i", { class: "key guide-healthy" }), "0.9", h("i", { class: "key guide-rollback" }), "0.8")),
        chart({
          width: w,
          t0,
          t1,
          yMin: 0,
          yMax: 1,
          series: [{ points: history.score, cls: "line-score", label: "health score" }],
          guides: [
            { y: 0.9, cls: "guide-healthy" },
            { y: 0.8, cls: "guide-rollback" },
          ],
          yFormat: (v) => v.toFixed(1),
          label: "health score over the window",
        }),
      ),
    ];
    for (const g of health.gates ?? []) {
      const series = history.gates.get(g.name);
      if (series === undefined) continue;
      figures.push(
        h(
          "figure",
          { class: "plot", "data-plot": g.name },
          h("figcaption", {}, g.name, h("span", { class: "legend" }, h("i", { class: "key line-observed" }), "canary", h("i", { class: "key line-threshold" }), "threshold", h("i", { class: "key line-baseline" }), "stable")),
          chart({
            width: w,
            t0,
            t1,
            yMin: 0,
            series: [
              { points: series.baseline, cls: "line-baseline", label: "stable baseline" },
              { points: series.threshold, cls: "line-threshold", label: "threshold" },
              { points: series.observed, cls: "line-observed", label: "canary observed" },
            ],
            yFormat: (v) => gateValue(g.kind, v),
            label: `${g.name} over the window`,
          }),
        ),
      );
    }
    put(chartsEl, figures);
  };

  const drawChain = () => {
    const v = verdict;
    chainEl.className = "chain";
    if (!verifiable) {
      chainEl.classList.add("warn");
      chainEl.dataset.ok = "unknown";
      put(chainEl, "Hash chain not checked: this page is not a secure context (no WebCrypto). Open it over HTTPS or on localhost, or run ", h("code", {}, `rollgate events ${name} --verify`), ".");
      return;
    }
    if (v === undefined) {
      put(chainEl, "Checking the hash chain…");
      return;
    }
    chainEl.dataset.ok = String(v.ok);
    chainEl.dataset.checked = String(v.checked);
    if (v.ok) {
      delete chainEl.dataset.seq;
      chainEl.classList.add("good");
      put(chainEl, h("strong", {}, "✓ Hash chain intact"), `: ${v.checked} events verified (SHA-256, in this browser).`);
    } else {
      chainEl.dataset.seq = String(v.seq);
      chainEl.classList.add("bad");
      put(chainEl, h("strong", {}, `✗ Hash chain broken at seq ${v.seq}`), `: ${v.problem} (${v.checked} events before it verified).`);
    }
  };

  const drawEvents = () => {
    const list = events.slice(-shown).reverse();
    put(
      eventsEl,
      h("div", { class: "card-head" }, h("h2", {}, "Audit log"), h("span", { class: "muted" }, `${events.length} events`)),
      chainEl,
      events.length === 0
        ? h("p", { class: "muted" }, "No events.")
        : h(
            "div",
            { class: "table-wrap" },
            h(
              "table",
              { class: "events" },
              h("thead", {}, h("tr", {}, ["Seq", "Time", "Event", "Actor", "Reason"].map((t) => h("th", { scope: "col" }, t)))),
              h(
                "tbody",
                {},
                list.map((e) => {
                  const type = enumShort(e.type, "EVENT_TYPE_");
                  let summary = "";
                  try {
                    summary = JSON.parse(e.snapshot ?? "{}").summary ?? "";
                  } catch {
                    summary = "";
                  }
                  return h(
                    "tr",
                    { "data-seq": e.seq, "data-type": type },
                    h("td", { class: "num", "data-label": "Seq" }, e.seq),
                    h("td", { class: "time", "data-label": "Time" }, localTime(timeMs(e.time))),
                    h("td", { "data-label": "Event" }, h("span", { class: `etype ${tone(type === "ROLLED_BACK" || type === "HALTED" || type === "GATE_BREACH" ? "FAIL" : type === "PROMOTED" ? "PASS" : "")}` }, words(type))),
                    h("td", { class: "actor", "data-label": "Actor" }, e.actor ?? ""),
                    h("td", { class: "reason", "data-label": "Reason" }, h("div", {}, e.reason ?? ""), summary && summary !== e.reason ? h("div", { class: "sub" }, summary) : null),
                  );
                }),
              ),
            ),
          ),
      events.length > shown
        ? h("p", {}, h("button", { type: "button", class: "link", onclick: () => { shown += 200; drawEvents(); } }, `Show older events (${events.length - shown} more)`))
        : null,
    );
    drawChain();
  };

  const drawHealth = () => {
    drawHead();
    drawSummary();
    drawSteps();
    drawGates();
    drawCharts();
  };
  drawHealth();
  drawEvents();
  if (verifiable) verifier.add(events).then((v) => {
    verdict = v;
    if (!signal.aborted) drawChain();
  });

  let refreshTimer;
  const refreshRollout = () => {
    clearTimeout(refreshTimer);
    refreshTimer = setTimeout(() => {
      client.unary(`${RS}GetRollout`, { name }, { signal }).then(
        (res) => {
          rollout = res.rollout;
          drawHead();
          drawSteps();
          drawGates();
        },
        () => {},
      );
    }, 100);
  };

  followStream("health", `${DS}WatchHealth`, () => ({ rollout: name }), signal, (m) => {
    if (m.health === undefined) return;
    health = m.health;
    if (m.deleted) deleted = true;
    record(health);
    if (health.rolloutVersion !== rollout.version) refreshRollout();
    drawHealth();
  }, { onFailed: (err) => {
    if (err.code === "not_found") {
      deleted = true;
      drawHead();
    } else toast(`${err.code}: ${err.message}`, "bad");
  } });
  followStream(
    "events",
    `${RS}WatchEvents`,
    () => ({ name, afterSeq: events.length === 0 ? "0" : events[events.length - 1].seq }),
    signal,
    (m) => {
      const e = m.event;
      if (e === undefined) return;
      // A reconnect resumes after the last event held: nothing is shown twice.
      if (events.length > 0 && BigInt(e.seq) <= BigInt(events[events.length - 1].seq)) return;
      events.push(e);
      drawEvents();
      if (verifiable) verifier.add([e]).then((v) => {
        verdict = v;
        if (!signal.aborted) drawChain();
      });
      refreshRollout();
    },
    { idleMs: EVENTS_IDLE_MS, onFailed: () => {} },
  );
  onTick = () => {
    refreshTimes();
    drawCharts();
  };
  onResize = drawCharts;
}

tokenButton();
render();
