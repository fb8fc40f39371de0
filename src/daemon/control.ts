/**
 * The daemon's control socket: one JSON request per line, one JSON reply per line.
 * Requests: {"cmd":"status"|"stats"|"unmount"|"repo-open"|"repo-close"|"new"|"credential"|"edit", …}.
 * Replies: {"ok":true,"result":…} or {"ok":false,"error":"…"}.
 */
import { chmod, rm } from "node:fs/promises";
import { createConnection, createServer, type Server } from "node:net";
import { MesaError } from "../errors.js";

export type ControlRequest =
  | { cmd: "status" }
  | { cmd: "stats" }
  | { cmd: "unmount" }
  | { cmd: "repo-open"; org: string; repo: string }
  | { cmd: "repo-close"; org: string; repo: string }
  | { cmd: "new"; org?: string; repo?: string; message?: string }
  /** The session's access token for an org, so CLI commands need no key of their own. */
  | { cmd: "credential"; org: string }
  | { cmd: "edit"; changeId: string; org?: string; repo?: string };

export type ControlHandler = (req: ControlRequest) => Promise<unknown>;

const MAX_LINE = 64 * 1024;

export async function startControlServer(socketPath: string, handle: ControlHandler): Promise<Server> {
  await rm(socketPath, { force: true });
  const server = createServer((conn) => {
    let buf = "";
    conn.setEncoding("utf8");
    conn.on("error", () => conn.destroy());
    conn.on("data", (chunk: string) => {
      buf += chunk;
      if (buf.length > MAX_LINE) {
        conn.end(`${JSON.stringify({ ok: false, error: "request too long" })}\n`);
        return;
      }
      let nl = buf.indexOf("\n");
      while (nl >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        nl = buf.indexOf("\n");
        let req: ControlRequest;
        try {
          req = JSON.parse(line) as ControlRequest;
        } catch {
          conn.write(`${JSON.stringify({ ok: false, error: "request is not JSON" })}\n`);
          continue;
        }
        handle(req).then(
          (result) => conn.write(`${JSON.stringify({ ok: true, result: result ?? null })}\n`),
          (err) => conn.write(`${JSON.stringify({ ok: false, error: (err as Error).message })}\n`),
        );
      }
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(socketPath, () => {
      server.off("error", reject);
      resolve();
    });
  });
  // The socket hands out the session's access tokens: only this user may connect.
  await chmod(socketPath, 0o600);
  return server;
}

/** Sends one request to the daemon listening on `socketPath`; bounded by `timeoutMs`. */
export function controlRequest(
  socketPath: string,
  req: ControlRequest,
  timeoutMs = 10_000,
): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const conn = createConnection(socketPath);
    let buf = "";
    const timer = setTimeout(() => {
      conn.destroy();
      reject(new MesaError("TIMEOUT", `the daemon did not answer '${req.cmd}' within ${timeoutMs / 1000} s`));
    }, timeoutMs);
    conn.setEncoding("utf8");
    conn.on("connect", () => conn.write(`${JSON.stringify(req)}\n`));
    conn.on("data", (chunk: string) => {
      buf += chunk;
      const nl = buf.indexOf("\n");
      if (nl < 0) return;
      clearTimeout(timer);
      conn.end();
      try {
        const reply = JSON.parse(buf.slice(0, nl)) as { ok: boolean; result?: unknown; error?: string };
        if (reply.ok) resolve(reply.result);
        else reject(new MesaError("DAEMON", `the daemon refused '${req.cmd}': ${reply.error}`));
      } catch {
        reject(new MesaError("DAEMON", "the daemon sent a reply that is not JSON"));
      }
    });
    conn.on("error", (err) => {
      clearTimeout(timer);
      reject(
        new MesaError(
          "DAEMON",
          `cannot reach the daemon at ${socketPath} (${(err as NodeJS.ErrnoException).code})`,
          {
            cause: err,
          },
        ),
      );
    });
  });
}
