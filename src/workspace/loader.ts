/**
 * Loads a repo's snapshot: resolve the revision (one ls-refs), then the commit with all its
 * trees (one fetch), all blob sizes (one object-info) and symlink targets (one fetch), so the
 * filesystem never waits on the network for metadata (SPEC §8). The writer loads the snapshots
 * of other commits (new bases) the same way, through `snapshotAt`.
 */
import type { Config, RepoConfig } from "../config/types.js";
import type { RepoBackend } from "../daemon/backend.js";
import { listBlobs, type RepoSnapshot } from "./snapshot.js";

export async function loadSnapshot(
  backend: RepoBackend,
  org: string,
  repo: string,
  repoConfig: RepoConfig | undefined,
): Promise<RepoSnapshot> {
  const rev = await backend.resolveRevision(org, repo, repoConfig?.rev);
  const readOnly = rev.pinned || (repoConfig?.readOnly ?? false);
  const snap = await commitSnapshot(backend, org, repo, rev.commitOid, rev.label, readOnly);
  backend.remember?.(snap);
  return snap;
}

/** The (writable) snapshot of any commit, shown under `label`: a rebase's or a seal's new base. */
export function snapshotAt(
  backend: RepoBackend,
  org: string,
  repo: string,
  commit: string,
  label: string,
): Promise<RepoSnapshot> {
  return commitSnapshot(backend, org, repo, commit, label, false);
}

/** A commit's trees, the sizes of its blobs and its symlink targets. */
async function commitSnapshot(
  backend: RepoBackend,
  org: string,
  repo: string,
  commit: string,
  revision: string,
  readOnly: boolean,
): Promise<RepoSnapshot> {
  const { commitTime, rootTree, trees } = await backend.commitTrees(org, repo, commit);
  const blobs = listBlobs({ trees, rootTree });
  const sizes =
    blobs.size > 0 ? await backend.objectSizes(org, repo, [...blobs.keys()]) : new Map<string, number>();
  const linkOids = [...blobs].filter(([, kind]) => kind === "symlink").map(([oid]) => oid);
  const symlinks = new Map<string, string>();
  if (linkOids.length > 0) {
    const data = await backend.fetchBlobs(org, repo, linkOids);
    for (const [oid, buf] of data) symlinks.set(oid, buf.toString("utf8"));
  }
  return { org, repo, revision, commitOid: commit, commitTime, rootTree, trees, sizes, symlinks, readOnly };
}

/** The repos to mount for `org`: explicit ones from config, or all the REST API lists. */
export async function reposToMount(backend: RepoBackend, config: Config, org: string): Promise<string[]> {
  const orgConfig = config.organizations[org];
  const explicit = Object.keys(orgConfig?.repos ?? {});
  if (orgConfig && orgConfig.mount === "explicit") return explicit;
  const listed = await backend.listRepos(org);
  // No REST API: only the repos named in config can be found.
  if (listed === null) return explicit;
  return [...new Set([...listed, ...explicit])].sort();
}
