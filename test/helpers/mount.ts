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

/** bin/mesa of this checkout. */
export const MESA_BIN = new URL("../../../bin/mesa", import.meta.url).pathname;

/**
 * A sandbox for one daemon: its own HOME, mount point, runtime dir, caches and log, all
 * under `dir`, and nothing from the caller's MESA_* environment.
 */
export function mesaEnv(dir: string, extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env))
    if (!k.startsWith("MESA_") && !k.startsWith("XDG_")) env[k] = v;
  return {
    ...env,
    HOME: join(dir, "home"),
    MESA_NO_CONFIG_FILE: "1",
    MESA_MOUNT_POINT: join(dir, "mnt"),
    MESA_RUNTIME_DIR: join(dir, "run"),
    MESA_DATA_DIR: join(dir, "data"),
    MESA_CACHE_PATH: join(dir, "cache"),
    MESA_DAEMON_LOG_FILE: join(dir, "mesa.log"),
    MESA_SECRETS_BACKEND: "plaintext-file",
    ...extra,
  };
}

export function mesa(args: string[], env: NodeJS.ProcessEnv, timeoutMs = 90_000): Promise<RunResult> {
  return run(process.execPath, [MESA_BIN, ...args], { env, timeoutMs });
}

/**
 * Stops a daemon started in this sandbox and removes its mount, whatever state it is in:
 * `mesa unmount`, then the pid from its pid file (a process this test started), then a lazy
 * unmount. The fallbacks matter when the CLI itself cannot run (e.g. a build in progress).
 */
export async function stopSandbox(env: NodeJS.ProcessEnv): Promise<void> {
  await mesa(["unmount"], env, 40_000);
  const pidFile = env.MESA_RUNTIME_DIR ? join(env.MESA_RUNTIME_DIR, "mesa.pid") : undefined;
  const pid = pidFile ? Number((await run("cat", [pidFile])).stdout.trim()) : 0;
  if (pid > 0 && (await run("kill", ["-0", String(pid)])).code === 0) {
    await run("kill", ["-TERM", String(pid)]);
    const gone = await waitFor(async () => (await run("kill", ["-0", String(pid)])).code !== 0, 10_000, 200);
    if (!gone) await run("kill", ["-KILL", String(pid)]);
  }
  if (env.MESA_MOUNT_POINT) await cleanupMount(env.MESA_MOUNT_POINT);
}

export interface CountingProxy {
  url: string;
  /** Protocol-v2 `command=fetch` requests seen (blob and tree fetches). */
  fetches(): number;
  /** All requests seen, by path. */
  requests(): string[];
  /** Point at another upstream (e.g. a restarted server on a new port). */
  retarget(url: string): void;
  /** While down, every connection is reset, as if the server were gone. */
  setDown(down: boolean): void;
  close(): Promise<void>;
}

/** An HTTP proxy on 127.0.0.1 that counts Git fetch commands and can play "server down". */
export async function countingProxy(target: string): Promise<CountingProxy> {
  const http = await import("node:http");
  const zlib = await import("node:zlib");
  let upstream = new URL(target);
  let down = false;
  let fetches = 0;
  const seen: string[] = [];
  const sockets = new Set<import("node:net").Socket>();
  const server = http.createServer((req, res) => {
    if (down) {
      req.socket.destroy();
      return;
    }
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const body = Buffer.concat(chunks);
      seen.push(`${req.method} ${req.url}`);
      let text = body;
      try {
        if (req.headers["content-encoding"] === "gzip") text = zlib.gunzipSync(body);
      } catch {
        // count what can be read
      }
      if (text.includes("command=fetch")) fetches++;
      const up = http.request(
        {
          host: upstream.hostname,
          port: upstream.port,
          method: req.method,
          path: req.url,
          headers: req.headers,
        },
        (r) => {
          res.writeHead(r.statusCode ?? 502, r.headers);
          r.pipe(res);
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
    server.listen(0, "127.0.0.1", () => resolve((server.address() as import("node:net").AddressInfo).port)),
  );
  return {
    url: `http://127.0.0.1:${port}`,
    fetches: () => fetches,
    requests: () => [...seen],
    retarget(url) {
      upstream = new URL(url);
    },
    setDown(d) {
      down = d;
      if (d) for (const s of sockets) s.destroy();
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}
