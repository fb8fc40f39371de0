/**
 * A proxy in front of a Git smart-HTTP server that hides protocol-v2 capabilities from the
 * advertisement (as a host without `object-info` or without fetch filters would send it) and
 * counts the commands clients send, by kind.
 */
import http from "node:http";
import type { AddressInfo, Socket } from "node:net";
import { gunzipSync } from "node:zlib";

export interface CommandLog {
  command: string;
  wants: number;
  filter?: string;
  deepen: boolean;
}

export interface CapsProxy {
  url: string;
  /** Every protocol-v2 command seen, in order. */
  commands: CommandLog[];
  /** Fetches that can carry blobs (no `filter blob:none`). */
  blobFetches(): CommandLog[];
  /** Bytes of upload-pack responses sent to clients. */
  responseBytes(): number;
  close(): Promise<void>;
}

export interface CapsProxyOptions {
  /** Top-level capabilities to drop, e.g. ["object-info"]. */
  drop?: string[];
  /** Features to drop from the `fetch=` capability, e.g. ["filter"]. */
  dropFetch?: string[];
}

function pkt(line: string): Buffer {
  const b = Buffer.from(line);
  return Buffer.concat([Buffer.from((b.length + 4).toString(16).padStart(4, "0")), b]);
}

/** Rewrites a v2 advertisement (pkt-lines up to the flush). */
function rewriteAdvertisement(body: Buffer, opts: CapsProxyOptions): Buffer {
  const out: Buffer[] = [];
  let p = 0;
  while (p + 4 <= body.length) {
    const len = Number.parseInt(body.toString("latin1", p, p + 4), 16);
    if (len < 4) {
      out.push(body.subarray(p, p + 4));
      p += 4;
      continue;
    }
    const line = body.toString("utf8", p + 4, p + len);
    p += len;
    const name = line.trim().split("=")[0]!;
    if (opts.drop?.includes(name)) continue;
    if (name === "fetch" && opts.dropFetch) {
      const feats = line
        .trim()
        .slice("fetch=".length)
        .split(" ")
        .filter((f) => f && !opts.dropFetch!.includes(f));
      out.push(pkt(`fetch=${feats.join(" ")}\n`));
      continue;
    }
    out.push(pkt(line));
  }
  out.push(body.subarray(p));
  return Buffer.concat(out);
}

function parseCommand(body: Buffer): CommandLog | undefined {
  const text = body.toString("latin1");
  const m = /command=([a-z-]+)/.exec(text);
  if (!m) return undefined;
  return {
    command: m[1]!,
    wants: (text.match(/want [0-9a-f]{40}/g) ?? []).length,
    filter: /filter ([^\n]+)/.exec(text)?.[1],
    deepen: /deepen \d+/.test(text),
  };
}

export async function capsProxy(target: string, opts: CapsProxyOptions = {}): Promise<CapsProxy> {
  const t = new URL(target);
  const commands: CommandLog[] = [];
  let responseBytes = 0;
  const sockets = new Set<Socket>();
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const body = Buffer.concat(chunks);
      let text = body;
      try {
        if (req.headers["content-encoding"] === "gzip") text = gunzipSync(body);
      } catch {
        // count what can be read
      }
      const cmd = parseCommand(text);
      if (cmd) commands.push(cmd);
      const isAdvert = (req.url ?? "").includes("service=git-upload-pack") && req.method === "GET";
      const up = http.request(
        { host: t.hostname, port: t.port, method: req.method, path: req.url, headers: req.headers },
        (r) => {
          if (!isAdvert) {
            res.writeHead(r.statusCode ?? 502, r.headers);
            r.on("data", (c: Buffer) => {
              responseBytes += c.length;
            });
            r.pipe(res);
            return;
          }
          const parts: Buffer[] = [];
          r.on("data", (c: Buffer) => parts.push(c));
          r.on("end", () => {
            const rewritten = rewriteAdvertisement(Buffer.concat(parts), opts);
            const headers = { ...r.headers, "content-length": String(rewritten.length) };
            delete headers["transfer-encoding"];
            res.writeHead(r.statusCode ?? 502, headers);
            res.end(rewritten);
          });
        },
      );
      up.on("error", () => res.destroy());
      up.end(body);
    });
  });
  server.on("connection", (s) => {
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
  });
  const port = await new Promise<number>((resolve) =>
    server.listen(0, "127.0.0.1", () => resolve((server.address() as AddressInfo).port)),
  );
  return {
    url: `http://127.0.0.1:${port}`,
    commands,
    blobFetches: () => commands.filter((c) => c.command === "fetch" && c.filter !== "blob:none"),
    responseBytes: () => responseBytes,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}
