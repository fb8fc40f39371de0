/**
 * Test servers on 127.0.0.1:
 * - serveGit: the real `git http-backend` (CGI) over a node http server, protocol v2 passed
 *   through, filters, any-SHA-1 wants and receive-pack enabled, optional Basic auth.
 * - faultProxy: sits between client and server and injects faults on chosen requests.
 */
import { spawn } from "node:child_process";
import http from "node:http";
import type { AddressInfo, Socket } from "node:net";

export interface GitServer {
  /** Base URL; a repo at <root>/org/repo.git is served at `${url}/org/repo.git`. */
  url: string;
  port: number;
  /** Number of requests served, by method and path (no query). */
  requests: Array<{ method: string; path: string; encoding?: string }>;
  close(): Promise<void>;
}

export interface ServeOptions {
  /** Require HTTP Basic auth with this password (any user). */
  password?: string;
  /** Extra `git -c` settings, e.g. { "uploadpack.allowFilter": "false" }. */
  config?: Record<string, string>;
}

const DEFAULT_CONFIG: Record<string, string> = {
  "uploadpack.allowFilter": "true",
  "uploadpack.allowAnySHA1InWant": "true",
  "http.receivepack": "true",
  "protocol.version": "2",
};

function trackSockets(server: http.Server): () => void {
  const sockets = new Set<Socket>();
  server.on("connection", (s) => {
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
  });
  return () => {
    for (const s of sockets) s.destroy();
  };
}

function listen(server: http.Server): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve((server.address() as AddressInfo).port));
  });
}

export async function serveGit(projectRoot: string, opts: ServeOptions = {}): Promise<GitServer> {
  const config = { ...DEFAULT_CONFIG, ...opts.config };
  const configEnv: Record<string, string> = { GIT_CONFIG_COUNT: String(Object.keys(config).length) };
  Object.entries(config).forEach(([k, v], i) => {
    configEnv[`GIT_CONFIG_KEY_${i}`] = k;
    configEnv[`GIT_CONFIG_VALUE_${i}`] = v;
  });
  const requests: GitServer["requests"] = [];
  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? "/", "http://127.0.0.1");
    requests.push({
      method: req.method ?? "",
      path: url.pathname,
      encoding: req.headers["content-encoding"],
    });
    if (opts.password !== undefined) {
      const auth = req.headers.authorization ?? "";
      const given = auth.startsWith("Basic ")
        ? Buffer.from(auth.slice(6), "base64").toString("utf8").split(":").slice(1).join(":")
        : undefined;
      if (given !== opts.password) {
        res.writeHead(401, { "www-authenticate": 'Basic realm="git"', "content-type": "text/plain" });
        res.end("authentication required\n");
        return;
      }
    }
    const env: NodeJS.ProcessEnv = {
      PATH: process.env.PATH,
      HOME: process.env.HOME,
      GIT_PROJECT_ROOT: projectRoot,
      GIT_HTTP_EXPORT_ALL: "1",
      PATH_INFO: decodeURIComponent(url.pathname),
      REQUEST_METHOD: req.method,
      QUERY_STRING: url.search.slice(1),
      CONTENT_TYPE: req.headers["content-type"] ?? "",
      REMOTE_USER: "mesa",
      REMOTE_ADDR: "127.0.0.1",
      ...configEnv,
    };
    if (req.headers["git-protocol"]) env.GIT_PROTOCOL = String(req.headers["git-protocol"]);
    if (req.headers["content-encoding"]) env.HTTP_CONTENT_ENCODING = String(req.headers["content-encoding"]);
    if (req.headers["content-length"]) env.CONTENT_LENGTH = String(req.headers["content-length"]);
    const child = spawn("git", ["http-backend"], { env, stdio: ["pipe", "pipe", "pipe"] });
    req.pipe(child.stdin);
    child.stdin.on("error", () => {});
    let stderr = "";
    child.stderr.on("data", (d: Buffer) => {
      stderr += d.toString();
    });
    // Parse the CGI header block, then stream the rest of stdout as the body.
    let head = Buffer.alloc(0);
    let headersSent = false;
    child.stdout.on("data", (chunk: Buffer) => {
      if (headersSent) {
        res.write(chunk);
        return;
      }
      head = Buffer.concat([head, chunk]);
      let end = head.indexOf("\r\n\r\n");
      let sepLen = 4;
      if (end < 0) {
        end = head.indexOf("\n\n");
        sepLen = 2;
      }
      if (end < 0) return;
      let status = 200;
      const headers: Record<string, string> = {};
      for (const line of head.subarray(0, end).toString("latin1").split(/\r?\n/)) {
        const i = line.indexOf(":");
        if (i < 0) continue;
        const k = line.slice(0, i).trim();
        const v = line.slice(i + 1).trim();
        if (k.toLowerCase() === "status") status = Number.parseInt(v, 10);
        else headers[k] = v;
      }
      res.writeHead(status, headers);
      headersSent = true;
      const rest = head.subarray(end + sepLen);
      if (rest.length > 0) res.write(rest);
    });
    child.on("close", (code) => {
      if (!headersSent) {
        res.writeHead(500, { "content-type": "text/plain" });
        res.end(`git http-backend failed (${code}): ${stderr}`);
      } else res.end();
    });
    req.on("aborted", () => child.kill("SIGKILL"));
  });
  const destroySockets = trackSockets(server);
  const port = await listen(server);
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    requests,
    close: () =>
      new Promise<void>((resolve) => {
        destroySockets();
        server.close(() => resolve());
      }),
  };
}

export type Fault =
  | { kind: "status"; status: number }
  /** Keep this many bytes of the body (negative: drop that many from the end). */
  | { kind: "truncate"; keepBytes: number }
  | { kind: "corrupt"; offsetFromEnd: number }
  | { kind: "delay"; ms: number }
  | { kind: "reset" }
  /** Forward this request body instead of the client's (the server answers a different question). */
  | { kind: "swap-request"; body: Buffer }
  | { kind: "reset-mid-body"; afterBytes: number };

export interface FaultProxy {
  url: string;
  /** Faults for the next requests that match `match` (a path suffix), consumed in order. */
  inject(match: string, ...faults: Fault[]): void;
  /** Number of proxied requests matching a path suffix. */
  count(match: string): number;
  close(): Promise<void>;
}

/** An HTTP proxy to `target` that misbehaves on demand. */
export async function faultProxy(target: string): Promise<FaultProxy> {
  const t = new URL(target);
  const queue: Array<{ match: string; fault: Fault }> = [];
  const seen: string[] = [];
  const server = http.createServer((req, res) => {
    const path = new URL(req.url ?? "/", "http://x").pathname;
    seen.push(path);
    const qi = queue.findIndex((q) => path.endsWith(q.match));
    const fault = qi >= 0 ? queue.splice(qi, 1)[0]!.fault : undefined;
    if (fault?.kind === "status") {
      req.resume();
      res.writeHead(fault.status, { "content-type": "text/plain" });
      res.end(`injected ${fault.status}\n`);
      return;
    }
    if (fault?.kind === "reset") {
      req.socket.destroy();
      return;
    }
    const headers = { ...req.headers };
    if (fault?.kind === "swap-request") {
      delete headers["content-encoding"];
      delete headers["transfer-encoding"];
      headers["content-length"] = String(fault.body.length);
    }
    const upstream = http.request(
      { host: t.hostname, port: t.port, method: req.method, path: req.url, headers },
      (up) => {
        const forward = async () => {
          const chunks: Buffer[] = [];
          for await (const c of up) chunks.push(c as Buffer);
          return Buffer.concat(chunks);
        };
        if (!fault || fault.kind === "swap-request") {
          res.writeHead(up.statusCode ?? 502, up.headers);
          up.pipe(res);
          return;
        }
        void forward().then(async (body) => {
          const headers = { ...up.headers };
          delete headers["content-length"];
          delete headers["transfer-encoding"];
          if (fault.kind === "delay") await new Promise((r) => setTimeout(r, fault.ms));
          if (fault.kind === "reset-mid-body") {
            res.writeHead(up.statusCode ?? 502, headers);
            res.write(body.subarray(0, fault.afterBytes));
            setTimeout(() => req.socket.destroy(), 20);
            return;
          }
          let out = body;
          if (fault.kind === "truncate")
            out = body.subarray(0, fault.keepBytes < 0 ? body.length + fault.keepBytes : fault.keepBytes);
          if (fault.kind === "corrupt") {
            out = Buffer.from(body);
            const i = out.length - fault.offsetFromEnd;
            out[i] = out[i]! ^ 0xff;
          }
          // A complete, well-formed HTTP response whose payload is damaged.
          headers["content-length"] = String(out.length);
          if (res.destroyed) return;
          res.writeHead(up.statusCode ?? 502, headers);
          res.end(out);
        });
      },
    );
    upstream.on("error", () => res.destroy());
    if (fault?.kind === "swap-request") {
      req.resume();
      upstream.end(fault.body);
    } else req.pipe(upstream);
  });
  const destroySockets = trackSockets(server);
  const port = await listen(server);
  return {
    url: `http://127.0.0.1:${port}`,
    inject(match, ...faults) {
      for (const fault of faults) queue.push({ match, fault });
    },
    count: (match) => seen.filter((p) => p.endsWith(match)).length,
    close: () =>
      new Promise<void>((resolve) => {
        destroySockets();
        server.close(() => resolve());
      }),
  };
}
