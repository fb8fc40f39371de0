/**
 * What the filesystem knows about one path of a repo, whichever layer it comes from (the
 * committed snapshot or the local overlay), and the interface both layers answer.
 */
import type { RepoSnapshot, SnapshotEntry } from "./snapshot.js";

/**
 * POSIX metadata kept for the session and never pushed. Optional: journals written before it
 * existed lack it, and then the defaults apply (the mount's owner, ctime and atime = mtime).
 */
export interface Attrs {
  uid?: number;
  gid?: number;
  atime?: number;
  ctime?: number;
}

/** A fifo ("p") or a unix socket ("s"). */
export type SpecialType = "p" | "s";

export type Node =
  | ({ type: "dir"; tree?: string; perm: number; mtime: number } & Attrs)
  | ({ type: "file"; perm: number; size: number; mtime: number; content?: string; blob?: string } & Attrs)
  | ({ type: "symlink"; target: string; mtime: number } & Attrs)
  | ({ type: "special"; t: SpecialType; perm: number; mtime: number } & Attrs);

export type Lookup = Node | "ENOENT" | "ENOTDIR";

/** A repo as the filesystem reads it: the committed snapshot alone, or an overlay on it. */
export interface RepoView {
  /** The committed snapshot shown below any local changes. */
  readonly base: RepoSnapshot;
  /** The node at repo-relative `rel` ("" = the repo root). */
  lookup(rel: string): Lookup;
  /** The node `name` in directory `rel`, whose node is `dir` (a listing's entries, without walking). */
  childOf(rel: string, dir: Node & { type: "dir" }, name: string): Lookup;
  /** Names in directory `rel` (which must be a directory). */
  list(rel: string, dir: Node & { type: "dir" }): string[];
  /** Subdirectories of directory `rel` (for its link count). */
  subdirCount(rel: string, dir: Node & { type: "dir" }): number;
  /** A committed blob's size; undefined until known (sizes load lazily without object-info). */
  blobSize(oid: string): number | undefined;
  /** A committed tree of this or an earlier base. */
  tree(oid: string): SnapshotEntry[] | undefined;
}

export function attrsOf(x: Attrs): Attrs {
  const out: Attrs = {};
  if (x.uid !== undefined) out.uid = x.uid;
  if (x.gid !== undefined) out.gid = x.gid;
  if (x.atime !== undefined) out.atime = x.atime;
  if (x.ctime !== undefined) out.ctime = x.ctime;
  return out;
}

export function parentOf(rel: string): string {
  const i = rel.lastIndexOf("/");
  return i < 0 ? "" : rel.slice(0, i);
}

export function baseName(rel: string): string {
  return rel.slice(rel.lastIndexOf("/") + 1);
}
