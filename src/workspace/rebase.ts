/**
 * What stays of the overlay when it moves onto another base (SPEC §9): onto someone else's
 * commit of the followed bookmark (a three-way rebase that keeps both sides of a conflict, with
 * markers from `conflict.ts`), onto the change just sealed, onto another bookmark, or onto a
 * checked-out change. Each function returns the entries for `RepoOverlay.rebase`; the writer
 * decides when to move and records the new base. Ignored paths always stay, and so do
 * local-only ones (fifos, sockets) except on a checkout.
 */
import { readFile } from "node:fs/promises";
import { hashObject, type Oid } from "../vcs/objects.js";
import { conflictMarkers, isText } from "./conflict.js";
import type { IgnoreMatcher } from "./mesaignore.js";
import { isLocalOnly, type OverlayEntry, type RepoOverlay } from "./overlay.js";
import { entryKind, type RepoSnapshot } from "./snapshot.js";

/** What a path is, as far as a rebase compares it: its kind and its object id. */
type State = { kind: string; oid: string } | undefined;

function stateAt(snap: RepoSnapshot, rel: string): State {
  let tree = snap.rootTree;
  const parts = rel.split("/");
  for (let i = 0; i < parts.length; i++) {
    const e = snap.trees.get(tree)?.find((x) => x.name === parts[i]);
    if (!e) return undefined;
    const kind = entryKind(e.mode);
    if (i === parts.length - 1) return { kind, oid: e.oid };
    if (kind !== "dir") return undefined;
    tree = e.oid;
  }
  return undefined;
}

/** Names in tree `a` of `snapA` that tree `b` of `snapB` has with the same mode and object. */
function unchangedNames(snapA: RepoSnapshot, a: string, snapB: RepoSnapshot, b: string): string[] {
  const after = new Map((snapB.trees.get(b) ?? []).map((e) => [e.name, e]));
  return (snapA.trees.get(a) ?? [])
    .filter((e) => {
      const x = after.get(e.name);
      return x !== undefined && x.oid === e.oid && entryKind(x.mode) === entryKind(e.mode);
    })
    .map((e) => e.name);
}

/**
 * A directory entry moved onto a new base: where the base has a directory at `p` its contents
 * show through and only the entry's metadata stays; elsewhere it stays a local (empty) directory.
 */
function directoryOn(snap: RepoSnapshot, p: string, e: OverlayEntry & { k: "d" }): OverlayEntry {
  const { tree: _tree, inherit: _inherit, ...rest } = e;
  return stateAt(snap, p)?.kind === "dir" ? { ...rest, inherit: true } : rest;
}

/**
 * What stays of a file entry once a new base has that path as a file with the same executable
 * bit: its mode bits and owner, and its times when the bytes are still `localOid`'s, as a
 * reference to the base's blob (which pushes nothing). Undefined when nothing is left to keep.
 */
function fileMetadataOn(
  snap: RepoSnapshot,
  p: string,
  e: OverlayEntry,
  localOid: string | undefined,
): OverlayEntry | undefined {
  const s = stateAt(snap, p);
  if (e.k !== "f" || (s?.kind !== "file" && s?.kind !== "exec")) return undefined;
  if ((s.kind === "exec") !== ((e.perm & 0o100) !== 0)) return undefined;
  const owner = { ...(e.uid !== undefined && { uid: e.uid }), ...(e.gid !== undefined && { gid: e.gid }) };
  const usual = e.perm === (s.kind === "exec" ? 0o755 : 0o644) && Object.keys(owner).length === 0;
  if (s.oid !== localOid) {
    if (usual) return undefined;
    return { k: "f", blob: s.oid, perm: e.perm, mtime: snap.commitTime.getTime(), ...owner };
  }
  const times = {
    ...(e.atime !== undefined && { atime: e.atime }),
    ...(e.ctime !== undefined && { ctime: e.ctime }),
  };
  return { k: "f", blob: s.oid, perm: e.perm, mtime: e.mtime, ...owner, ...times };
}

function same(a: State, b: State): boolean {
  return a === b || (a !== undefined && b !== undefined && a.kind === b.kind && a.oid === b.oid);
}

async function localState(overlay: RepoOverlay, e: OverlayEntry): Promise<State> {
  switch (e.k) {
    case "x":
    case "n":
      return undefined;
    case "d":
      return { kind: "dir", oid: e.tree ?? "" };
    case "l":
      return { kind: "symlink", oid: hashObject("blob", Buffer.from(e.target, "utf8")) };
    case "f": {
      const kind = (e.perm & 0o100) !== 0 ? "exec" : "file";
      const oid = e.c !== undefined ? (await overlay.contentOid(e.c)).oid : (e.blob as string);
      return { kind, oid };
    }
  }
}

async function localBytes(
  overlay: RepoOverlay,
  blob: (oid: Oid) => Promise<Buffer>,
  e: OverlayEntry,
): Promise<Buffer> {
  if (e.k !== "f") return Buffer.alloc(0);
  if (e.c === undefined) return blob(e.blob as string);
  return readFile(overlay.contentPath(e.c));
}

/** Whether an entry stays whatever the new base is: ignored by `.mesaignore`, or local-only. */
function alwaysKept(ignored: IgnoreMatcher, p: string, e: OverlayEntry): boolean {
  return ignored(p, e.k === "d") || isLocalOnly(e);
}

/**
 * Onto `next`, someone else's commit, from `last`, the ref value the overlay's edits were made
 * against: paths unchanged locally since `last` take the server's version, paths changed only
 * locally stay, paths changed on both sides get conflict markers (a binary file keeps ours at
 * the path and theirs beside it). Writes that land while this runs are kept as they are.
 * `next`'s trees must already be known to the overlay.
 */
export async function entriesOntoCommit(
  overlay: RepoOverlay,
  ignored: IgnoreMatcher,
  last: RepoSnapshot,
  next: RepoSnapshot,
  blob: (oid: Oid) => Promise<Buffer>,
): Promise<{ keep: Map<string, OverlayEntry>; conflicts: string[] }> {
  const seq = overlay.seq;
  const keep = new Map<string, OverlayEntry>();
  const conflicts: string[] = [];
  for (const p of overlay.paths()) {
    const e = overlay.entry(p);
    if (!e || p === "") continue;
    if (alwaysKept(ignored, p, e)) {
      keep.set(p, e);
      continue;
    }
    const sb = stateAt(last, p);
    const sr = stateAt(next, p);
    if (e.k === "d") {
      // Directories are containers: the new base's directory shows through (with our
      // metadata); ours stays only where the new base has none and it was ours.
      if (sr?.kind === "dir") {
        keep.set(p, directoryOn(next, p, e));
        // Made again here after the old one was removed: what the old one held stays
        // deleted unless the new base changed it.
        if (sb?.kind === "dir" && !e.inherit && e.tree === undefined)
          for (const name of unchangedNames(last, sb.oid, next, sr.oid))
            if (!overlay.entry(`${p}/${name}`)) keep.set(`${p}/${name}`, { k: "x" });
      } else if (sb?.kind !== "dir" && !e.inherit) keep.set(p, e);
      continue;
    }
    const sl = await localState(overlay, e);
    if (same(sl, sb) || same(sl, sr)) {
      // The server's version wins (or is ours already); local mode bits and owner stay.
      const m = fileMetadataOn(next, p, e, sl?.oid);
      if (m) keep.set(p, m);
      continue;
    }
    if (same(sr, sb)) {
      keep.set(p, e);
      continue;
    }
    conflicts.push(p);
    if (e.k === "f" && sr && (sr.kind === "file" || sr.kind === "exec")) {
      const [bBytes, lBytes, rBytes] = await Promise.all([
        sb && (sb.kind === "file" || sb.kind === "exec") ? blob(sb.oid) : Buffer.alloc(0),
        localBytes(overlay, blob, e),
        blob(sr.oid),
      ]);
      if (isText(lBytes) && isText(rBytes) && isText(bBytes)) {
        const id = await overlay.newContent(conflictMarkers(bBytes, lBytes, rBytes));
        keep.set(p, { k: "f", c: id, perm: e.perm, mtime: Date.now() });
      } else {
        // Binary: ours stays at the path, theirs beside it.
        keep.set(p, e);
        const id = await overlay.newContent(rBytes);
        keep.set(`${p}.mesa-conflict-theirs`, { k: "f", c: id, perm: e.perm, mtime: Date.now() });
      }
    } else keep.set(p, e);
  }
  // Writes that landed while this ran are kept as they are now.
  for (const p of overlay.paths())
    if (overlay.changedSince(p, seq)) keep.set(p, overlay.entry(p) as OverlayEntry);
  // Every kept path needs directories above it in the new base.
  for (const p of [...keep.keys()]) {
    const parts = p.split("/");
    for (let i = 1; i < parts.length; i++) {
      const a = parts.slice(0, i).join("/");
      const k = keep.get(a);
      if (k?.k === "d") continue;
      if (!k && stateAt(next, a)?.kind === "dir") continue;
      keep.set(a, { k: "d", perm: 0o755, mtime: Date.now() });
    }
  }
  return { keep, conflicts };
}

/**
 * Onto `sealed`, the commit of the change just sealed: what it pushed is in that commit now,
 * so only local metadata stays of it; paths written since `pushedSeq` stay as they are.
 */
export function entriesAfterSeal(
  overlay: RepoOverlay,
  ignored: IgnoreMatcher,
  sealed: RepoSnapshot,
  pushedSeq: number,
): Array<[string, OverlayEntry]> {
  const keep: Array<[string, OverlayEntry]> = [];
  for (const p of overlay.paths()) {
    const e = overlay.entry(p) as OverlayEntry;
    if (p === "") continue;
    if (alwaysKept(ignored, p, e) || overlay.changedSince(p, pushedSeq)) keep.push([p, e]);
    else if (e.k === "d") keep.push([p, directoryOn(sealed, p, e)]);
    else {
      // Pushed as it is: the sealed commit has these bytes; the local metadata stays.
      const m = fileMetadataOn(sealed, p, e, stateAt(sealed, p)?.oid);
      if (m) keep.push([p, m]);
    }
  }
  return keep;
}

/**
 * Onto the head of another bookmark, once the work for the old one is pushed: only what is
 * always kept and the metadata of directories stay.
 */
export function entriesOntoBookmark(
  overlay: RepoOverlay,
  ignored: IgnoreMatcher,
  head: RepoSnapshot,
): Array<[string, OverlayEntry]> {
  const keep: Array<[string, OverlayEntry]> = [];
  for (const p of overlay.paths()) {
    const e = overlay.entry(p) as OverlayEntry;
    if (p === "") continue;
    if (alwaysKept(ignored, p, e)) keep.push([p, e]);
    else if (e.k === "d") keep.push([p, directoryOn(head, p, e)]);
  }
  return keep;
}

/** Onto a checked-out change, once pending work is pushed: only ignored paths stay. */
export function entriesOntoCheckout(
  overlay: RepoOverlay,
  ignored: IgnoreMatcher,
): Array<[string, OverlayEntry]> {
  const keep: Array<[string, OverlayEntry]> = [];
  for (const p of overlay.paths()) {
    const e = overlay.entry(p) as OverlayEntry;
    if (p !== "" && ignored(p, e.k === "d")) keep.push([p, e]);
  }
  return keep;
}
