/**
 * Real data for the cache tests: a bare repository built with the git CLI, and a BlobFetcher
 * that reads blobs from it with `git cat-file --batch` (one process per request), counting
 * requests and concurrency. `delayMs` stands in for network latency; `tamper` flips a byte
 * of the named blobs, as a broken server or proxy would.
 */
import { execFile, execFileSync, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { promisify } from "node:util";
import type { BlobFetcher } from "../../src/cache/blob-store.js";

const GIT_ENV = {
  ...process.env,
  GIT_AUTHOR_NAME: "t",
  GIT_AUTHOR_EMAIL: "t@example.com",
  GIT_COMMITTER_NAME: "t",
  GIT_COMMITTER_EMAIL: "t@example.com",
  GIT_CONFIG_NOSYSTEM: "1",
  HOME: tmpdir(),
};

export function git(cwd: string, args: string[], input?: Buffer): Buffer {
  return execFileSync("git", args, { cwd, env: GIT_ENV, input, maxBuffer: 1 << 30 });
}

export interface Fixture {
  root: string;
  bare: string;
  commit: string;
  /** path → { oid, data } */
  files: Map<string, { oid: string; data: Buffer }>;
  cleanup(): void;
}

/** Commits `files` (path → content) and returns a bare clone plus every blob's oid. */
export function makeRepo(files: Map<string, Buffer>): Fixture {
  const root = mkdtempSync(join(tmpdir(), "mesa-cache-test-"));
  const work = join(root, "work");
  mkdirSync(work);
  for (const [p, data] of files) {
    mkdirSync(dirname(join(work, p)), { recursive: true });
    writeFileSync(join(work, p), data);
  }
  git(work, ["init", "-q", "-b", "main"]);
  git(work, ["add", "-A"]);
  git(work, ["commit", "-q", "-m", "fixture"]);
  const bare = join(root, "repo.git");
  git(root, ["clone", "-q", "--bare", work, bare]);
  const commit = git(bare, ["rev-parse", "HEAD"]).toString().trim();
  const out = new Map<string, { oid: string; data: Buffer }>();
  for (const line of git(work, ["ls-files", "-s", "-z"]).toString().split("\0")) {
    if (!line) continue;
    const [meta, path] = line.split("\t") as [string, string];
    out.set(path, { oid: meta.split(" ")[1]!, data: files.get(path)! });
  }
  rmSync(work, { recursive: true, force: true });
  return { root, bare, commit, files: out, cleanup: () => rmSync(root, { recursive: true, force: true }) };
}

/** `count` files of random (incompressible) content, sized by `size(i)`. */
export function randomFiles(count: number, size: (i: number) => number, prefix = "f"): Map<string, Buffer> {
  const m = new Map<string, Buffer>();
  for (let i = 0; i < count; i++) m.set(`${prefix}/${Math.floor(i / 50)}/${i}.bin`, randomBytes(size(i)));
  return m;
}

export class CatFileFetcher implements BlobFetcher {
  requests = 0;
  blobs = 0;
  inFlight = 0;
  maxInFlight = 0;
  readonly log: string[][] = [];

  constructor(
    public gitDir: string,
    public opts: { delayMs?: number; tamper?: Set<string> } = {},
  ) {}

  async fetchBlobs(oids: string[], opts: { signal?: AbortSignal } = {}): Promise<Map<string, Buffer>> {
    this.requests++;
    this.log.push([...oids]);
    this.inFlight++;
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
    try {
      if (this.opts.delayMs) await sleep(this.opts.delayMs, undefined, { signal: opts.signal });
      const raw = await this.catFile(oids, opts.signal);
      const out = parseBatch(raw);
      for (const [oid, data] of out) {
        this.blobs++;
        if (this.opts.tamper?.has(oid) && data.length > 0) data[0] = (data[0]! + 1) & 0xff;
      }
      return out;
    } finally {
      this.inFlight--;
    }
  }

  private catFile(oids: string[], signal?: AbortSignal): Promise<Buffer> {
    return new Promise((resolve, reject) => {
      const child = spawn("git", ["--git-dir", this.gitDir, "cat-file", "--batch"], {
        env: GIT_ENV,
        stdio: ["pipe", "pipe", "pipe"],
        signal,
      });
      const chunks: Buffer[] = [];
      const errs: Buffer[] = [];
      child.stdout.on("data", (c: Buffer) => chunks.push(c));
      child.stderr.on("data", (c: Buffer) => errs.push(c));
      child.on("error", reject);
      child.on("close", (code) => {
        if (code === 0) resolve(Buffer.concat(chunks));
        else reject(new Error(`git cat-file exited ${code}: ${Buffer.concat(errs).toString().trim()}`));
      });
      child.stdin.on("error", () => {});
      child.stdin.end(`${oids.join("\n")}\n`);
    });
  }
}

function parseBatch(raw: Buffer): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  let pos = 0;
  while (pos < raw.length) {
    const nl = raw.indexOf(0x0a, pos);
    const header = raw.toString("latin1", pos, nl).split(" ");
    pos = nl + 1;
    if (header[1] === "missing") continue;
    const size = Number(header[2]);
    out.set(header[0]!, Buffer.from(raw.subarray(pos, pos + size)));
    pos += size + 1;
  }
  return out;
}

const execFileP = promisify(execFile);

/** `du` without blocking the event loop, to sample while the cache is busy. */
export async function duAsync(dir: string): Promise<{ blocks: number; apparent: number }> {
  // Files evicted while du walks make it exit 1; it still prints the total of what it saw.
  const run = (flag: string) =>
    execFileP("du", ["-s", flag, dir]).then(
      (r) => r.stdout,
      (e: { stdout?: string }) => e.stdout ?? "0",
    );
  const [a, b] = await Promise.all([run("-B1"), run("-b")]);
  return { blocks: Number(a.split("\t")[0]), apparent: Number(b.split("\t")[0]) };
}

/** Bytes on disk of a directory tree, as `du` counts them (allocated blocks, and apparent size). */
export function du(dir: string): { blocks: number; apparent: number } {
  const blocks = Number(execFileSync("du", ["-s", "-B1", dir]).toString().split("\t")[0]);
  const apparent = Number(execFileSync("du", ["-s", "-b", dir]).toString().split("\t")[0]);
  return { blocks, apparent };
}
