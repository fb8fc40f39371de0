import { spawn } from "node:child_process";
import { availableParallelism } from "node:os";
import { PassThrough, type Readable } from "node:stream";
import { createGunzip, gunzipSync } from "node:zlib";
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import type { Logger } from "../log.js";
import { nameProblem } from "../names.js";
import { authenticate, authorize, credentialFrom } from "./auth.js";
import { indexChanges } from "./changes.js";
import { ApiError, errorBody, notFound } from "./errors.js";
import { gitEnv } from "./git.js";
import { ObjectRequests, parseBlobFetch } from "./object-requests.js";
import type { StateStore } from "./state.js";
import type { DataDir } from "./storage.js";

/**
 * Git smart HTTP (compat.md §7) through the real `git http-backend`, as a CGI: the request
 * body is streamed in, the CGI headers are parsed and the rest is streamed back. Fetches go
 * straight to `git upload-pack --stateless-rpc`, the one thing http-backend would run for them.
 */
export interface GitHttpOptions {
  data: DataDir;
  store: StateStore;
  log: Logger;
  /** A git that neither reads nor writes for this long is killed. */
  idleTimeoutMs: number;
  /** Git processes allowed at once; more requests get 503 (clients retry 5xx with backoff). */
  maxConcurrent?: number;
}

const SERVICES = new Set(["git-upload-pack", "git-receive-pack"]);

/** Git requests being served now (all repos). */
let running = 0;

/** Fetch bodies up to this size, complete within this time, are read first: some are answered in-process. */
const SMALL_FETCH_BYTES = 256 << 10;
const SMALL_FETCH_WAIT_MS = 1000;

/** Server-side settings every request gets (instead of per-repo config files). */
const GIT_CONFIG: Array<[string, string]> = [
  ["uploadpack.allowFilter", "true"],
  ["uploadpack.allowAnySHA1InWant", "true"],
  ["transfer.advertiseObjectInfo", "true"],
  ["http.receivepack", "true"],
  ["receive.fsckObjects", "true"],
  ["gc.auto", "0"],
];

/** What http-backend answers a fetch with. */
const FETCH_HEADERS = {
  "Content-Type": "application/x-git-upload-pack-result",
  "Cache-Control": "no-cache, max-age=0, must-revalidate",
  Pragma: "no-cache",
  Expires: "Fri, 01 Jan 1980 00:00:00 GMT",
};

function configEnv(): Record<string, string> {
  const env: Record<string, string> = { GIT_CONFIG_COUNT: String(GIT_CONFIG.length) };
  GIT_CONFIG.forEach(([k, v], i) => {
    env[`GIT_CONFIG_KEY_${i}`] = k;
    env[`GIT_CONFIG_VALUE_${i}`] = v;
  });
  return env;
}

export function registerGitHttp(app: FastifyInstance, opts: GitHttpOptions): void {
  // Pack bodies are streamed to git untouched (possibly gzip), never buffered.
  app.addContentTypeParser(
    ["application/x-git-upload-pack-request", "application/x-git-receive-pack-request"],
    (_req, payload, done) => done(null, payload),
  );
  const objects = new ObjectRequests(gitEnv(configEnv()));
  app.addHook("onClose", async () => objects.close());
  const handler = (rest: string) => async (req: FastifyRequest, reply: FastifyReply) =>
    serveGit(req, reply, rest, opts, objects);
  app.get("/:org/:repo/info/refs", handler("info/refs"));
  app.post("/:org/:repo/git-upload-pack", handler("git-upload-pack"));
  app.post("/:org/:repo/git-receive-pack", handler("git-receive-pack"));
}

function gitError(reply: FastifyReply, err: ApiError): FastifyReply {
  if (err.status === 401) reply.header("WWW-Authenticate", 'Basic realm="mesa", charset="UTF-8"');
  return reply.code(err.status).send(errorBody(err.code, err.message));
}

async function serveGit(
  req: FastifyRequest,
  reply: FastifyReply,
  rest: string,
  opts: GitHttpOptions,
  objects: ObjectRequests,
) {
  const { org, repo: repoGit } = req.params as { org: string; repo: string };
  const query = req.query as Record<string, string | undefined>;
  const service = rest === "info/refs" ? query.service : rest;
  try {
    if (!service || !SERVICES.has(service)) throw new ApiError(403, "FORBIDDEN", "only smart HTTP is served");
    const principal = await authenticate(opts.store, credentialFrom(req.headers.authorization));
    // `<repo>.git` is canonical; plain `<repo>` is accepted too, as most Git hosts do.
    const repo = repoGit.endsWith(".git") ? repoGit.slice(0, -4) : repoGit;
    if (nameProblem(org) || nameProblem(repo)) throw notFound("repository not found");
    authorize(principal, org, repo, service === "git-receive-pack" ? "write" : "read");
    if (!(await opts.data.repoExists(org, repo))) throw notFound("repository not found");
    const limit = opts.maxConcurrent ?? Math.max(16, 4 * availableParallelism());
    if (running >= limit) {
      reply.header("Retry-After", "1");
      throw new ApiError(503, "UNAVAILABLE", "the server is busy; retry shortly");
    }
    running++;
    try {
      const target = { org, repo, rest, service };
      let body = req.method === "POST" ? (req.body as Readable | undefined) : undefined;
      if (rest === "git-upload-pack" && body) {
        body = await answerInProcess(req, reply, body, target, opts, objects);
        if (!body) return;
      }
      return await runBackend(req, reply, body, target, opts);
    } finally {
      running--;
    }
  } catch (err) {
    if (err instanceof ApiError) return gitError(reply, err);
    throw err;
  }
}

interface Target {
  org: string;
  repo: string;
  rest: string;
  service: string;
}

/**
 * Answers a fetch of blobs by id in-process (see object-requests.ts); otherwise returns the
 * body, whole again, for upload-pack. Undefined: answered.
 */
async function answerInProcess(
  req: FastifyRequest,
  reply: FastifyReply,
  body: Readable,
  target: Target,
  opts: GitHttpOptions,
  objects: ObjectRequests,
): Promise<Readable | undefined> {
  const { head, ended } = await readUpTo(body, SMALL_FETCH_BYTES, SMALL_FETCH_WAIT_MS);
  if (ended) {
    let plain: Buffer | undefined;
    try {
      const raw = Buffer.concat(head);
      const encoding = req.headers["content-encoding"];
      plain = encoding === undefined ? raw : gunzipSync(raw, { maxOutputLength: 4 * SMALL_FETCH_BYTES });
    } catch {
      // Not gzip after all, or too big: upload-pack says what is wrong with it.
    }
    const dir = opts.data.repoDir(target.org, target.repo);
    const wants = plain && parseBlobFetch(plain);
    const answer = wants && (await objects.fetch(dir, wants).catch(() => undefined));
    if (answer) {
      reply.hijack();
      reply.raw.writeHead(200, { ...FETCH_HEADERS, "Content-Length": String(answer.length) });
      reply.raw.end(answer);
      opts.log.info(
        { org: target.org, repo: target.repo, blobs: wants.length, inProcess: true },
        "git request",
      );
      return undefined;
    }
  }
  const whole = new PassThrough();
  for (const chunk of head) whole.write(chunk);
  if (ended) whole.end();
  else {
    body.on("error", (err) => whole.destroy(err));
    body.pipe(whole);
  }
  return whole;
}

/**
 * Reads `body` until it ends, more than `max` bytes came or `ms` passed; the rest stays in
 * the stream.
 */
function readUpTo(body: Readable, max: number, ms: number): Promise<{ head: Buffer[]; ended: boolean }> {
  return new Promise((resolve, reject) => {
    const head: Buffer[] = [];
    let bytes = 0;
    const timer = setTimeout(() => {
      stop();
      body.pause();
      resolve({ head, ended: false });
    }, ms);
    const stop = () => {
      clearTimeout(timer);
      body.off("data", onData);
      body.off("end", onEnd);
      body.off("error", onError);
    };
    const onData = (chunk: Buffer) => {
      head.push(chunk);
      bytes += chunk.length;
      if (bytes <= max) return;
      stop();
      body.pause();
      resolve({ head, ended: false });
    };
    const onEnd = () => {
      stop();
      resolve({ head, ended: true });
    };
    const onError = (err: Error) => {
      stop();
      reject(err);
    };
    body.on("data", onData);
    body.on("end", onEnd);
    body.on("error", onError);
  });
}

function runBackend(
  req: FastifyRequest,
  reply: FastifyReply,
  body: Readable | undefined,
  target: Target,
  opts: GitHttpOptions,
): Promise<void> {
  const headers = req.headers;
  const env: Record<string, string> = {
    ...configEnv(),
    GIT_PROJECT_ROOT: opts.data.reposRoot,
    GIT_HTTP_EXPORT_ALL: "1",
    PATH_INFO: `/${target.org}/${target.repo}.git/${target.rest}`,
    REQUEST_METHOD: req.method,
    QUERY_STRING: req.url.includes("?") ? req.url.slice(req.url.indexOf("?") + 1) : "",
    REMOTE_ADDR: req.ip,
    REMOTE_USER: "mesa",
  };
  if (headers["content-type"]) env.CONTENT_TYPE = String(headers["content-type"]);
  if (headers["content-length"]) env.CONTENT_LENGTH = String(headers["content-length"]);
  if (headers["content-encoding"]) env.HTTP_CONTENT_ENCODING = String(headers["content-encoding"]);
  const proto = headers["git-protocol"];
  if (typeof proto === "string" && /^[\x20-\x7e]{1,256}$/.test(proto)) env.GIT_PROTOCOL = proto;

  // A fetch skips the CGI: http-backend would only start `git upload-pack --stateless-rpc`, and
  // starting it here saves a process (about a quarter of the server's time) per request, which
  // a mount reading files lazily sends one of for each file it has to wait for.
  const isFetch = target.rest === "git-upload-pack";
  const encoding = headers["content-encoding"];
  if (isFetch && encoding !== undefined && encoding !== "gzip" && encoding !== "x-gzip") {
    gitError(reply, new ApiError(415, "UNSUPPORTED_MEDIA_TYPE", `unknown content encoding ${encoding}`));
    return Promise.resolve();
  }
  const log = opts.log.child({ org: target.org, repo: target.repo, service: target.service });
  const child = isFetch
    ? spawn("git", ["upload-pack", "--stateless-rpc", opts.data.repoDir(target.org, target.repo)], {
        env: gitEnv({ ...configEnv(), ...(env.GIT_PROTOCOL ? { GIT_PROTOCOL: env.GIT_PROTOCOL } : {}) }),
        stdio: ["pipe", "pipe", "pipe"],
      })
    : spawn("git", ["http-backend"], { env: gitEnv(env), stdio: ["pipe", "pipe", "pipe"] });
  reply.hijack();
  const res = reply.raw;

  // A push's last body bytes (the end of its report) wait until its commits are indexed as
  // changes: a pusher that goes on at once (a new change on top, a bookmark move by change id)
  // finds them, and nothing it pushes next hides them from indexing.
  const isPush = target.service === "git-receive-pack" && target.rest !== "info/refs";
  let heldBack: Buffer | undefined;

  return new Promise<void>((resolve) => {
    let stderr = "";
    let headerBuf = Buffer.alloc(0);
    // CGI headers are parsed first but sent only with the first body byte (or a clean exit),
    // so a git that dies before producing anything still becomes a proper 500.
    let parsed: { status: number; headers: Record<string, string> } | undefined = isFetch
      ? { status: 200, headers: FETCH_HEADERS }
      : undefined;
    let headersSent = false;
    let killedForIdle = false;
    let timer: NodeJS.Timeout | undefined;
    const touch = () => {
      clearTimeout(timer);
      timer = setTimeout(() => {
        killedForIdle = true;
        child.kill("SIGKILL");
      }, opts.idleTimeoutMs);
    };
    touch();

    const sendHeaders = () => {
      if (headersSent || !parsed) return;
      headersSent = true;
      res.writeHead(parsed.status, parsed.headers);
    };
    const write = (chunk: Buffer) => {
      sendHeaders();
      if (!res.write(chunk)) {
        child.stdout.pause();
        res.once("drain", () => child.stdout.resume());
      }
    };
    const fail = (why: string) => {
      log.error({ why, stderr: stderr.slice(-2000) }, "git http-backend failed");
      if (!headersSent) {
        headersSent = true;
        res.writeHead(500, { "content-type": "application/json" });
        res.end(JSON.stringify(errorBody("INTERNAL", "git failed to serve the request")));
      } else res.destroy();
    };

    if (body) {
      body.on("data", touch);
      body.on("error", () => child.kill("SIGKILL"));
      if (isFetch && encoding !== undefined) {
        const gunzip = createGunzip();
        gunzip.on("error", () => child.kill("SIGKILL"));
        body.pipe(gunzip).pipe(child.stdin);
      } else body.pipe(child.stdin);
    } else child.stdin.end();
    child.stdin.on("error", () => {
      // git stopped reading (it failed or finished early); its exit status tells which.
    });
    child.stderr.on("data", (b: Buffer) => {
      if (stderr.length < 16_384) stderr += b.toString("utf8");
    });
    // A client that goes away takes its git process with it.
    res.on("close", () => {
      if (!res.writableFinished) child.kill("SIGKILL");
    });

    child.stdout.on("data", (chunk: Buffer) => {
      touch();
      if (parsed) {
        if (!isPush) write(chunk);
        else {
          if (heldBack) write(heldBack);
          heldBack = chunk;
        }
        return;
      }
      headerBuf = Buffer.concat([headerBuf, chunk]);
      let end = headerBuf.indexOf("\r\n\r\n");
      let sepLen = 4;
      if (end < 0) {
        end = headerBuf.indexOf("\n\n");
        sepLen = 2;
      }
      if (end < 0) {
        if (headerBuf.length > 65_536) {
          child.kill("SIGKILL");
          fail("CGI header too long");
        }
        return;
      }
      let status = 200;
      const out: Record<string, string> = {};
      for (const line of headerBuf.subarray(0, end).toString("latin1").split(/\r?\n/)) {
        const colon = line.indexOf(":");
        if (colon <= 0) continue;
        const name = line.slice(0, colon).trim();
        const value = line.slice(colon + 1).trim();
        if (name.toLowerCase() === "status") status = Number.parseInt(value, 10) || 500;
        else out[name] = value;
      }
      parsed = { status, headers: out };
      const restBody = headerBuf.subarray(end + sepLen);
      if (restBody.length > 0) {
        if (isPush) heldBack = restBody;
        else write(restBody);
      }
    });

    child.on("error", (e) => {
      clearTimeout(timer);
      fail(`cannot start git: ${e.message}`);
      resolve();
    });
    child.on("close", async (code, signal) => {
      clearTimeout(timer);
      if (killedForIdle) fail("timed out");
      else if (code !== 0) fail(`exit ${code ?? signal}`);
      else if (!parsed) fail("no CGI headers");
      else {
        if (isPush) {
          try {
            await indexChanges(opts.data.repoDir(target.org, target.repo));
          } catch (e) {
            log.error({ err: e }, "indexing changes after a push failed");
          }
          if (heldBack) write(heldBack);
        }
        sendHeaders();
        res.end();
      }
      log.info({ status: res.statusCode, rest: target.rest }, "git request");
      resolve();
    });
  });
}
