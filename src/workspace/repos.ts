/**
 * A session's filesystem over its repos, built the same way for the daemon (behind FUSE) and
 * the SDK (in-process): the workspace filesystem, the manager of one overlay and writer per
 * writable repo, and loading a repo into them. Nothing here knows about FUSE.
 */
import type { Logger } from "pino";
import type { Config } from "../config/types.js";
import type { Session } from "../daemon/wiring.js";
import { WorkspaceFileSystem } from "./filesystem.js";
import { loadSnapshot } from "./loader.js";
import { WriteManager } from "./manager.js";
import type { RepoSnapshot } from "./snapshot.js";

export interface RepoFileSystem {
  /** The filesystem to serve (FUSE) or call (SDK). */
  fs: WorkspaceFileSystem;
  /** The working changes of the writable repos. */
  writes: WriteManager;
}

export function createRepoFileSystem(
  config: Config,
  session: Session,
  log: Logger,
  orgs: string[],
): RepoFileSystem {
  const fs = new WorkspaceFileSystem(session.content, {
    uid: config.uid,
    gid: config.gid,
    dataDir: config.dataDir,
    readTimeoutMs: session.readTimeoutMs,
    prefetchDepth: config.prefetch.enabled ? config.prefetch.maxDepth : 0,
    log,
  });
  fs.setOrgs(orgs);
  return { fs, writes: new WriteManager(config, session, fs, log) };
}

/**
 * Loads `org/repo` at its configured revision and shows it, writable unless it must stay
 * read-only. A failure to start its writer leaves it read-only and is returned, not thrown.
 */
export async function openRepo(
  rfs: RepoFileSystem,
  session: Session,
  config: Config,
  org: string,
  repo: string,
): Promise<{ snap: RepoSnapshot; writeError?: Error }> {
  const repoConfig = config.organizations[org]?.repos[repo];
  const snap = await loadSnapshot(session.backend, org, repo, repoConfig);
  rfs.fs.setOrgs([org]);
  rfs.fs.setRepo(snap);
  try {
    await rfs.writes.attach(snap, repoConfig);
  } catch (err) {
    return { snap, writeError: err as Error };
  }
  return { snap };
}
