/**
 * `mesa mount -d`: re-spawn this CLI as `mesa mount --foreground` detached in a new session,
 * with a pipe on fd 3 the child reports readiness on. The parent returns only once the mount
 * answers, or with the child's reason, or after a bounded wait (SPEC §7).
 * Secrets travel in the inherited environment, never in argv.
 */
import { spawn } from "node:child_process";
import { closeSync, mkdirSync, openSync } from "node:fs";
import { dirname } from "node:path";
import type { Readable } from "node:stream";
import { MesaError } from "../errors.js";

export const READY_FD_ENV = "MESA_READY_FD";

export interface DaemonizeOptions {
  /** Path of the CLI entry (bin/mesa). */
  entry: string;
  /** Global options to repeat for the child (config path, log level, -y). */
  globalArgs: string[];
  logFile: string;
  timeoutMs: number;
}

export interface Ready {
  pid: number;
  mountPoint: string;
}

export function daemonize(opts: DaemonizeOptions): Promise<Ready> {
  mkdirSync(dirname(opts.logFile), { recursive: true });
  // The child's stray stderr (a crash before the logger exists) lands in the log file.
  const errFd = openSync(opts.logFile, "a", 0o600);
  // A small young generation: the daemon's garbage is short-lived (request and pack buffers),
  // and V8's default lets it grow into tens of MB of resident memory.
  const node = ["--max-semi-space-size=2"];
  const child = spawn(process.execPath, [...node, opts.entry, ...opts.globalArgs, "mount", "--foreground"], {
    detached: true,
    stdio: ["ignore", errFd, errFd, "pipe"],
    // Two malloc arenas instead of one per thread (libuv, FUSE, the pack worker): fewer
    // half-used arenas, about 20 MB less resident memory while content streams in.
    env: { ...process.env, MALLOC_ARENA_MAX: process.env.MALLOC_ARENA_MAX ?? "2", [READY_FD_ENV]: "3" },
  });
  closeSync(errFd);
  const pipe = child.stdio[3] as Readable;

  return new Promise<Ready>((resolve, reject) => {
    let buf = "";
    let settled = false;
    const finish = (err: Error | undefined, ready?: Ready) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      pipe.destroy();
      child.unref();
      if (err) reject(err);
      else resolve(ready as Ready);
    };
    const timer = setTimeout(() => {
      if (child.pid) process.kill(child.pid, "SIGTERM");
      finish(
        new MesaError("TIMEOUT", `the daemon did not become ready within ${opts.timeoutMs / 1000} s`, {
          hint: `see the log at ${opts.logFile}`,
        }),
      );
    }, opts.timeoutMs);
    pipe.setEncoding("utf8");
    pipe.on("data", (chunk: string) => {
      buf += chunk;
      const nl = buf.indexOf("\n");
      if (nl < 0) return;
      let msg: { ready?: boolean; pid?: number; mountPoint?: string; error?: string };
      try {
        msg = JSON.parse(buf.slice(0, nl));
      } catch {
        return finish(new MesaError("DAEMON", "the daemon sent an unreadable readiness message"));
      }
      if (msg.ready && msg.pid) finish(undefined, { pid: msg.pid, mountPoint: msg.mountPoint ?? "" });
      else finish(new MesaError("DAEMON", msg.error ?? "the daemon failed to start"));
    });
    pipe.on("error", () => undefined);
    child.on("error", (err) => finish(new MesaError("DAEMON", `could not start the daemon: ${err.message}`)));
    child.on("exit", (code, signal) => {
      // Let a readiness message still in the pipe win over the exit.
      setTimeout(
        () =>
          finish(
            new MesaError(
              "DAEMON",
              `the daemon exited before it was ready (${signal ?? `exit code ${code}`})`,
              {
                hint: `see the log at ${opts.logFile}`,
              },
            ),
          ),
        200,
      );
    });
  });
}
