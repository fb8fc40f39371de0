/**
 * Builds real Git repositories with the git CLI for tests and benchmarks.
 * Every call runs with a fixed identity and without the user's or system's git config.
 */
import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";

export type FileSpec = string | Buffer | { symlink: string } | { exec: string | Buffer };

const GIT_ENV: NodeJS.ProcessEnv = {
  PATH: process.env.PATH,
  HOME: tmpdir(),
  GIT_CONFIG_NOSYSTEM: "1",
  GIT_CONFIG_GLOBAL: "/dev/null",
  GIT_AUTHOR_NAME: "Test Author",
  GIT_AUTHOR_EMAIL: "author@example.com",
  GIT_COMMITTER_NAME: "Test Committer",
  GIT_COMMITTER_EMAIL: "committer@example.com",
  GIT_AUTHOR_DATE: "1700000000 +0000",
  GIT_COMMITTER_DATE: "1700000000 +0000",
  LC_ALL: "C",
};

/** Runs git and returns stdout as a Buffer; throws with stderr on failure. */
export function gitRaw(cwd: string, args: string[], input?: string | Buffer): Buffer {
  const r = spawnSync("git", args, { cwd, env: GIT_ENV, input, maxBuffer: 1 << 30 });
  if (r.status !== 0) {
    throw new Error(
      `git ${args.join(" ")} failed (${r.status}): ${r.stderr?.toString() ?? r.error?.message}`,
    );
  }
  return r.stdout;
}

export function git(cwd: string, args: string[], input?: string | Buffer): string {
  return gitRaw(cwd, args, input).toString("utf8").trim();
}

export function tempDir(prefix = "mesa-test-"): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

export function removeDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
}

export function writeFiles(work: string, files: Record<string, FileSpec>): void {
  for (const [path, spec] of Object.entries(files)) {
    const full = join(work, path);
    mkdirSync(dirname(full), { recursive: true });
    rmSync(full, { force: true });
    if (typeof spec === "string" || Buffer.isBuffer(spec)) writeFileSync(full, spec);
    else if ("symlink" in spec) symlinkSync(spec.symlink, full);
    else writeFileSync(full, spec.exec, { mode: 0o755 });
  }
}

export interface TestRepo {
  /** Bare repository path (what the server serves). */
  bare: string;
  /** Working clone used to create commits. */
  work: string;
  /** Path below the server root, e.g. "org/repo.git". */
  slug: string;
  head(): string;
  /** Commits `files` (and deletes `remove`) on the current branch and pushes to the bare repo. */
  commit(files: Record<string, FileSpec>, message?: string, remove?: string[]): string;
}

/**
 * A bare repo at <root>/<slug> whose branch `main` holds `files` in one commit.
 * `slug` defaults to "org/repo.git".
 */
export function makeRepo(root: string, files: Record<string, FileSpec>, slug = "org/repo.git"): TestRepo {
  const bare = join(root, slug);
  const work = join(root, `${slug}.work`);
  mkdirSync(bare, { recursive: true });
  git(bare, ["init", "-q", "--bare", "-b", "main"]);
  mkdirSync(work, { recursive: true });
  git(work, ["init", "-q", "-b", "main"]);
  git(work, ["remote", "add", "origin", bare]);
  let n = 0;
  const repo: TestRepo = {
    bare,
    work,
    slug,
    head: () => git(bare, ["rev-parse", "refs/heads/main"]),
    commit(more, message, remove = []) {
      writeFiles(work, more);
      for (const r of remove) git(work, ["rm", "-rq", "--", r]);
      git(work, ["add", "-A"]);
      git(work, ["-c", `user.name=x`, "commit", "-q", "--allow-empty", "-m", message ?? `commit ${++n}`]);
      git(work, ["push", "-q", "origin", "HEAD:refs/heads/main"]);
      return repo.head();
    },
  };
  repo.commit(files, "initial");
  return repo;
}

/** Contents of many objects at once, via `git cat-file --batch`. */
export function catFiles(bare: string, oids: string[]): Map<string, { type: string; data: Buffer }> {
  const out = gitRaw(bare, ["cat-file", "--batch"], `${oids.join("\n")}\n`);
  const result = new Map<string, { type: string; data: Buffer }>();
  let pos = 0;
  while (pos < out.length) {
    const nl = out.indexOf(0x0a, pos);
    const [oid, type, size] = out.toString("latin1", pos, nl).split(" ");
    if (type === "missing") throw new Error(`missing object ${oid}`);
    const len = Number(size);
    result.set(oid!, { type: type!, data: out.subarray(nl + 1, nl + 1 + len) });
    pos = nl + 1 + len + 1;
  }
  return result;
}

/** Every object reachable from `rev`, with its type: `git rev-list --objects` + cat-file. */
export function listObjects(
  bare: string,
  rev: string,
): Array<{ oid: string; type: string; size: number; path: string }> {
  const text = git(bare, ["rev-list", "--objects", rev]);
  const lines = text.split("\n").filter(Boolean);
  const oids = lines.map((l) => l.slice(0, 40));
  const info = gitRaw(bare, ["cat-file", "--batch-check"], `${oids.join("\n")}\n`)
    .toString()
    .trim()
    .split("\n");
  return lines.map((l, i) => {
    const [, type, size] = info[i]!.split(" ");
    return { oid: oids[i]!, type: type!, size: Number(size), path: l.slice(41) };
  });
}

/**
 * A bare repo with `count` generated files in nested directories, written in one commit with
 * `git fast-import` (seconds for tens of thousands of files). Sizes vary up to ~`maxSize` bytes; all contents differ.
 */
export function makeBigRepo(
  root: string,
  count: number,
  slug = "org/big.git",
  maxSize = 4096,
): { bare: string; head: string } {
  const bare = join(root, slug);
  mkdirSync(bare, { recursive: true });
  git(bare, ["init", "-q", "--bare", "-b", "main"]);
  const parts: Buffer[] = [];
  parts.push(
    Buffer.from(
      "commit refs/heads/main\ncommitter Gen <gen@example.com> 1700000000 +0000\ndata 9\ngenerated\n",
      "utf8",
    ),
  );
  let seed = 12345;
  const rand = () => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return seed;
  };
  for (let i = 0; i < count; i++) {
    const path = `d${i % 40}/s${Math.floor(i / 40) % 25}/file-${i}.txt`;
    const size = rand() % maxSize;
    const line = `file ${i} line of generated content ${rand().toString(36)}\n`;
    // Starts with the index so every blob is distinct.
    const text = `${i}\n${line.repeat(Math.ceil(size / line.length))}`;
    const body = Buffer.from(text.slice(0, Math.max(size, String(i).length + 1)), "utf8");
    parts.push(
      Buffer.from(`M 100644 inline ${path}\ndata ${body.length}\n`, "utf8"),
      body,
      Buffer.from("\n"),
    );
  }
  parts.push(Buffer.from("\n"));
  gitRaw(bare, ["fast-import", "--quiet"], Buffer.concat(parts));
  gitRaw(bare, ["repack", "-adq"]);
  return { bare, head: git(bare, ["rev-parse", "refs/heads/main"]) };
}

/** Recursive tree listing as `git ls-tree -r -t` shows it: path → {mode, type, oid}. */
export function lsTree(bare: string, rev: string): Map<string, { mode: string; type: string; oid: string }> {
  const out = gitRaw(bare, ["ls-tree", "-r", "-t", "-z", rev]).toString("utf8");
  const map = new Map<string, { mode: string; type: string; oid: string }>();
  for (const rec of out.split("\0").filter(Boolean)) {
    const tab = rec.indexOf("\t");
    const [mode, type, oid] = rec.slice(0, tab).split(" ");
    map.set(rec.slice(tab + 1), { mode: mode!, type: type!, oid: oid! });
  }
  return map;
}
