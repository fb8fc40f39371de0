/**
 * The committed layer of a repo: nodes for the paths of its base snapshot, answered from
 * memory. A read-only repo is shown straight from it; a writable repo's overlay lies on top.
 * Trees of earlier bases stay known, so a directory renamed before a rebase still resolves.
 */
import { baseName, type Lookup, type Node, parentOf, type RepoView } from "./node.js";
import { entryIndex, entryKind, type RepoSnapshot, type SnapshotEntry } from "./snapshot.js";

export class BaseLayer implements RepoView {
  /** What earlier bases (and pushed trees) had that the current base lacks. */
  private readonly olderTrees = new Map<string, SnapshotEntry[]>();
  private readonly olderSizes = new Map<string, number>();
  private readonly olderTargets = new Map<string, string>();
  private readonly subdirsOfTree = new Map<string, number>();

  constructor(public base: RepoSnapshot) {}

  /** Shows `snap` from now on; what only the old base had stays resolvable. */
  moveTo(snap: RepoSnapshot): void {
    const old = this.base;
    if (old === snap) return;
    for (const [k, v] of old.trees) if (!snap.trees.has(k)) this.olderTrees.set(k, v);
    for (const [k, v] of old.sizes) if (!snap.sizes.has(k)) this.olderSizes.set(k, v);
    for (const [k, v] of old.symlinks) if (!snap.symlinks.has(k)) this.olderTargets.set(k, v);
    this.base = snap;
  }

  /** Trees built locally (pushed commits) that later bases may refer to. */
  addTrees(trees: Map<string, SnapshotEntry[]>): void {
    for (const [k, v] of trees) if (!this.base.trees.has(k)) this.olderTrees.set(k, v);
  }

  tree(oid: string): SnapshotEntry[] | undefined {
    return this.base.trees.get(oid) ?? this.olderTrees.get(oid);
  }

  blobSize(oid: string): number | undefined {
    return this.base.sizes.get(oid) ?? this.olderSizes.get(oid);
  }

  root(): Node & { type: "dir" } {
    return { type: "dir", tree: this.base.rootTree, perm: 0o755, mtime: this.base.commitTime.getTime() };
  }

  /** The committed node `name` of directory tree `tree`. */
  child(tree: string | undefined, name: string): Node | undefined {
    const entries = tree === undefined ? undefined : this.tree(tree);
    const be = entries && entryIndex(entries).get(name);
    return be && this.nodeOf(be);
  }

  private nodeOf(be: SnapshotEntry): Node {
    const mtime = this.base.commitTime.getTime();
    switch (entryKind(be.mode)) {
      case "dir":
        return { type: "dir", tree: be.oid, perm: 0o755, mtime };
      case "submodule":
        // Shown as an empty directory: its commit lives in another repository.
        return { type: "dir", perm: 0o755, mtime };
      case "symlink":
        return {
          type: "symlink",
          target: this.base.symlinks.get(be.oid) ?? this.olderTargets.get(be.oid) ?? "",
          mtime,
        };
      case "exec":
        return { type: "file", perm: 0o755, size: this.blobSize(be.oid) ?? 0, mtime, blob: be.oid };
      default:
        return { type: "file", perm: 0o644, size: this.blobSize(be.oid) ?? 0, mtime, blob: be.oid };
    }
  }

  /** Names in committed directory tree `tree`. */
  names(tree: string | undefined): string[] {
    return tree === undefined ? [] : (this.tree(tree)?.map((e) => e.name) ?? []);
  }

  treeSubdirs(oid: string): number {
    let n = this.subdirsOfTree.get(oid);
    if (n === undefined) {
      n = 0;
      for (const e of this.tree(oid) ?? []) {
        const kind = entryKind(e.mode);
        if (kind === "dir" || kind === "submodule") n++;
      }
      this.subdirsOfTree.set(oid, n);
    }
    return n;
  }

  lookup(rel: string): Lookup {
    if (rel === "") return this.root();
    const parent = this.lookup(parentOf(rel));
    if (typeof parent === "string") return parent;
    if (parent.type !== "dir") return "ENOTDIR";
    return this.child(parent.tree, baseName(rel)) ?? "ENOENT";
  }

  childOf(_rel: string, dir: Node & { type: "dir" }, name: string): Lookup {
    return this.child(dir.tree, name) ?? "ENOENT";
  }

  list(_rel: string, dir: Node & { type: "dir" }): string[] {
    return this.names(dir.tree);
  }

  subdirCount(_rel: string, dir: Node & { type: "dir" }): number {
    return dir.tree ? this.treeSubdirs(dir.tree) : 0;
  }
}
