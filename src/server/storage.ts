import { randomUUID } from "node:crypto";
import { mkdir, mkdtemp, readdir, readFile, rename, rm, stat } from "node:fs/promises";
import path from "node:path";
import { MesaError } from "../errors.js";
import { nameProblem, validateOrgName, validateRepoName } from "../names.js";
import { git, runGit } from "./git.js";

/**
 * The data dir: `state.json`, `repos/<org>/<repo>.git` (bare repos owned by the real git)
 * and `tmp/` for work that is renamed into place, so readers never see half-made repos.
 * Repo metadata lives in each bare repo's config (`mesa.id`, `mesa.createdAt`).
 */
export class DataDir {
  constructor(readonly root: string) {}

  get stateFile(): string {
    return path.join(this.root, "state.json");
  }
  get lockFile(): string {
    return path.join(this.root, "serve.lock");
  }
  get reposRoot(): string {
    return path.join(this.root, "repos");
  }
  get tmpRoot(): string {
    return path.join(this.root, "tmp");
  }

  async ensure(): Promise<void> {
    await mkdir(this.root, { recursive: true, mode: 0o700 });
    await mkdir(this.reposRoot, { recursive: true, mode: 0o700 });
    await mkdir(this.tmpRoot, { recursive: true, mode: 0o700 });
  }

  orgDir(org: string): string {
    return path.join(this.reposRoot, validateOrgName(org));
  }

  repoDir(org: string, repo: string): string {
    return path.join(this.orgDir(org), `${validateRepoName(repo)}.git`);
  }

  /** A fresh directory under tmp/ (same file system as repos/, so rename works). */
  async tempDir(prefix: string): Promise<string> {
    await mkdir(this.tmpRoot, { recursive: true, mode: 0o700 });
    return mkdtemp(path.join(this.tmpRoot, `${prefix}-`));
  }

  async repoExists(org: string, repo: string): Promise<boolean> {
    try {
      return (await stat(path.join(this.repoDir(org, repo), "HEAD"))).isFile();
    } catch {
      return false;
    }
  }

  /** Repo names of an org, sorted; skips anything on disk that is not a valid repo name. */
  async listRepos(org: string): Promise<string[]> {
    let entries: string[];
    try {
      entries = await readdir(this.orgDir(org));
    } catch {
      return [];
    }
    return entries
      .filter((e) => e.endsWith(".git"))
      .map((e) => e.slice(0, -4))
      .filter((n) => nameProblem(n) === undefined)
      .sort();
  }
}

export interface RepoMeta {
  id: string;
  createdAt: string;
  /** Branch HEAD points at (the default bookmark). */
  defaultBookmark: string;
}

/** The `[mesa]` section of a bare repo's config file, cached by the file's identity. */
const metaCache = new Map<string, { key: string; id: string; createdAt: string }>();

async function readMesaConfig(gitDir: string): Promise<{ id: string; createdAt: string }> {
  const file = path.join(gitDir, "config");
  const st = await stat(file);
  const key = `${st.ino}:${st.size}:${st.mtimeMs}`;
  const hit = metaCache.get(gitDir);
  if (hit?.key === key) return hit;
  // We write these two values with `git config`, which always lays them out like this.
  const text = await readFile(file, "utf8");
  let inMesa = false;
  const values: Record<string, string> = {};
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (line.startsWith("[")) inMesa = /^\[mesa\]$/i.test(line);
    else if (inMesa) {
      const m = /^([A-Za-z][A-Za-z0-9-]*)\s*=\s*(.*)$/.exec(line);
      if (m) values[m[1]!.toLowerCase()] = m[2]!;
    }
  }
  const entry = { key, id: values.id ?? "", createdAt: values.createdat ?? "" };
  if (metaCache.size > 10_000) metaCache.clear();
  metaCache.set(gitDir, entry);
  return entry;
}

/** Repo metadata without spawning git: HEAD and the config file are read directly. */
export async function readRepoMeta(gitDir: string): Promise<RepoMeta> {
  const [cfg, head] = await Promise.all([
    readMesaConfig(gitDir),
    readFile(path.join(gitDir, "HEAD"), "utf8"),
  ]);
  const m = /^ref: refs\/heads\/(\S+)\s*$/.exec(head);
  return { id: cfg.id, createdAt: cfg.createdAt, defaultBookmark: m ? m[1]! : "main" };
}

/** Settings every repo gets; reads with filters and any-SHA1 wants are served per request. */
async function initMeta(gitDir: string, defaultBookmark?: string): Promise<void> {
  await git(gitDir, ["config", "mesa.id", `repo_${randomUUID().replaceAll("-", "")}`]);
  await git(gitDir, ["config", "mesa.createdAt", new Date().toISOString()]);
  // Objects written by REST calls must never be collected while refs/mesa/* are being moved.
  await git(gitDir, ["config", "gc.auto", "0"]);
  if (defaultBookmark) await git(gitDir, ["symbolic-ref", "HEAD", `refs/heads/${defaultBookmark}`]);
}

/** Moves a finished bare repo from tmp/ into place; fails if the name was taken meanwhile. */
async function publish(data: DataDir, tmpRepo: string, org: string, repo: string): Promise<void> {
  const dest = data.repoDir(org, repo);
  await mkdir(path.dirname(dest), { recursive: true, mode: 0o700 });
  if (await data.repoExists(org, repo))
    throw new MesaError("CONFLICT", `repository ${org}/${repo} already exists`);
  try {
    await rename(tmpRepo, dest);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === "ENOTEMPTY" || code === "EEXIST")
      throw new MesaError("CONFLICT", `repository ${org}/${repo} already exists`);
    throw err;
  }
}

export async function createRepo(
  data: DataDir,
  org: string,
  repo: string,
  defaultBookmark: string,
): Promise<void> {
  const tmp = await data.tempDir("create");
  try {
    const dir = path.join(tmp, "repo.git");
    await git(undefined, ["init", "--bare", "-q", dir]);
    await initMeta(dir, defaultBookmark);
    await publish(data, dir, org, repo);
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
}

/** Renames the repo away first so it vanishes at once, then deletes it. */
export async function deleteRepo(data: DataDir, org: string, repo: string): Promise<void> {
  const tmp = await data.tempDir("delete");
  try {
    await rename(data.repoDir(org, repo), path.join(tmp, "repo.git"));
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
}

/**
 * Credentials in an http(s) source URL travel to git as an HTTP header in its environment,
 * never in its argv (visible in `ps`) or in error messages.
 */
function credentialsOutOfUrl(source: string): { url: string; env: Record<string, string> } {
  let u: URL;
  try {
    u = new URL(source);
  } catch {
    return { url: source, env: {} };
  }
  if ((u.protocol !== "http:" && u.protocol !== "https:") || (!u.username && !u.password))
    return { url: source, env: {} };
  const basic = Buffer.from(`${decodeURIComponent(u.username)}:${decodeURIComponent(u.password)}`).toString(
    "base64",
  );
  u.username = "";
  u.password = "";
  return {
    url: u.toString(),
    env: {
      GIT_CONFIG_COUNT: "1",
      GIT_CONFIG_KEY_0: "http.extraHeader",
      GIT_CONFIG_VALUE_0: `Authorization: Basic ${basic}`,
    },
  };
}

/**
 * Clones every branch and tag of `source` (a Git URL or path) into a new repo. Works while a
 * server runs on the same data dir: the clone is built in tmp/ and renamed into place.
 */
export async function importRepo(
  data: DataDir,
  org: string,
  repo: string,
  source: string,
  afterClone?: (gitDir: string) => Promise<void>,
  /** git's own progress lines ("Receiving objects: 45% (…)"), when someone shows them. */
  onProgress?: (line: string) => void,
): Promise<{ branches: string[]; defaultBookmark: string }> {
  validateOrgName(org);
  validateRepoName(repo);
  if (await data.repoExists(org, repo))
    throw new MesaError("CONFLICT", `repository ${org}/${repo} already exists`);
  const tmp = await data.tempDir("import");
  try {
    const dir = path.join(tmp, "repo.git");
    const { url, env } = credentialsOutOfUrl(source);
    const r = await runGit(undefined, ["clone", "--bare", onProgress ? "--progress" : "-q", "--", url, dir], {
      timeoutMs: 3_600_000,
      env,
      onStderr: onProgress
        ? (text) => {
            for (const line of text.split(/[\r\n]+/))
              if (/^(remote: )?(Enumerating|Counting|Compressing|Receiving|Resolving)/.test(line))
                onProgress(line.trim());
          }
        : undefined,
    });
    if (r.code !== 0) {
      throw new MesaError("INVALID_ARGUMENT", `cannot clone ${url}: ${r.stderr.trim().split("\n").pop()}`);
    }
    // The origin URL may carry credentials; the served repo does not need it.
    await runGit(dir, ["remote", "remove", "origin"]);
    const branches = (await git(dir, ["for-each-ref", "--format=%(refname:strip=2)", "refs/heads"]))
      .toString("utf8")
      .split("\n")
      .filter(Boolean);
    const meta = await readRepoMeta(dir);
    let defaultBookmark = meta.defaultBookmark;
    if (!branches.includes(defaultBookmark)) {
      defaultBookmark =
        ["main", "master", "trunk"].find((b) => branches.includes(b)) ?? branches[0] ?? "main";
    }
    await initMeta(dir, defaultBookmark);
    if (afterClone) await afterClone(dir);
    await publish(data, dir, org, repo);
    return { branches, defaultBookmark };
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
}
