/**
 * What changed between two root trees of one repo, as absolute mount paths: for the change
 * feeds (kernel cache invalidation, SDK subscribers).
 */
import type { Change } from "./fs-api.js";
import { entryKind, type SnapshotEntry } from "./snapshot.js";

/**
 * Changed entries between trees `before` and `after` below `prefix` ("/org/repo"). A directory
 * whose entries were added or removed is listed too; a directory that appeared, vanished or
 * cannot be compared (a tree not known locally) is one recursive change.
 */
export function changedPaths(
  prefix: string,
  before: string,
  after: string,
  tree: (oid: string) => SnapshotEntry[] | undefined,
): Change[] {
  const out: Change[] = [];
  const walk = (a: string, b: string, path: string) => {
    if (a === b) return;
    const ea = tree(a);
    const eb = tree(b);
    if (!ea || !eb) {
      out.push({ path, recursive: true });
      return;
    }
    const byName = new Map(ea.map((e) => [e.name, e]));
    const names = new Set([...byName.keys(), ...eb.map((e) => e.name)]);
    const inB = new Map(eb.map((e) => [e.name, e]));
    let listing = false;
    for (const name of names) {
      const x = byName.get(name);
      const y = inB.get(name);
      const kx = x && entryKind(x.mode);
      const ky = y && entryKind(y.mode);
      if (x && y && x.oid === y.oid && kx === ky) continue;
      const p = `${path}/${name}`;
      if (!x || !y) listing = true;
      if (kx === "dir" && ky === "dir") walk((x as SnapshotEntry).oid, (y as SnapshotEntry).oid, p);
      else out.push({ path: p, recursive: kx === "dir" || ky === "dir" });
    }
    if (listing) out.push({ path, recursive: false });
  };
  walk(before, after, prefix);
  return out;
}
