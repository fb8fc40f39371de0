/**
 * `fs.bash()`: a bash interpreter (just-bash) whose filesystem is the mount. No host shell
 * runs and no host environment is inherited. `cat` refuses binary files (use `fs.read`).
 */
import {
  Bash,
  type BufferEncoding,
  bytesOutput,
  defineCommand,
  type FileContent,
  type IFileSystem,
  InMemoryFs,
  type FsStat as JustBashStat,
  latin1FromBytes,
  MountableFs,
  unsafeBytesFromLatin1,
} from "just-bash";
import { MesaFsError } from "./errors.js";
import type { MesaFileSystem } from "./fs.js";

export interface MesaBashOptions {
  /** Working directory inside the mount (default "/"). */
  cwd?: string;
  /** The whole environment of the scripts (the host's is not inherited). */
  env?: Record<string, string>;
  /** Wall-clock limit of one `exec`, default 30,000 ms. */
  timeoutMs?: number;
}

export interface ExecResult {
  stdout: string;
  stderr: string;
  exitCode: number;
}

type Encoding = BufferEncoding | { encoding?: BufferEncoding | null } | null | undefined;

function encodingOf(opts: Encoding): BufferEncoding {
  const e = typeof opts === "string" ? opts : (opts?.encoding ?? "utf8");
  return e ?? "utf8";
}

function toBuffer(content: FileContent, opts: Encoding): Buffer {
  return typeof content === "string" ? Buffer.from(content, encodingOf(opts)) : Buffer.from(content);
}

/** A sink: what is written to it is dropped, reading it gives nothing. */
const DEV_NULL = "/dev/null";

/** just-bash's filesystem interface over the mount (plus /dev/null). */
class MountFs implements IFileSystem {
  constructor(private readonly fs: MesaFileSystem) {}
  async readFile(path: string, opts?: Encoding): Promise<string> {
    if (path === DEV_NULL) return "";
    return (await this.fs.read(path)).toString(encodingOf(opts));
  }
  async readFileBuffer(path: string): Promise<Uint8Array> {
    if (path === DEV_NULL) return new Uint8Array(0);
    return this.fs.read(path);
  }
  async writeFile(path: string, content: FileContent, opts?: Encoding): Promise<void> {
    if (path !== DEV_NULL) await this.fs.write(path, toBuffer(content, opts));
  }
  async appendFile(path: string, content: FileContent, opts?: Encoding): Promise<void> {
    if (path !== DEV_NULL) await this.fs.append(path, toBuffer(content, opts));
  }
  async exists(path: string): Promise<boolean> {
    return path === DEV_NULL || this.fs.exists(path);
  }
  async stat(path: string): Promise<JustBashStat> {
    if (path === DEV_NULL) return NULL_STAT;
    return this.fs.stat(path);
  }
  async lstat(path: string): Promise<JustBashStat> {
    if (path === DEV_NULL) return NULL_STAT;
    return this.fs.lstat(path);
  }
  mkdir(path: string, opts?: { recursive?: boolean }): Promise<void> {
    return this.fs.mkdir(path, opts);
  }
  readdir(path: string): Promise<string[]> {
    return this.fs.readdir(path).then((names) => names.sort());
  }
  async rm(path: string, opts?: { recursive?: boolean; force?: boolean }): Promise<void> {
    // `rmdir` removes an empty directory through rm without `recursive`.
    if (!opts?.recursive && (await this.fs.lstat(path).catch(() => undefined))?.isDirectory) {
      if ((await this.fs.readdir(path)).length > 0) throw new MesaFsError("ENOTEMPTY", "rmdir", path);
      return this.fs.rm(path, { recursive: true });
    }
    return this.fs.rm(path, opts);
  }
  cp(src: string, dest: string, opts?: { recursive?: boolean }): Promise<void> {
    return this.fs.cp(src, dest, opts);
  }
  mv(src: string, dest: string): Promise<void> {
    return this.fs.mv(src, dest);
  }
  resolvePath(base: string, path: string): string {
    return this.fs.resolvePath(base, path);
  }
  getAllPaths(): string[] {
    return [];
  }
  chmod(path: string, mode: number): Promise<void> {
    return this.fs.chmod(path, mode);
  }
  symlink(target: string, link: string): Promise<void> {
    return this.fs.symlink(target, link);
  }
  link(existing: string, link: string): Promise<void> {
    return this.fs.link(existing, link);
  }
  readlink(path: string): Promise<string> {
    return this.fs.readlink(path);
  }
  realpath(path: string): Promise<string> {
    if (path === DEV_NULL) return Promise.resolve(path);
    return this.fs.realpath(path);
  }
  utimes(path: string, atime: Date, mtime: Date): Promise<void> {
    return this.fs.utimes(path, atime, mtime);
  }
}

const NULL_STAT: JustBashStat = {
  isFile: false,
  isDirectory: false,
  isSymbolicLink: false,
  mode: 0o20666,
  size: 0,
  mtime: new Date(0),
};

const strictUtf8 = new TextDecoder("utf-8", { fatal: true });

function isBinary(data: Uint8Array): boolean {
  if (data.includes(0)) return true;
  try {
    strictUtf8.decode(data);
    return false;
  } catch {
    return true;
  }
}

const REASONS: Record<string, string> = {
  ENOENT: "No such file or directory",
  EISDIR: "Is a directory",
  ENOTDIR: "Not a directory",
  EACCES: "Permission denied",
};

/** `cat [-n] [FILE|-]…` that fails on binary files rather than print them. */
const cat = defineCommand("cat", async (args, ctx) => {
  let number = false;
  const files: string[] = [];
  let options = true;
  for (const a of args) {
    if (options && a === "--") options = false;
    else if (options && a === "-n") number = true;
    else if (options && a.startsWith("-") && a !== "-")
      return { stdout: "", stderr: `cat: invalid option -- '${a.slice(1)}'\n`, exitCode: 1 };
    else files.push(a);
  }
  if (files.length === 0) files.push("-");
  const out: Buffer[] = [];
  let stderr = "";
  let exitCode = 0;
  for (const f of files) {
    if (f === "-") {
      out.push(Buffer.from(latin1FromBytes(ctx.stdin), "latin1"));
      continue;
    }
    try {
      const data = Buffer.from(await ctx.fs.readFileBuffer(ctx.fs.resolvePath(ctx.cwd, f)));
      if (isBinary(data)) {
        stderr += `cat: ${f}: binary file (not UTF-8 text); use fs.read() for binary data\n`;
        exitCode = 1;
        continue;
      }
      out.push(data);
    } catch (err) {
      const code = (err as { code?: string }).code ?? "";
      stderr += `cat: ${f}: ${REASONS[code] ?? (err as Error).message}\n`;
      exitCode = 1;
    }
  }
  let all = Buffer.concat(out);
  if (number) {
    const lines = all.toString("latin1").split("\n");
    const last = lines.pop();
    const numbered = lines.map((l, i) => `${String(i + 1).padStart(6)}\t${l}\n`).join("");
    all = Buffer.from(
      last ? `${numbered}${String(lines.length + 1).padStart(6)}\t${last}` : numbered,
      "latin1",
    );
  }
  return { ...bytesOutput(unsafeBytesFromLatin1(all.toString("latin1"))), stderr, exitCode };
});

export class MesaBash {
  private readonly bash: Bash;
  private readonly timeoutMs: number;

  /** @internal Use `fs.bash()`. */
  constructor(fs: MesaFileSystem, opts: MesaBashOptions) {
    this.timeoutMs = opts.timeoutMs ?? 30_000;
    if (!Number.isInteger(this.timeoutMs) || this.timeoutMs < 1)
      throw new RangeError(`timeoutMs must be a positive whole number, not ${opts.timeoutMs}`);
    // Scratch space: /tmp lives in memory, per `fs.bash()`, and never reaches the server.
    const files = new MountableFs({
      base: new MountFs(fs),
      mounts: [{ mountPoint: "/tmp", filesystem: new InMemoryFs() }],
    });
    this.bash = new Bash({
      fs: files,
      cwd: opts.cwd ?? "/",
      env: { ...(opts.env ?? {}) },
      customCommands: [cat],
      executionLimits: { maxExecutionTimeMs: this.timeoutMs },
      // Its guard blocks timers and other globals while a script runs, and the mount's own
      // (trusted) code needs them: the writer debounces pushes with setTimeout. Scripts get no
      // JavaScript or Python runtime here, so there is nothing for the guard to contain.
      defenseInDepth: false,
    });
  }

  /** Runs a script (pipes, redirects, several lines); never throws for the script's failures. */
  async exec(script: string): Promise<ExecResult> {
    const abort = new AbortController();
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<ExecResult>((resolve) => {
      timer = setTimeout(() => {
        abort.abort();
        resolve({ stdout: "", stderr: `bash: timed out after ${this.timeoutMs} ms\n`, exitCode: 124 });
      }, this.timeoutMs);
    });
    try {
      const r = await Promise.race([this.bash.exec(script, { signal: abort.signal }), timedOut]);
      return { stdout: r.stdout, stderr: r.stderr, exitCode: r.exitCode };
    } finally {
      clearTimeout(timer);
    }
  }
}
