/**
 * Loads a repo's snapshot: resolve the revision (one ls-refs), then the commit with all its
 * trees (one fetch), all blob sizes (one object-info) and symlink targets (one fetch), so the
 * filesystem never waits on the network for metadata (SPEC §8).
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
  const { commitTime, rootTree, trees } = await backend.commitTrees(org, repo, rev.commitOid);
  const blobs = listBlobs({ trees, rootTree });
  const sizes =
    blobs.size > 0 ? await backend.objectSizes(org, repo, [...blobs.keys()]) : new Map<string, number>();
  const linkOids = [...blobs].filter(([, kind]) => kind === "symlink").map(([oid]) => oid);
  const symlinks = new Map<string, string>();
  if (linkOids.length > 0) {
    const data = await backend.fetchBlobs(org, repo, linkOids);
    for (const [oid, buf] of data) symlinks.set(oid, buf.toString("utf8"));
  }
  const snap: RepoSnapshot = {
    org,
    repo,
    revision: rev.label,
    commitOid: rev.commitOid,
    commitTime,
    rootTree,
    trees,
    sizes,
    symlinks,
    readOnly: rev.pinned || (repoConfig?.readOnly ?? false),
  };
  await backend.remember?.(snap);
  return snap;
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
