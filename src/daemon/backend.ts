/**
 * What the daemon needs from the VCS service, per repo. `wiring.ts` implements it over the
 * Git smart-HTTP client and the REST client; tests may implement it over anything real.
 */
import type { RevSpec } from "../config/types.js";
import type { ResolvedRevision } from "../vcs/refs.js";
import type { RepoSnapshot, SnapshotEntry } from "../workspace/snapshot.js";

export type { ResolvedRevision };

export interface CommitTrees {
  commitTime: Date;
  rootTree: string;
  trees: Map<string, SnapshotEntry[]>;
}

export interface RepoBackend {
  /** Repos of `org` from the REST API; null when the service speaks only Git smart HTTP. */
  listRepos(org: string): Promise<string[] | null>;
  resolveRevision(org: string, repo: string, rev: RevSpec | undefined): Promise<ResolvedRevision>;
  commitTrees(org: string, repo: string, commitOid: string): Promise<CommitTrees>;
  objectSizes(org: string, repo: string, oids: string[]): Promise<Map<string, number>>;
  fetchBlobs(org: string, repo: string, oids: string[]): Promise<Map<string, Buffer>>;
  /** Keep a loaded snapshot's metadata for the next mount (optional; written in the background). */
  remember?(snap: RepoSnapshot): void;
}
