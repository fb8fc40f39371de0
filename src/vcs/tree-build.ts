/**
 * Builds a new root tree from a base tree plus path changes. Only the trees on the paths that
 * change are loaded (through `loadTree`, typically the metadata cache); every other subtree is
 * reused by oid. Renames are a delete plus an upsert (a directory rename upserts the old
 * subtree's oid with mode 40000, so nothing below it is read).
 */
import { MesaError } from "../errors.js";
import {
  EMPTY_TREE_OID,
  hashObject,
  isOid,
  type Oid,
  serializeTree,
  type TreeEntry,
  type TreeMode,
  validEntryName,
} from "./objects.js";
import type { GitObject } from "./pack.js";

export type TreeChange =
  /** Create or replace the entry at `path` (file, executable, symlink, submodule or whole subtree). */
  | { action: "upsert"; path: string; mode: TreeMode; oid: Oid }
  /** Remove the entry at `path` (file or whole directory); a missing path is a no-op. */
  | { action: "delete"; path: string };

export type TreeLoader = (oid: Oid) => Promise<TreeEntry[]> | TreeEntry[];

export interface BuiltTree {
  /** Oid of the new root tree. */
  root: Oid;
  /** Tree objects that did not exist in the base (to push); unchanged subtrees are not included. */
  newTrees: GitObject[];
}

interface DirNode {
  base?: Oid;
  entries: Map<string, { mode: TreeMode; oid: Oid }>;
  /** Subdirectories touched by a change; they replace the entry of the same name. */
  dirs: Map<string, DirNode>;
}

export function splitPath(path: string): string[] {
  const parts = path.split("/");
  if (parts.some((p) => !validEntryName(p))) {
    throw new MesaError("INVALID_ARGUMENT", `invalid repository path '${path}'`);
  }
  return parts;
}

async function load(oid: Oid | undefined, loadTree: TreeLoader): Promise<DirNode> {
  const node: DirNode = { base: oid, entries: new Map(), dirs: new Map() };
  if (oid !== undefined && oid !== EMPTY_TREE_OID) {
    for (const e of await loadTree(oid)) node.entries.set(e.name, { mode: e.mode, oid: e.oid });
  }
  return node;
}

/** Applies `changes` in order to `base` (null = empty tree). */
export async function buildTree(
  base: Oid | null,
  changes: TreeChange[],
  loadTree: TreeLoader,
): Promise<BuiltTree> {
  if (base !== null && !isOid(base)) throw new MesaError("INVALID_ARGUMENT", `invalid base tree '${base}'`);
  for (const c of changes) {
    splitPath(c.path);
    if (c.action === "upsert" && !isOid(c.oid))
      throw new MesaError("INVALID_ARGUMENT", `invalid oid for '${c.path}'`);
  }
  const root = await load(base ?? undefined, loadTree);
  for (const c of changes) {
    const parts = splitPath(c.path);
    const leaf = parts.pop()!;
    let dir: DirNode | undefined = root;
    for (const name of parts) {
      let next: DirNode | undefined = dir.dirs.get(name);
      if (!next) {
        const existing = dir.entries.get(name);
        if (existing?.mode === "40000") next = await load(existing.oid, loadTree);
        else if (c.action === "upsert")
          next = await load(undefined, loadTree); // a file becomes a directory
        else {
          next = undefined; // deleting below something that is not a directory: nothing to do
        }
        if (next) {
          dir.dirs.set(name, next);
          dir.entries.delete(name);
        }
      }
      dir = next;
      if (!dir) break;
    }
    if (!dir) continue;
    dir.dirs.delete(leaf);
    if (c.action === "delete") dir.entries.delete(leaf);
    else dir.entries.set(leaf, { mode: c.mode, oid: c.oid });
  }
  const newTrees: GitObject[] = [];
  // Identical directories in two places are one object: a pack must not hold it twice.
  const added = new Set<Oid>();
  const write = (node: DirNode): Oid | null => {
    for (const [name, child] of node.dirs) {
      const oid = write(child);
      if (oid !== null) node.entries.set(name, { mode: "40000", oid });
    }
    if (node.entries.size === 0) return null; // Git cannot store an empty directory
    const entries: TreeEntry[] = [...node.entries].map(([name, e]) => ({ name, mode: e.mode, oid: e.oid }));
    const data = serializeTree(entries);
    const oid = hashObject("tree", data);
    if (oid !== node.base && !added.has(oid)) {
      added.add(oid);
      newTrees.push({ type: "tree", data });
    }
    return oid;
  };
  const rootOid = write(root);
  if (rootOid === null) {
    if (base !== EMPTY_TREE_OID) newTrees.push({ type: "tree", data: Buffer.alloc(0) });
    return { root: EMPTY_TREE_OID, newTrees };
  }
  return { root: rootOid, newTrees };
}
