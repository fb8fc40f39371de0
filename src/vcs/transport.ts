/**
 * HTTP transport for the Git client: one keep-alive undici Pool per origin, auth, per-request
 * timeouts, bounded retries with exponential backoff and full jitter (network errors, timeouts
 * and 5xx only, never 4xx), cancellation, and typed errors. Credentials never reach logs or errors.
 */
import type { Readable } from "node:stream";
import { setTimeout as sleep } from "node:timers/promises";
import { promisify } from "node:util";
import { gzip as gzipCb } from "node:zlib";
import { Pool } from "undici";
import { MesaError } from "../errors.js";
import type { Logger } from "../log.js";
import { VERSION } from "../version.js";
import { errorFromStatus, isRetryable } from "./errors.js";

export interface TransportOptions {
  /** Repository URL, e.g. http://127.0.0.1:7878/org/repo.git */
  url: string;
  /**
   * API key or access token; sent as the HTTP Basic password (user "mesa") or as a Bearer token.
   * A function is asked before every request, so a renewed token takes effect at once.
   */
  credential?: string | (() => string);
  authScheme?: "basic" | "bearer";
  /** Inactivity timeout for connecting, headers and each body chunk (default 30 s). */
  timeoutMs?: number;
  /** Retries after the first attempt for retryable failures (default 3). */
  retries?: number;
  signal?: AbortSignal;
  logger?: Logger;
}

/** A request body too large for memory: `open` gives a fresh stream of `length` bytes per attempt. */
export interface StreamBody {
  length: number;
  open(): Readable;
}

export interface HttpRequest {
  method: "GET" | "POST";
  /** Path below the repository URL, e.g. "/info/refs?service=git-upload-pack". */
  path: string;
  headers?: Record<string, string>;
  body?: Buffer | StreamBody;
  /** gzip the body when it is large enough to be worth it. */
  gzip?: boolean;
  signal?: AbortSignal;
}

export interface HttpResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: AsyncIterable<Buffer>;
}

const gzip = promisify(gzipCb);
const GZIP_MIN_BYTES = 4096;
const BACKOFF_BASE_MS = 150;
const BACKOFF_MAX_MS = 4000;

/** Parses the repository URL; credentials embedded in it are refused so they can't leak into logs. */
export function parseRepoUrl(url: string): { origin: string; basePath: string } {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new MesaError("INVALID_ARGUMENT", `invalid repository URL '${url}'`);
  }
  if (u.protocol !== "http:" && u.protocol !== "https:") {
    throw new MesaError("INVALID_ARGUMENT", `repository URL must be http(s): '${u.protocol}'`);
  }
  if (u.username || u.password) {
    throw new MesaError("INVALID_ARGUMENT", "repository URL must not contain credentials", {
      hint: "pass the key or token separately",
    });
  }
  return { origin: u.origin, basePath: u.pathname.replace(/\/+$/, "") };
}

/** Maps low-level failures (undici, sockets, aborts) to typed errors. */
export function classifyError(err: unknown, aborted: boolean, url?: string): MesaError {
  if (err instanceof MesaError) return err;
  if (aborted) return new MesaError("ABORTED", "request cancelled", { cause: err });
  const code = (err as { code?: string })?.code ?? "";
  const msg = (err as Error)?.message ?? String(err);
  if (/TIMEOUT/.test(code) || code === "ETIMEDOUT") {
    return new MesaError("TIMEOUT", `request to the Git server timed out (${code})`, { cause: err });
  }
  if (code === "UND_ERR_ABORTED" || (err as Error)?.name === "AbortError") {
    return new MesaError("ABORTED", "request cancelled", { cause: err });
  }
  return new MesaError(
    "NETWORK",
    `cannot reach the Git server${url ? ` at ${url}` : ""} (${code === "ECONNREFUSED" ? "connection refused" : code || msg})`,
    {
      cause: err,
      hint: "start it (`mesa serve`, or `mesa quickstart` for a local one) or set MESA_SERVICE_URL (service-url in config.toml) to your server",
    },
  );
}

function checkCredential(credential: string): void {
  if (/[\r\n]/.test(credential)) throw new MesaError("INVALID_KEY", "credential contains a line break");
}

/**
 * One sentence for a Git HTTP status: what it means for this repository, with the server's
 * own message when it sent one (JSON `{error:{message}}` or a short text line), never raw JSON.
 */
function gitStatusMessage(status: number, url: string, body: string): string {
  let said = "";
  try {
    said = (JSON.parse(body) as { error?: { message?: string } }).error?.message ?? "";
  } catch {
    said = /^[^{<\n]{1,200}$/.test(body) ? body : "";
  }
  const base =
    status === 404
      ? `repository ${url} not found`
      : status === 401
        ? `the Git server at ${url} refused the credential`
        : status === 403
          ? `the credential may not access ${url}`
          : `the Git server at ${url} answered HTTP ${status}`;
  // The server's sentence only when it adds something ("repository not found" does not).
  const adds = said && !(status === 404 && /not found/i.test(said)) && !base.includes(said);
  return adds ? `${base} (${said})` : base;
}

export class GitHttp {
  private readonly pool: Pool;
  private readonly basePath: string;
  private readonly credential?: () => string;
  private readonly authScheme: "basic" | "bearer";
  private readonly timeoutMs: number;
  private readonly retries: number;
  private readonly signal?: AbortSignal;
  private readonly logger?: Logger;
  readonly url: string;

  constructor(opts: TransportOptions) {
    const { origin, basePath } = parseRepoUrl(opts.url);
    this.url = `${origin}${basePath}`;
    this.basePath = basePath;
    this.timeoutMs = opts.timeoutMs ?? 30_000;
    this.retries = Math.max(0, opts.retries ?? 3);
    this.signal = opts.signal;
    this.logger = opts.logger;
    this.authScheme = opts.authScheme ?? "basic";
    const credential = opts.credential;
    if (typeof credential === "string") {
      checkCredential(credential);
      this.credential = () => credential;
    } else this.credential = credential;
    this.pool = new Pool(origin, {
      connections: 8,
      pipelining: 1,
      keepAliveTimeout: 30_000,
      connect: { timeout: this.timeoutMs },
      headersTimeout: this.timeoutMs,
      bodyTimeout: this.timeoutMs,
    });
  }

  private authHeader(): string | undefined {
    if (!this.credential) return undefined;
    const credential = this.credential();
    checkCredential(credential);
    return this.authScheme === "bearer"
      ? `Bearer ${credential}`
      : `Basic ${Buffer.from(`mesa:${credential}`).toString("base64")}`;
  }

  /**
   * Sends the request and hands the streaming response to `consume`. A failure anywhere in an
   * attempt (including while `consume` reads the body) that is retryable starts a fresh attempt,
   * so `consume` must build its result from scratch each time.
   */
  async run<T>(req: HttpRequest, consume: (res: HttpResponse) => Promise<T>): Promise<T> {
    let body = req.body;
    const headers: Record<string, string> = { "user-agent": `mesa/${VERSION}`, ...req.headers };
    if (body && !Buffer.isBuffer(body)) headers["content-length"] = String(body.length);
    else if (body && req.gzip && body.length >= GZIP_MIN_BYTES) {
      // On libuv's pool: a 20,000-oid object-info request is ~1 MB, 35 ms of deflate.
      body = await gzip(body, { level: 1 });
      headers["content-encoding"] = "gzip";
    }
    const signals = [this.signal, req.signal].filter((s): s is AbortSignal => s !== undefined);
    const signal =
      signals.length === 0 ? undefined : signals.length === 1 ? signals[0] : AbortSignal.any(signals);
    for (let attempt = 0; ; attempt++) {
      // Asked on every attempt: a retry after a token renewal sends the new token.
      const auth = this.authHeader();
      if (auth) headers.authorization = auth;
      try {
        return await this.once(req, headers, body, signal, consume);
      } catch (raw) {
        const err = classifyError(raw, signal?.aborted === true, this.url);
        if (!isRetryable(err) || attempt >= this.retries) throw err;
        const delay = Math.random() * Math.min(BACKOFF_MAX_MS, BACKOFF_BASE_MS * 2 ** attempt);
        this.logger?.warn(
          {
            url: this.url,
            path: req.path.split("?")[0],
            code: err.code,
            attempt: attempt + 1,
            delayMs: Math.round(delay),
          },
          "retrying Git request",
        );
        try {
          await sleep(delay, undefined, { signal });
        } catch {
          throw new MesaError("ABORTED", "request cancelled");
        }
      }
    }
  }

  private async once<T>(
    req: HttpRequest,
    headers: Record<string, string>,
    body: Buffer | StreamBody | undefined,
    signal: AbortSignal | undefined,
    consume: (res: HttpResponse) => Promise<T>,
  ): Promise<T> {
    const res = await this.pool.request({
      method: req.method,
      path: `${this.basePath}${req.path}`,
      headers,
      body: body === undefined || Buffer.isBuffer(body) ? body : body.open(),
      signal,
    });
    if (res.statusCode < 200 || res.statusCode >= 300) {
      const text = (await res.body.text().catch(() => "")).slice(0, 300).trim();
      const err = errorFromStatus(res.statusCode, gitStatusMessage(res.statusCode, this.url, text), {
        url: this.url,
        request: `${req.method} ${req.path.split("?")[0]}`,
      });
      if (err.code === "UNAUTHORIZED") {
        return Promise.reject(
          new MesaError("UNAUTHORIZED", err.message, {
            details: err.details,
            hint: "check the key (MESA_API_KEY, MESA_ORGS or `mesa auth set-key`) and that MESA_SERVICE_URL points at the server it belongs to",
          }),
        );
      }
      throw err;
    }
    try {
      return await consume({ status: res.statusCode, headers: res.headers, body: res.body });
    } finally {
      // A body left half-read would pin the connection; destroying it releases the socket.
      // undici emits an AbortError when a body is destroyed early; nobody is listening any more.
      if (!res.body.readableEnded && !res.body.destroyed) {
        res.body.on("error", () => {});
        res.body.destroy();
      }
    }
  }

  async close(): Promise<void> {
    await this.pool.close();
  }
}
