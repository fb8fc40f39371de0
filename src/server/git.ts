import { spawn } from "node:child_process";

/** Default bound for one plumbing command run on behalf of a REST request. */
export const GIT_TIMEOUT_MS = 60_000;

export interface GitResult {
  code: number;
  stdout: Buffer;
  stderr: string;
}

export class GitError extends Error {
  readonly code: number;
  readonly stderr: string;
  constructor(args: string[], code: number, stderr: string) {
    super(`git ${args[0]} failed (exit ${code}): ${stderr.trim().split("\n").slice(-3).join("; ")}`);
    this.name = "GitError";
    this.code = code;
    this.stderr = stderr;
  }
}

/** Environment for every git we run: no user/system config, no prompts, no pager. */
export function gitEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  return {
    PATH: process.env.PATH ?? "/usr/bin:/bin",
    HOME: process.env.HOME ?? "/",
    LANG: "C",
    LC_ALL: "C",
    GIT_CONFIG_NOSYSTEM: "1",
    GIT_CONFIG_GLOBAL: "/dev/null",
    GIT_TERMINAL_PROMPT: "0",
    GIT_PAGER: "cat",
    ...extra,
  };
}

/**
 * Runs `git <args>` (in `gitDir` as GIT_DIR when given), feeding `input` on stdin.
 * Returns whatever the exit code; a run over `timeoutMs` is killed and reported as code -1.
 */
export function runGit(
  gitDir: string | undefined,
  args: string[],
  opts: {
    input?: Buffer | string;
    env?: Record<string, string>;
    timeoutMs?: number;
    cwd?: string;
    /** Sees stderr as it arrives (git's progress lines), besides collecting it. */
    onStderr?: (text: string) => void;
  } = {},
): Promise<GitResult> {
  return new Promise((resolve, reject) => {
    const env = gitEnv(opts.env);
    if (gitDir) env.GIT_DIR = gitDir;
    const child = spawn("git", args, { env, cwd: opts.cwd, stdio: ["pipe", "pipe", "pipe"] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill("SIGKILL");
    }, opts.timeoutMs ?? GIT_TIMEOUT_MS);
    child.stdout.on("data", (b: Buffer) => out.push(b));
    child.stderr.on("data", (b: Buffer) => {
      err.push(b);
      opts.onStderr?.(b.toString("utf8"));
    });
    child.stdin.on("error", () => {
      // git may exit before reading all input (e.g. a bad ref); the exit code tells.
    });
    child.on("error", (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.on("close", (code) => {
      clearTimeout(timer);
      resolve({
        code: timedOut ? -1 : (code ?? -1),
        stdout: Buffer.concat(out),
        stderr: timedOut ? "timed out" : Buffer.concat(err).toString("utf8"),
      });
    });
    child.stdin.end(opts.input ?? "");
  });
}

/** Like runGit but throws GitError on a non-zero exit; returns stdout. */
export async function git(
  gitDir: string | undefined,
  args: string[],
  opts: { input?: Buffer | string; env?: Record<string, string>; timeoutMs?: number; cwd?: string } = {},
): Promise<Buffer> {
  const r = await runGit(gitDir, args, opts);
  if (r.code !== 0) throw new GitError(args, r.code, r.stderr);
  return r.stdout;
}

export const OID_RE = /^[0-9a-f]{40}$/;
