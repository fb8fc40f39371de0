/**
 * `mesa.fs.mount()`: validates the options, signs the one token the mount uses, and builds
 * the daemon's filesystem for the chosen repos in this process: no FUSE, no daemon.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pino from "pino";
import { API_KEY_TTL, looksLikeJwt } from "../auth/tokens.js";
import { bookmarkProblem } from "../config/revs.js";
import type { Config, RepoConfig } from "../config/types.js";
import { createSession, type Session } from "../daemon/wiring.js";
import { isChangeId } from "../vcs/objects.js";
import { createRepoFileSystem, openRepo, type RepoFileSystem } from "../workspace/repos.js";
import type { Client } from "./client.js";
import { InvalidOptionsError, toSdkError } from "./errors.js";
import { MesaFileSystem } from "./fs.js";
import { tokenExpiry } from "./tokens.js";

export interface RepoSpec {
  /** "app" or "org/app". */
  name: string;
  /** Follow this bookmark (default: the repo's default bookmark). */
  bookmark?: string;
  /** Pin to this change: read-only. */
  changeId?: string;
  /** Writes fail with EROFS. */
  readOnly?: boolean;
}

export interface MountOptions {
  repos: Array<string | RepoSpec>;
  /** "rw" (default) or "ro": every repo read-only. */
  mode?: "rw" | "ro";
  /** Lifetime in seconds of the one token the mount signs: 1–86,400, default 3,600. */
  ttl?: number;
  /** Keep file contents on disk here (default: memory only). */
  diskCache?: { path: string; maxSizeBytes?: number };
}

interface Wanted {
  name: string;
  config: RepoConfig;
}

function problem(message: string): never {
  throw new InvalidOptionsError(message);
}

/** Checks everything that needs no network; throws InvalidOptionsError. */
async function wantedRepos(client: Client, opts: MountOptions): Promise<{ org: string; repos: Wanted[] }> {
  if (!opts || !Array.isArray(opts.repos) || opts.repos.length === 0)
    problem("repos must name at least one repository");
  const mode = opts.mode ?? "rw";
  if (mode !== "rw" && mode !== "ro") problem(`mode must be "rw" or "ro", not ${JSON.stringify(opts.mode)}`);
  const ttl = opts.ttl ?? API_KEY_TTL.default;
  if (!Number.isInteger(ttl) || ttl < 1 || ttl > API_KEY_TTL.max)
    problem(`ttl must be a whole number of seconds from 1 to ${API_KEY_TTL.max}, not ${opts.ttl}`);
  if (opts.diskCache !== undefined) {
    if (typeof opts.diskCache.path !== "string" || opts.diskCache.path === "")
      problem("diskCache.path must name a directory");
    const max = opts.diskCache.maxSizeBytes;
    if (max !== undefined && (!Number.isInteger(max) || max < 1))
      problem("diskCache.maxSizeBytes must be a positive whole number");
  }
  const org = await client.org();
  const seen = new Set<string>();
  const repos: Wanted[] = [];
  for (const entry of opts.repos) {
    const spec: RepoSpec = typeof entry === "string" ? { name: entry } : entry;
    if (!spec || typeof spec.name !== "string")
      problem("each repo is a name or { name, bookmark?, changeId? }");
    const name = await client.repoName(spec.name);
    if (seen.has(name)) problem(`repo '${name}' is listed twice`);
    seen.add(name);
    if (spec.bookmark !== undefined && spec.changeId !== undefined)
      problem(`repo '${name}': give a bookmark or a changeId, not both`);
    if (spec.bookmark !== undefined) {
      const bad = bookmarkProblem(spec.bookmark);
      if (bad) problem(`repo '${name}': ${bad}`);
    }
    if (spec.changeId !== undefined && !isChangeId(spec.changeId))
      problem(`repo '${name}': '${spec.changeId}' is not a change id (32 letters k-z)`);
    const rev =
      spec.bookmark !== undefined
        ? { bookmark: spec.bookmark }
        : spec.changeId !== undefined
          ? { changeId: spec.changeId }
          : undefined;
    repos.push({ name, config: { rev, readOnly: mode === "ro" || spec.readOnly === true } });
  }
  return { org, repos };
}

export async function mount(client: Client, opts: MountOptions): Promise<MesaFileSystem> {
  const { org, repos } = await wantedRepos(client, opts);
  const ttl = opts.ttl ?? API_KEY_TTL.default;
  const writable = repos.some((r) => !r.config.readOnly && !(r.config.rev && "changeId" in r.config.rev));
  const token = (await client.isToken())
    ? await client.credential()
    : await client.mint({
        repos: repos.map((r) => `${org}/${r.name}`),
        scopes: writable ? ["read", "write"] : ["read"],
        ttlSeconds: ttl,
      });
  const expiresAt = looksLikeJwt(token) ? tokenExpiry(token) : new Date(Date.now() + ttl * 1000);

  const base = client.config;
  const dataDir = await mkdtemp(join(tmpdir(), "mesa-sdk-"));
  const config: Config = {
    ...base,
    dataDir,
    uid: process.getuid?.() ?? 0,
    gid: process.getgid?.() ?? 0,
    cache: opts.diskCache
      ? {
          ...base.cache,
          enabled: true,
          path: opts.diskCache.path,
          maxSize: opts.diskCache.maxSizeBytes ?? base.cache.maxSize,
        }
      : { ...base.cache, enabled: false },
    organizations: {
      [org]: {
        name: org,
        mount: "explicit",
        repos: Object.fromEntries(repos.map((r) => [r.name, r.config])),
      },
    },
  };
  const log = pino({ level: "silent" });
  let session: Session | undefined;
  let rfs: RepoFileSystem | undefined;
  try {
    session = await createSession(config, log, { credential: token });
    rfs = createRepoFileSystem(config, session, log, [org]);
    for (const r of repos) {
      const { writeError } = await openRepo(rfs, session, config, org, r.name);
      if (writeError && !r.config.readOnly) throw writeError;
    }
    return new MesaFileSystem({ org, client, rfs, session, dataDir, expiresAt });
  } catch (err) {
    await rfs?.writes.stop().catch(() => undefined);
    await session?.close().catch(() => undefined);
    await rm(dataDir, { recursive: true, force: true });
    throw toSdkError(err);
  }
}
