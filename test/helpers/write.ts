/**
 * Helpers for the write tests: a `mesa serve` with one imported repo, daemons in their own
 * sandboxes (mount point, runtime dir, data dir), shell commands run inside the mount by a
 * separate process with a hard timeout, and clones with the real `git` CLI.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { gitSync, mesa, mesaEnv, run, stopSandbox, waitFor } from "./mount.js";
import type { ServeHandle } from "./serve.js";

export function authHeader(key: string): string {
  return `http.extraHeader=Authorization: Basic ${Buffer.from(`mesa:${key}`).toString("base64")}`;
}

/** A small repo with a file, an executable, a symlink and a subdirectory, imported as org/name. */
export async function importSmallRepo(serve: ServeHandle, dir: string, name: string): Promise<void> {
  const src = join(dir, `src-${name}`);
  mkdirSync(join(src, "sub"), { recursive: true });
  gitSync(dir, ["init", "-q", "-b", "main", src]);
  writeFileSync(join(src, "README.md"), "hello\n");
  writeFileSync(join(src, "sub", "a.txt"), "a1\na2\na3\n");
  writeFileSync(join(src, "tool.sh"), "#!/bin/sh\necho tool\n", { mode: 0o755 });
  gitSync(src, ["add", "-A"]);
  gitSync(src, ["commit", "-q", "-m", "initial"]);
  await serve.importRepo(`${serve.org}/${name}`, src);
}

export interface Daemon {
  env: NodeJS.ProcessEnv;
  mnt: string;
  root(repo: string): string;
  /** Runs `sh -c script` in the repo dir of the mount (separate process, bounded). */
  sh(
    repo: string,
    script: string,
    timeoutMs?: number,
  ): Promise<{ code: number | null; stdout: string; stderr: string }>;
  status(): Promise<StatusJson>;
  stop(): Promise<void>;
}

/** `status --json` prints snake_case keys; the tests read them in camelCase. */
export function camelKeys(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(camelKeys);
  if (v && typeof v === "object")
    return Object.fromEntries(
      Object.entries(v).map(([k, x]) => [
        k.replace(/_([a-z])/g, (_, c: string) => c.toUpperCase()),
        camelKeys(x),
      ]),
    );
  return v;
}

export interface StatusJson {
  running: boolean;
  pid: number;
  errors: string[];
  writes: Array<{
    org: string;
    repo: string;
    pending?: boolean;
    changeId?: string;
    commit?: string;
    conflicts?: string[];
    failures?: number;
    readOnly?: string;
  }>;
}

export async function startDaemon(
  dir: string,
  serve: ServeHandle,
  extra: Record<string, string> = {},
  args: string[] = [],
): Promise<Daemon> {
  mkdirSync(dir, { recursive: true });
  const env = mesaEnv(dir, {
    MESA_ORG: serve.org,
    MESA_API_KEY: serve.adminKey,
    MESA_SERVICE_URL: serve.url,
    MESA_POLL_INTERVAL: "500",
    ...extra,
  });
  const mnt = env.MESA_MOUNT_POINT as string;
  const up = await mesa([...args, "mount", "-d"], env);
  if (up.code !== 0) throw new Error(`mount -d failed: ${up.stderr}`);
  const d: Daemon = {
    env,
    mnt,
    root: (repo) => join(mnt, serve.org, repo),
    sh: (repo, script, timeoutMs = 60_000) =>
      run("sh", ["-c", script], { cwd: join(mnt, serve.org, repo), timeoutMs, env }),
    async status() {
      const r = await mesa(["status", "--json"], env);
      if (r.code !== 0) throw new Error(`status failed: ${r.stderr}`);
      return camelKeys(JSON.parse(r.stdout)) as StatusJson;
    },
    stop: () => stopSandbox(env),
  };
  return d;
}

/** Waits until the daemon reports nothing pending for `repo` (bounded). */
export async function waitPushed(d: Daemon, repo: string, timeoutMs = 30_000): Promise<void> {
  const ok = await waitFor(
    async () => {
      const s = await d.status();
      const w = s.writes.find((x) => x.repo === repo);
      return w !== undefined && w.pending === false;
    },
    timeoutMs,
    250,
  );
  if (!ok)
    throw new Error(
      `${repo}: writes still pending after ${timeoutMs} ms: ${JSON.stringify(await d.status())}`,
    );
}

/** A fresh `git clone` of org/repo into `into`. */
export function cloneRepo(serve: ServeHandle, repo: string, into: string): string {
  gitSync(join(into, ".."), [
    "-c",
    authHeader(serve.adminKey),
    "clone",
    "-q",
    `${serve.url}/${serve.org}/${repo}.git`,
    into,
  ]);
  return into;
}

/** The server's value of refs/heads/<bookmark>. */
export function serverRef(serve: ServeHandle, repo: string, bookmark = "main"): string {
  const out = gitSync(serve.dataDir, [
    "-c",
    authHeader(serve.adminKey),
    "ls-remote",
    `${serve.url}/${serve.org}/${repo}.git`,
    `refs/heads/${bookmark}`,
  ]);
  return out.split("\t")[0] ?? "";
}

/**
 * What the server holds for org/repo, to prove that nothing reached it: every ref (bookmarks,
 * change refs), the object count, and how many pushes (receive-pack POSTs) its log shows.
 */
export function serverFingerprint(serve: ServeHandle, repo: string): string {
  const gitDir = join(serve.dataDir, "repos", serve.org, `${repo}.git`);
  const refs = gitSync(serve.dataDir, [
    "--git-dir",
    gitDir,
    "for-each-ref",
    "--format=%(objectname) %(refname)",
  ]);
  const objects = gitSync(serve.dataDir, ["--git-dir", gitDir, "count-objects", "-v"])
    .split("\n")
    .filter((l) => /^(count|in-pack):/.test(l))
    .join(" ");
  const pushPath = `/${serve.org}/${repo}.git/git-receive-pack`;
  const pushes = serve
    .logs()
    .split("\n")
    .filter((l) => l.includes('"incoming request"') && l.includes(pushPath)).length;
  return `${refs}\n${objects}\npushes: ${pushes}`;
}
