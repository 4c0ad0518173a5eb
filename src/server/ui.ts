import { createHash } from "node:crypto";
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import type { OutgoingHttpHeaders, ServerResponse } from "node:http";
import { dirname, extname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { gzipSync } from "node:zlib";
import type { RequestHandler } from "./http-endpoints.js";

/**
 * The operators' dashboard at `/ui/` (README "Dashboard"): hand-written HTML, CSS and ES modules
 * from the repository's `ui/` folder, read once at start and served from memory by rollgate
 * itself. The page talks to the same RPCs as every other client (Connect JSON over `fetch`), so
 * the same validation, roles and audit apply; nothing here reads or changes rollouts.
 */

/** Where the dashboard lives on the server's port. */
export const DASHBOARD_PATH = "/ui/";

/** The prefix of a rollout's page: `/ui/rollouts/<name>` answers the dashboard's index. */
export const DASHBOARD_ROLLOUT_PREFIX = "/ui/rollouts/";

/**
 * The Content-Security-Policy of every dashboard answer: nothing but the server's own scripts,
 * styles and API; no inline code, no frames, no form posts.
 */
export const DASHBOARD_CSP =
  "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/** Content types of the asset kinds served; files of other kinds in the folder are not served. */
const CONTENT_TYPES: Readonly<Record<string, string>> = {
  ".html": "text/html; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".svg": "image/svg+xml",
  ".png": "image/png",
};

/** One asset held in memory: its bytes, their gzip and the headers that go with them. */
export interface DashboardAsset {
  readonly name: string;
  readonly type: string;
  readonly body: Buffer;
  readonly gzip: Buffer;
  /** A strong validator: the content's SHA-256, quoted. */
  readonly etag: string;
}

/** The dashboard's assets as loaded at start, or why there are none. */
export interface DashboardAssets {
  /** The folder they were read from. */
  readonly dir: string;
  /** By file name (the folder is flat): index.html, app.js, style.css, … */
  readonly files: ReadonlyMap<string, DashboardAsset>;
  /** Set when the folder or its index.html is missing: the dashboard then answers 404 saying so. */
  readonly missing?: string;
}

/**
 * Returns the default asset folder: `ui/` at the package root, the first folder up from this
 * module holding a package.json (the repository when run from `src/` or `dist/src/`, `/app` in
 * the Docker image).
 */
export function defaultDashboardDir(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (existsSync(join(dir, "package.json"))) return join(dir, "ui");
    const up = dirname(dir);
    if (up === dir) return join(dirname(fileURLToPath(import.meta.url)), "ui");
    dir = up;
  }
}

/** Reads every servable file of the asset folder into memory, once; never throws. */
export function loadDashboardAssets(dir: string = defaultDashboardDir()): DashboardAssets {
  const files = new Map<string, DashboardAsset>();
  if (!existsSync(dir) || !statSync(dir).isDirectory()) return { dir, files, missing: `${dir} does not exist` };
  for (const name of readdirSync(dir).sort()) {
    const type = CONTENT_TYPES[extname(name)];
    const path = join(dir, name);
    if (type === undefined || !statSync(path).isFile()) continue;
    const body = readFileSync(path);
    const etag = `"${createHash("sha256").update(body).digest("base64url").slice(0, 32)}"`;
    files.set(name, { name, type, body, gzip: gzipSync(body, { level: 9 }), etag });
  }
  if (!files.has("index.html")) return { dir, files, missing: `${join(dir, "index.html")} does not exist` };
  return { dir, files };
}

/** Headers every dashboard answer carries, whatever its status. */
const SECURITY_HEADERS: OutgoingHttpHeaders = {
  "content-security-policy": DASHBOARD_CSP,
  "x-content-type-options": "nosniff",
  "referrer-policy": "no-referrer",
  "cross-origin-opener-policy": "same-origin",
  "cross-origin-resource-policy": "same-origin",
};

/** Returns true when an If-None-Match header value names `etag` (or is `*`). */
function matchesEtag(header: string | string[] | undefined, etag: string): boolean {
  if (header === undefined) return false;
  const value = Array.isArray(header) ? header.join(",") : header;
  if (value.trim() === "*") return true;
  return value.split(",").some((tag) => tag.trim().replace(/^W\//, "") === etag);
}

/** Returns true when the client takes gzip (an Accept-Encoding naming it without q=0). */
function acceptsGzip(header: string | string[] | undefined): boolean {
  if (header === undefined) return false;
  const value = Array.isArray(header) ? header.join(",") : header;
  return value.split(",").some((part) => {
    const [coding, ...params] = part.trim().toLowerCase().split(";");
    if (coding !== "gzip" && coding !== "*") return false;
    return !params.some((p) => /^\s*q\s*=\s*0(\.0*)?\s*$/.test(p));
  });
}

/**
 * Returns a handler that serves the dashboard — `GET /` redirects to `/ui/`; `/ui/` and
 * `/ui/rollouts/<name>` answer its index; `/ui/<file>` an asset — with ETag revalidation, gzip,
 * and a strict Content-Security-Policy, and passes every other request to `next`. Only GET and
 * HEAD of `/` and `/ui…` are looked at, with no allocation for the rest (Connect GET Route).
 */
export function withDashboard(assets: DashboardAssets, next: RequestHandler): RequestHandler {
  return (req, res) => {
    const url = req.url;
    const method = req.method;
    if (url === undefined || (method !== "GET" && method !== "HEAD")) {
      if (url !== undefined && url.startsWith("/ui") && isDashboardPath(url)) return notAllowed(res);
      return next(req, res);
    }
    if (url !== "/" && !url.startsWith("/?") && !url.startsWith("/ui")) return next(req, res);
    const path = url.split("?", 1)[0]!;
    if (path === "/" || path === "/ui") return redirect(res, DASHBOARD_PATH);
    if (!isDashboardPath(path)) return next(req, res);
    const r = res as ServerResponse;
    if (assets.missing !== undefined) {
      r.writeHead(404, { ...SECURITY_HEADERS, "content-type": "text/plain; charset=utf-8", "cache-control": "no-store" });
      r.end(method === "HEAD" ? undefined : `the dashboard's assets are not installed: ${assets.missing}\n`);
      return;
    }
    const name = path === DASHBOARD_PATH || path.startsWith(DASHBOARD_ROLLOUT_PREFIX) ? "index.html" : path.slice(DASHBOARD_PATH.length);
    const asset = assets.files.get(name);
    if (asset === undefined) {
      r.writeHead(404, { ...SECURITY_HEADERS, "content-type": "text/plain; charset=utf-8", "cache-control": "no-store" });
      r.end(method === "HEAD" ? undefined : `no such dashboard file: ${path}\n`);
      return;
    }
    // Assets keep their names from release to release, so the browser revalidates each use
    // (a 304 costs one round trip and no body).
    const common: OutgoingHttpHeaders = { ...SECURITY_HEADERS, etag: asset.etag, "cache-control": "no-cache", vary: "accept-encoding" };
    if (matchesEtag(req.headers["if-none-match"], asset.etag)) {
      r.writeHead(304, common);
      r.end();
      return;
    }
    const gzip = acceptsGzip(req.headers["accept-encoding"]);
    const body = gzip ? asset.gzip : asset.body;
    r.writeHead(200, {
      ...common,
      "content-type": asset.type,
      "content-length": body.length,
      ...(gzip ? { "content-encoding": "gzip" } : {}),
    });
    r.end(method === "HEAD" ? undefined : body);
  };
}

/** Returns true for `/ui/` and the paths below it. */
function isDashboardPath(path: string): boolean {
  return path === "/ui" || path.startsWith(DASHBOARD_PATH) || path.startsWith("/ui?");
}

function redirect(res: Parameters<RequestHandler>[1], location: string): void {
  const r = res as ServerResponse;
  r.writeHead(302, { ...SECURITY_HEADERS, location, "content-type": "text/plain; charset=utf-8", "cache-control": "no-store" });
  r.end(`see ${location}\n`);
}

function notAllowed(res: Parameters<RequestHandler>[1]): void {
  const r = res as ServerResponse;
  r.writeHead(405, { ...SECURITY_HEADERS, allow: "GET, HEAD", "content-type": "text/plain; charset=utf-8", "cache-control": "no-store" });
  r.end("the dashboard answers GET and HEAD only\n");
}
