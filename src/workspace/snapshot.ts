/**
 * One mounted repo at one commit: everything the filesystem needs to answer metadata
 * questions from memory (trees, blob sizes, symlink targets), loaded once at mount time.
 */

/** A tree entry as the Git client returns it; mode is Git's octal text ("100644", "40000"). */
export interface SnapshotEntry {
  mode: string | number;
  name: string;
  oid: string;
}

export interface RepoSnapshot {
  org: string;
  repo: string;
  /** What was asked for, for status: "bookmark:main", "change-id:…", "default:main". */
  revision: string;
  commitOid: string;
  commitTime: Date;
  rootTree: string;
  trees: Map<string, SnapshotEntry[]>;
  /** Blob oid → size in bytes. */
  sizes: Map<string, number>;
  /** Symlink blob oid → target text. */
  symlinks: Map<string, string>;
  /** Pinned to a change id (or configured read-only): never writable. */
  readOnly: boolean;
}

export type EntryKind = "file" | "exec" | "symlink" | "dir" | "submodule";

/** Git's tree modes; anything else (old 100664 etc.) is treated as a regular file. */
export function entryKind(mode: string | number): EntryKind {
  const m = typeof mode === "number" ? mode : Number.parseInt(mode, 8);
  switch (m) {
    case 0o40000:
      return "dir";
    case 0o120000:
      return "symlink";
    case 0o160000:
      return "submodule";
    case 0o100755:
      return "exec";
    default:
      return (m & 0o170000) === 0o40000 ? "dir" : "file";
  }
}

/** Every blob oid reachable from the root tree, with the kind of entry pointing at it. */
export function listBlobs(snap: Pick<RepoSnapshot, "trees" | "rootTree">): ReadonlyMap<string, EntryKind> {
  // Trees never change: walked once per tree map and root (mount, status and the stream ask).
  let byRoot = blobLists.get(snap.trees);
  if (!byRoot) {
    byRoot = new Map();
    blobLists.set(snap.trees, byRoot);
  }
  let out = byRoot.get(snap.rootTree);
  if (!out) {
    out = walkBlobs(snap);
    byRoot.set(snap.rootTree, out);
  }
  return out;
}

const blobLists = new WeakMap<Map<string, SnapshotEntry[]>, Map<string, Map<string, EntryKind>>>();

function walkBlobs(snap: Pick<RepoSnapshot, "trees" | "rootTree">): Map<string, EntryKind> {
  const out = new Map<string, EntryKind>();
  const seen = new Set<string>();
  const stack = [snap.rootTree];
  while (stack.length > 0) {
    const oid = stack.pop() as string;
    if (seen.has(oid)) continue;
    seen.add(oid);
    for (const e of snap.trees.get(oid) ?? []) {
      const kind = entryKind(e.mode);
      if (kind === "dir") stack.push(e.oid);
      // A blob used both as a file and as a symlink still needs its target text.
      else if (kind === "symlink" || (kind !== "submodule" && !out.has(e.oid))) out.set(e.oid, kind);
    }
  }
  return out;
}

const entryIndexes = new WeakMap<SnapshotEntry[], Map<string, SnapshotEntry>>();

/** Entries of one tree by name, built once per (immutable) entry list. */
export function entryIndex(entries: SnapshotEntry[]): Map<string, SnapshotEntry> {
  let idx = entryIndexes.get(entries);
  if (!idx) {
    idx = new Map(entries.map((e) => [e.name, e]));
    entryIndexes.set(entries, idx);
  }
  return idx;
}
