/**
 * Starts a real `mesa serve` (node bin/mesa serve) on 127.0.0.1 with a fresh data dir, for
 * integration tests. Every wait is bounded; `stop()` always ends the process (SIGTERM, then
 * SIGKILL) and removes the temp dir it created.
 */
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../..");
export const MESA_BIN = path.join(REPO_ROOT, "bin", "mesa");

export interface StartServeOptions {
  /** Org created on first start (default "local"). */
  org?: string;
  /** Reuse a data dir (it is then not deleted by stop()). */
  dataDir?: string;
  /** How long to wait for the server to listen (default 20 s). */
  startTimeoutMs?: number;
  env?: Record<string, string>;
  /** Extra `mesa serve` arguments, e.g. ["--git-timeout", "2"]. */
  args?: string[];
}

export interface ServeHandle {
  url: string;
  /** The admin key printed on first start ("" when the data dir was already initialised). */
  adminKey: string;
  dataDir: string;
  org: string;
  pid: number;
  /** stderr so far (pino JSON lines), for diagnostics. */
  logs(): string;
  stop(): Promise<void>;
  /** `mesa serve import <slug> <pathOrUrl> --data-dir <dataDir>`. */
  importRepo(slug: string, pathOrUrl: string): Promise<string>;
}

/** Runs `node bin/mesa <args>` to completion with a time limit. */
export function runMesa(
  args: string[],
  opts: { env?: Record<string, string>; timeoutMs?: number; input?: string } = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = execFile(
      process.execPath,
      [MESA_BIN, ...args],
      { env: { ...process.env, ...opts.env }, timeout: opts.timeoutMs ?? 60_000, maxBuffer: 64 << 20 },
      (err, stdout, stderr) => {
        const code = err ? (typeof err.code === "number" ? err.code : 1) : 0;
        resolve({ code, stdout: String(stdout), stderr: String(stderr) });
      },
    );
    child.stdin?.end(opts.input ?? "");
  });
}

function waitExit(child: ChildProcess, ms: number): Promise<boolean> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(true);
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), ms);
    child.once("exit", () => {
      clearTimeout(timer);
      resolve(true);
    });
  });
}

export async function startServe(opts: StartServeOptions = {}): Promise<ServeHandle> {
  const org = opts.org ?? "local";
  const ownDir = opts.dataDir === undefined;
  const dataDir = opts.dataDir ?? (await mkdtemp(path.join(tmpdir(), "mesa-serve-")));
  const child = spawn(
    process.execPath,
    [MESA_BIN, "serve", "--data-dir", dataDir, "--listen", "127.0.0.1:0", "--org", org, ...(opts.args ?? [])],
    { env: { ...process.env, ...opts.env }, stdio: ["ignore", "pipe", "pipe"] },
  );
  let stdout = "";
  let stderr = "";
  child.stdout!.setEncoding("utf8");
  child.stderr!.setEncoding("utf8");

  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill("SIGTERM");
      if (!(await waitExit(child, 8_000))) {
        child.kill("SIGKILL");
        await waitExit(child, 5_000);
      }
    }
    if (ownDir) await rm(dataDir, { recursive: true, force: true });
  };

  let url: string;
  try {
    url = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`mesa serve did not start within the time limit:\n${stderr.slice(-2000)}`)),
        opts.startTimeoutMs ?? 20_000,
      );
      const check = () => {
        for (const line of stderr.split("\n")) {
          if (!line.includes('"listening"')) continue;
          try {
            const rec = JSON.parse(line) as { msg?: string; url?: string };
            if (rec.msg === "listening" && rec.url) {
              clearTimeout(timer);
              // The admin key line is written before listening starts.
              resolve(rec.url);
              return;
            }
          } catch {}
        }
      };
      child.stdout!.on("data", (d: string) => {
        stdout += d;
      });
      child.stderr!.on("data", (d: string) => {
        stderr += d;
        check();
      });
      child.once("exit", (code, signal) => {
        clearTimeout(timer);
        reject(new Error(`mesa serve exited (${code ?? signal}) before listening:\n${stderr.slice(-2000)}`));
      });
    });
  } catch (err) {
    await stop();
    throw err;
  }
  const adminKey = /^admin key: (\S+)$/m.exec(stdout)?.[1] ?? "";
  return {
    url,
    adminKey,
    dataDir,
    org,
    pid: child.pid!,
    logs: () => stderr,
    stop,
    async importRepo(slug: string, pathOrUrl: string): Promise<string> {
      const r = await runMesa(["serve", "import", slug, pathOrUrl, "--data-dir", dataDir], {
        timeoutMs: 120_000,
      });
      if (r.code !== 0) throw new Error(`mesa serve import failed (${r.code}): ${r.stderr}`);
      return r.stdout;
    },
  };
}
