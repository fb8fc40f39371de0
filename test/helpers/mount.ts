/**
 * Helpers for mount tests: a generated repository with every kind of entry, a bounded
 * runner for shell commands (a hung mount must never hang a test), and a tree comparison
 * that uses the real `diff -r` and `find`.
 */
import { execFile, execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";

export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs a command with a hard timeout (SIGKILL); never throws. */
export function run(
  cmd: string,
  args: string[],
  opts: { env?: NodeJS.ProcessEnv; timeoutMs?: number; cwd?: string; input?: string } = {},
): Promise<RunResult> {
  return new Promise((resolve) => {
    const child = execFile(
      cmd,
      args,
      {
        env: opts.env ?? process.env,
        timeout: opts.timeoutMs ?? 60_000,
        killSignal: "SIGKILL",
        maxBuffer: 256 << 20,
        cwd: opts.cwd,
      },
      (err, stdout, stderr) => {
        const code = err
          ? typeof (err as { code?: unknown }).code === "number"
            ? (err as { code: number }).code
            : null
          : 0;
        resolve({ code, stdout: String(stdout), stderr: String(stderr) });
      },
    );
    if (opts.input !== undefined) child.stdin?.end(opts.input);
  });
}

export function tempDir(prefix: string): string {
  return mkdtempSync(join(tmpdir(), `mesa-${prefix}-`));
}

export function gitSync(cwd: string, args: string[]): string {
  return execFileSync("git", args, {
    cwd,
    env: {
      ...process.env,
      GIT_AUTHOR_NAME: "Test",
      GIT_AUTHOR_EMAIL: "test@example.com",
      GIT_COMMITTER_NAME: "Test",
      GIT_COMMITTER_EMAIL: "test@example.com",
    },
    maxBuffer: 1 << 28,
  }).toString();
}

function put(root: string, rel: string, data: string | Buffer, mode = 0o644): void {
  const p = join(root, rel);
  mkdirSync(dirname(p), { recursive: true });
  writeFileSync(p, data, { mode });
}

/**
 * A Git repo with `files` regular files in nested dirs, plus symlinks (file, dir, dangling),
 * executables, empty and binary files and non-ASCII names. Deterministic for a given seed.
 */
export function generateRepo(
  dir: string,
  opts: { files: number; seed?: number; bigFileBytes?: number },
): void {
  mkdirSync(dir, { recursive: true });
  gitSync(dir, ["init", "-q", "-b", "main"]);
  let seed = opts.seed ?? 1;
  const rand = () => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return seed;
  };
  for (let i = 0; i < opts.files; i++) {
    const depth = rand() % 4;
    const parts: string[] = [];
    for (let d = 0; d < depth; d++) parts.push(`dir${rand() % 12}`);
    const name = i % 97 === 0 ? `ñandú-${i}.txt` : i % 53 === 0 ? `bin-${i}.dat` : `file-${i}.txt`;
    const rel = [...parts, name].join("/");
    if (i % 53 === 0) {
      const b = Buffer.alloc(256 + (rand() % 2048));
      for (let k = 0; k < b.length; k++) b[k] = rand() & 0xff;
      put(dir, rel, b);
    } else if (i % 41 === 0) put(dir, rel, "");
    else if (i % 29 === 0) put(dir, rel.replace(/\.txt$/, ".sh"), `#!/bin/sh\necho ${i}\n`, 0o755);
    else put(dir, rel, `line ${i}\n${"x".repeat(rand() % 3000)}\nend ${i}\n`);
  }
  put(dir, "README.md", "# generated\n");
  put(dir, "src/main.sh", "#!/bin/sh\necho hi\n", 0o755);
  put(dir, "日本語/ファイル.txt", "こんにちは\n");
  put(dir, "empty", "");
  if (opts.bigFileBytes) {
    const big = Buffer.alloc(opts.bigFileBytes);
    for (let k = 0; k < big.length; k += 4096) big.writeUInt32LE(rand(), k);
    put(dir, "big.bin", big);
  }
  symlinkSync("README.md", join(dir, "link-to-readme"));
  symlinkSync("src", join(dir, "link-to-src"));
  symlinkSync("does/not/exist", join(dir, "dangling"));
  symlinkSync("../README.md", join(dir, "src", "up-link"));
  gitSync(dir, ["add", "-A"]);
  gitSync(dir, ["commit", "-q", "-m", "generated"]);
}

/** `diff -r` output between two trees (empty when equal); symlinks are compared as links. */
export async function diffTrees(a: string, b: string): Promise<string> {
  const r = await run("diff", ["-r", "--no-dereference", "-x", ".git", a, b], { timeoutMs: 300_000 });
  return r.code === 0 ? "" : `${r.stdout}${r.stderr}` || `diff exited ${r.code}`;
}

/** path, type, permission bits and size of every entry below `root`, sorted. */
export async function statListing(root: string): Promise<string[]> {
  const r = await run(
    "find",
    [root, "-path", `${root}/.git`, "-prune", "-o", "-mindepth", "1", "-printf", "%P\t%y\t%m\t%s\n"],
    {
      timeoutMs: 300_000,
    },
  );
  if (r.code !== 0) throw new Error(`find failed: ${r.stderr}`);
  return r.stdout
    .split("\n")
    .filter((l) => l.length > 0)
    .map((l) => {
      // Directory sizes are the filesystem's own business, not the repo's.
      const [p, y, m, s] = l.split("\t");
      return y === "d" ? `${p}\t${y}` : `${p}\t${y}\t${m}\t${s}`;
    })
    .sort();
}

/** Polls `check` every `intervalMs` until it returns true or `timeoutMs` passes. */
export async function waitFor(
  check: () => Promise<boolean> | boolean,
  timeoutMs: number,
  intervalMs = 100,
): Promise<boolean> {
  const end = Date.now() + timeoutMs;
  for (let i = 0; i < Math.ceil(timeoutMs / intervalMs) + 1 && Date.now() < end; i++) {
    if (await check()) return true;
    await new Promise((r) => setTimeout(r, intervalMs));
  }
  return check();
}

/** Lazily unmounts `dir` if it is still mounted (test cleanup). */
export async function cleanupMount(dir: string): Promise<void> {
  await run("fusermount", ["-uz", dir], { timeoutMs: 10_000 });
}

export function removeDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
}
