/**
 * `mesa quickstart`: on a fresh machine, start a local `mesa serve` in the background,
 * import a small sample repository generated with `git`, store the admin key, and mount.
 * Every step checks what already exists, so a re-run only does what is missing.
 */
import { execFile, spawn } from "node:child_process";
import { chmod, mkdir, open, readFile, rm, stat, symlink, writeFile } from "node:fs/promises";
import { homedir } from "node:os";
import { join } from "node:path";
import { envWithoutSecrets } from "../config/env.js";
import { MesaError } from "../errors.js";
import { isAlive, readPid } from "./pidfile.js";

export const QUICKSTART_ORG = "local";
export const QUICKSTART_REPO = "sample";
export const QUICKSTART_LISTEN = "127.0.0.1:7878";

export interface QuickstartPaths {
  home: string;
  serverDir: string;
  stateDir: string;
  pidFile: string;
  logFile: string;
  sampleDir: string;
}

export function quickstartPaths(home = process.env.HOME || homedir()): QuickstartPaths {
  const base = join(home, ".local", "share", "mesa");
  const stateDir = join(base, "quickstart");
  return {
    home,
    serverDir: join(base, "server"),
    stateDir,
    pidFile: join(stateDir, "serve.pid"),
    logFile: join(stateDir, "serve.log"),
    sampleDir: join(stateDir, "sample"),
  };
}

function git(cwd: string, args: string[]): Promise<void> {
  return new Promise((resolve, reject) =>
    execFile(
      "git",
      args,
      {
        cwd,
        timeout: 30_000,
        env: {
          ...envWithoutSecrets(),
          GIT_AUTHOR_NAME: "mesa quickstart",
          GIT_AUTHOR_EMAIL: "quickstart@mesa.invalid",
          GIT_COMMITTER_NAME: "mesa quickstart",
          GIT_COMMITTER_EMAIL: "quickstart@mesa.invalid",
        },
      },
      (err, _o, stderr) =>
        err ? reject(new MesaError("INTERNAL", `git ${args[0]} failed: ${stderr}`)) : resolve(),
    ),
  );
}

async function exists(p: string): Promise<boolean> {
  try {
    await stat(p);
    return true;
  } catch {
    return false;
  }
}

/** A small project: README, sources, a nested dir, a symlink and an executable. */
export async function createSampleRepo(dir: string): Promise<void> {
  if (await exists(join(dir, ".git"))) return;
  await rm(dir, { recursive: true, force: true });
  await mkdir(join(dir, "src", "util"), { recursive: true });
  await mkdir(join(dir, "scripts"), { recursive: true });
  await writeFile(
    join(dir, "README.md"),
    "# sample\n\nA small repository served by your local `mesa serve` and mounted by `mesa mount`.\n",
  );
  await writeFile(
    join(dir, "src", "main.ts"),
    'import { greet } from "./util/greet.js";\n\nconsole.log(greet("mesa"));\n',
  );
  await writeFile(
    join(dir, "src", "util", "greet.ts"),
    'export function greet(name: string): string {\n  return "hello, " + name;\n}\n',
  );
  await writeFile(join(dir, "scripts", "build.sh"), "#!/bin/sh\nset -e\necho building\n");
  await chmod(join(dir, "scripts", "build.sh"), 0o755);
  await symlink("README.md", join(dir, "README"));
  await git(dir, ["init", "-q", "-b", "main"]);
  await git(dir, ["add", "-A"]);
  await git(dir, ["commit", "-q", "-m", "sample project"]);
}

export async function serverRunning(paths: QuickstartPaths): Promise<number | undefined> {
  const pid = await readPid(paths.pidFile);
  return pid !== undefined && isAlive(pid) ? pid : undefined;
}

async function waitForLog(file: string, pattern: RegExp, timeoutMs: number): Promise<string | undefined> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    const text = await readFile(file, "utf8").catch(() => "");
    if (pattern.test(text)) return text;
    await new Promise((r) => setTimeout(r, 100));
  }
  return undefined;
}

/**
 * Starts `mesa serve` detached, logging to the quickstart log. Returns the admin key when
 * this was the server's first start (it is printed only then).
 */
export async function startServer(
  entry: string,
  paths: QuickstartPaths,
  listen = QUICKSTART_LISTEN,
): Promise<{ pid: number; adminKey?: string }> {
  const running = await serverRunning(paths);
  if (running !== undefined) return { pid: running };
  await mkdir(paths.stateDir, { recursive: true, mode: 0o700 });
  const start = (await stat(paths.logFile).catch(() => undefined))?.size ?? 0;
  const out = await open(paths.logFile, "a", 0o600);
  const child = spawn(
    process.execPath,
    [entry, "serve", "--data-dir", paths.serverDir, "--listen", listen, "--org", QUICKSTART_ORG],
    { detached: true, stdio: ["ignore", out.fd, out.fd], env: envWithoutSecrets() },
  );
  await out.close();
  if (!child.pid) throw new MesaError("DAEMON", "could not start `mesa serve`");
  child.unref();
  await writeFile(paths.pidFile, `${child.pid}\n`);
  const text = await waitForLog(paths.logFile, /"listening"|error|EADDRINUSE/i, 30_000);
  const fresh = text?.slice(start) ?? "";
  if (!text || !/"listening"/.test(fresh) || !isAlive(child.pid)) {
    if (isAlive(child.pid)) process.kill(child.pid, "SIGTERM");
    await rm(paths.pidFile, { force: true });
    throw new MesaError("DAEMON", "`mesa serve` did not start", { hint: `see ${paths.logFile}` });
  }
  const adminKey = /admin key: (\S+)/.exec(fresh)?.[1];
  return { pid: child.pid, adminKey };
}

export async function stopServer(paths: QuickstartPaths): Promise<boolean> {
  const pid = await serverRunning(paths);
  if (pid === undefined) {
    await rm(paths.pidFile, { force: true });
    return false;
  }
  process.kill(pid, "SIGTERM");
  for (let i = 0; i < 150 && isAlive(pid); i++) await new Promise((r) => setTimeout(r, 100));
  if (isAlive(pid)) process.kill(pid, "SIGKILL");
  await rm(paths.pidFile, { force: true });
  return true;
}

/** Imports the sample unless the server already has it. */
export async function importSample(paths: QuickstartPaths): Promise<boolean> {
  if (await exists(join(paths.serverDir, "repos", QUICKSTART_ORG, `${QUICKSTART_REPO}.git`))) return false;
  try {
    // Loaded here: the server's code would slow every other command's start.
    const { runImport } = await import("../server/serve.js");
    await runImport(paths.serverDir, QUICKSTART_ORG, QUICKSTART_REPO, paths.sampleDir);
    return true;
  } catch (err) {
    if ((err as MesaError).code === "CONFLICT") return false;
    throw err;
  }
}
