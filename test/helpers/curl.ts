import { execFile } from "node:child_process";

/** What curl printed: the HTTP status and the body. */
export interface CurlResult {
  readonly status: number;
  readonly body: string;
  /** The body parsed as JSON, or undefined when it is not JSON. */
  readonly json: unknown;
}

/** Runs the real curl (HTTP/1.1 unless args say otherwise) and returns status and body. */
export function curl(args: string[], stdin?: string): Promise<CurlResult> {
  return new Promise((resolve, reject) => {
    const child = execFile("curl", ["-sS", "-w", "\n%{http_code}", ...args], { maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) => {
      if (err !== null && stdout === "") return reject(new Error(`curl failed: ${stderr}`));
      const cut = stdout.lastIndexOf("\n");
      const body = stdout.slice(0, cut);
      let json: unknown;
      try {
        json = JSON.parse(body);
      } catch {
        json = undefined;
      }
      resolve({ status: Number(stdout.slice(cut + 1)), body, json });
    });
    child.stdin!.end(stdin ?? "");
  });
}

/** POSTs a Connect JSON unary request with curl over HTTP/1.1 (the body goes through stdin). */
export function connectJson(baseUrl: string, procedure: string, body: unknown, headers: string[] = []): Promise<CurlResult> {
  return curl([
    "-X",
    "POST",
    `${baseUrl}/${procedure}`,
    "-H",
    "content-type: application/json",
    ...headers.flatMap((h) => ["-H", h]),
    "--data-binary",
    "@-",
  ], JSON.stringify(body));
}
