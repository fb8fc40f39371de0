/**
 * One writable repo's local overlay on disk (SPEC §9): the path states that differ from the
 * base snapshot, file contents in `content/<id>`, a checkpoint (`state-<gen>.json`) and an
 * append-only journal (`journal-<gen>.log`). Every metadata change is one journal line written
 * with a synchronous write(2) before the operation returns, and file data goes straight into
 * its content file with pwrite(2): once a call returns, the bytes are in the kernel, so a
 * `kill -9` of the daemon loses nothing (fsync adds power-loss safety). Replay = checkpoint +
 * journal. Design notes: docs/writing.md.
 */
import { randomBytes } from "node:crypto";
import { closeSync, fsyncSync, ftruncateSync, openSync, rmSync, writeSync } from "node:fs";
import { mkdir, open, readdir, readFile, rename, rm, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { hashBlobFile } from "../vcs/pack-file.js";
import { BaseLayer } from "./base-layer.js";
import {
  type Attrs,
  attrsOf,
  baseName,
  type Lookup,
  type Node,
  parentOf,
  type RepoView,
  type SpecialType,
} from "./node.js";
import { entryIndex, entryKind, type RepoSnapshot, type SnapshotEntry } from "./snapshot.js";

/** A path's state in the overlay; it hides whatever the base has at that path. */
export type OverlayEntry =
  /** A file: its bytes in content file `c`, or still the base blob `blob` (renamed, chmod-ed). */
  | ({ k: "f"; c?: string; blob?: string; perm: number; mtime: number } & Attrs)
  | ({ k: "l"; target: string; mtime: number } & Attrs)
  /**
   * A directory; `tree` is the base tree whose entries show through (absent = starts empty).
   * `inherit`: the lower layer's directory at this same path shows through (only metadata differs).
   */
  | ({ k: "d"; tree?: string; inherit?: boolean; perm: number; mtime: number } & Attrs)
  /** A fifo or unix socket: local only, never pushed. */
  | ({ k: "n"; t: SpecialType; perm: number; mtime: number } & Attrs)
  /** Deleted (whiteout). */
  | { k: "x" };

/** A metadata-only change (chmod, chown, utimens, a directory's entries changing). */
export type AttrChange = Attrs & { perm?: number; mtime?: number };

/** Entries that exist only on this machine whatever `.mesaignore` says (fifos, sockets). */
export function isLocalOnly(e: OverlayEntry): boolean {
  return e.k === "n";
}

export interface OverlayMeta {
  [key: string]: unknown;
}

interface Checkpoint {
  gen: number;
  meta: OverlayMeta;
  entries: Array<[string, OverlayEntry]>;
}

type JournalLine =
  | { op: "set"; p: string; e: OverlayEntry }
  | { op: "mv"; from: string; to: string }
  | { op: "meta"; m: OverlayMeta };

function under(rel: string, dir: string): boolean {
  return dir === "" ? rel !== "" : rel.startsWith(`${dir}/`);
}

export class RepoOverlay implements RepoView {
  private entries = new Map<string, OverlayEntry>();
  /** Overlay entries by parent directory, for listings and subtree moves. */
  private kids = new Map<string, Set<string>>();
  private sizes = new Map<string, number>();
  private oids = new Map<string, { seq: number; oid: string; size: number }>();
  private contentSeq = new Map<string, number>();
  private journalFd = -1;
  private gen = 0;
  /** Bumped by every change; the writer compares it with what it pushed. */
  seq = 0;
  /** Seq of the last change per path (rebase keeps paths changed while it computed). */
  private pathSeq = new Map<string, number>();
  meta: OverlayMeta = {};
  /** The committed layer below (it keeps the trees of earlier bases too). */
  readonly layer: BaseLayer;
  onChange?: () => void;
  /** After a rebase: the repo-relative paths whose view may have changed. */
  onRebased?: (paths: string[]) => void;

  private constructor(
    readonly dir: string,
    base: RepoSnapshot,
  ) {
    this.layer = new BaseLayer(base);
  }

  get base(): RepoSnapshot {
    return this.layer.base;
  }

  /** Opens (replaying checkpoint and journal) or creates the overlay in `dir`. */
  static async open(dir: string, base: RepoSnapshot): Promise<RepoOverlay> {
    const o = new RepoOverlay(dir, base);
    await mkdir(join(dir, "content"), { recursive: true });
    await o.replay();
    return o;
  }

  blobSize(oid: string): number | undefined {
    return this.layer.blobSize(oid);
  }

  contentPath(id: string): string {
    return join(this.dir, "content", id);
  }

  // ---- persistence --------------------------------------------------------------------

  private async replay(): Promise<void> {
    const names = await readdir(this.dir);
    const gens = names
      .map((n) => /^state-(\d+)\.json$/.exec(n)?.[1])
      .filter((g): g is string => g !== undefined)
      .map(Number)
      .sort((a, b) => b - a);
    if (gens.length > 0) {
      const cp = JSON.parse(await readFile(join(this.dir, `state-${gens[0]}.json`), "utf8")) as Checkpoint;
      this.gen = cp.gen;
      this.meta = cp.meta;
      for (const [p, e] of cp.entries) this.put(p, e);
      let text = "";
      try {
        text = await readFile(this.journalPath(), "utf8");
      } catch {
        // No journal yet for this generation.
      }
      const lines = text.split("\n");
      for (let i = 0; i < lines.length; i++) {
        if (lines[i] === "") continue;
        let line: JournalLine;
        try {
          line = JSON.parse(lines[i]) as JournalLine;
        } catch {
          // Only the last line can be torn (the process died inside write(2)); skip it.
          if (i >= lines.length - 2) break;
          throw new Error(`overlay journal ${this.journalPath()} is corrupt at line ${i + 1}`);
        }
        this.apply(line);
      }
      // File sizes live in the content files themselves.
      for (const e of this.entries.values()) {
        if (e.k === "f" && e.c !== undefined) {
          try {
            const s = await stat(this.contentPath(e.c));
            this.sizes.set(e.c, s.size);
            // Writes are not journaled one by one: the content file's mtime is the last one
            // (utimens sets it too), and a write after the last journaled change moves ctime.
            e.mtime = s.mtimeMs;
            e.ctime = Math.max(e.ctime ?? 0, s.mtimeMs);
          } catch {
            this.sizes.set(e.c, 0);
          }
        }
      }
      this.seq = this.entries.size > 0 ? 1 : 0;
      for (const p of this.entries.keys()) this.pathSeq.set(p, this.seq);
    }
    await this.checkpoint();
  }

  private journalPath(gen = this.gen): string {
    return join(this.dir, `journal-${gen}.log`);
  }

  /** Appends one journal line; a failed or short write (ENOSPC) leaves the journal as it was. */
  private append(line: JournalLine): void {
    const buf = Buffer.from(`${JSON.stringify(line)}\n`, "utf8");
    let n: number;
    try {
      n = writeSync(this.journalFd, buf);
    } catch (err) {
      ftruncateSync(this.journalFd, this.journalSize);
      throw err;
    }
    if (n !== buf.length) {
      ftruncateSync(this.journalFd, this.journalSize);
      throw Object.assign(new Error("no space left on the device for the overlay journal"), {
        code: "ENOSPC",
      });
    }
    this.journalSize += n;
  }

  private journalSize = 0;

  /** Writes the whole state as a new generation and starts an empty journal for it. */
  async checkpoint(): Promise<void> {
    const old = this.gen;
    const gen = old + 1;
    const cp: Checkpoint = { gen, meta: this.meta, entries: [...this.entries] };
    const tmp = join(this.dir, `state-${gen}.json.tmp`);
    const fh = await open(tmp, "w", 0o600);
    try {
      await fh.writeFile(JSON.stringify(cp));
      await fh.sync();
    } finally {
      await fh.close();
    }
    await writeFile(this.journalPath(gen), "", { mode: 0o600 });
    await rename(tmp, join(this.dir, `state-${gen}.json`));
    if (this.journalFd >= 0) closeSync(this.journalFd);
    this.gen = gen;
    this.journalFd = openSync(this.journalPath(), "a", 0o600);
    this.journalSize = 0;
    await rm(join(this.dir, `state-${old}.json`), { force: true });
    await rm(this.journalPath(old), { force: true });
    await this.collectContent();
  }

  /** Removes content files no entry refers to (left by unlinks, overwrites and rebases). */
  private async collectContent(): Promise<void> {
    const used = new Set<string>();
    for (const e of this.entries.values()) if (e.k === "f" && e.c) used.add(e.c);
    for (const id of this.pinned) used.add(id);
    // Content created since the last checkpoint may be about to get its entry.
    const young = this.young;
    this.young = new Set();
    for (const name of await readdir(join(this.dir, "content"))) {
      if (!used.has(name) && !young.has(name) && !this.young.has(name))
        await rm(this.contentPath(name), { force: true });
    }
  }

  private young = new Set<string>();

  /** Content files held open by file handles survive garbage collection. */
  readonly pinned = new Set<string>();

  /** Flushes the journal to stable storage (fsync). */
  syncJournal(): void {
    if (this.journalFd >= 0) fsyncSync(this.journalFd);
  }

  close(): void {
    if (this.journalFd >= 0) closeSync(this.journalFd);
    this.journalFd = -1;
  }

  setMeta(m: OverlayMeta): void {
    this.meta = m;
    this.append({ op: "meta", m });
  }

  private apply(line: JournalLine): void {
    if (line.op === "set") this.put(line.p, line.e);
    else if (line.op === "mv") this.move(line.from, line.to);
    else this.meta = line.m;
  }

  // ---- in-memory state ----------------------------------------------------------------

  private put(p: string, e: OverlayEntry, structural = true): void {
    const prev = this.entries.get(p);
    // A path that stops being a directory takes its overlay subtree with it.
    if (prev?.k === "d" && e.k !== "d") this.dropBelow(p);
    if (e.k === "f" && e.c !== undefined) this.refs.set(e.c, (this.refs.get(e.c) ?? 0) + 1);
    if (prev?.k === "f" && prev.c !== undefined) this.release(prev.c);
    this.entries.set(p, e);
    if (p !== "") {
      const parent = parentOf(p);
      let s = this.kids.get(parent);
      if (!s) {
        s = new Set();
        this.kids.set(parent, s);
      }
      s.add(baseName(p));
    }
    if (structural) this.pathSeq.set(p, this.seq);
  }

  private unput(p: string): void {
    const prev = this.entries.get(p);
    if (prev?.k === "f" && prev.c !== undefined) this.release(prev.c);
    this.entries.delete(p);
    this.pathSeq.delete(p);
    this.kids.get(parentOf(p))?.delete(baseName(p));
  }

  private dropBelow(dir: string): void {
    for (const name of [...(this.kids.get(dir) ?? [])]) {
      const child = dir === "" ? name : `${dir}/${name}`;
      this.dropBelow(child);
      this.unput(child);
    }
    this.kids.delete(dir);
  }

  /** Overlay paths at and below `dir`, parents first. */
  private subtree(dir: string): string[] {
    const out: string[] = [];
    const walk = (d: string) => {
      for (const name of this.kids.get(d) ?? []) {
        const child = d === "" ? name : `${d}/${name}`;
        out.push(child);
        walk(child);
      }
    };
    if (this.entries.has(dir)) out.push(dir);
    walk(dir);
    return out;
  }

  private move(from: string, to: string): void {
    const node = this.lookup(from);
    if (typeof node === "string") return;
    const moved = this.subtree(from)
      .filter((p) => p !== from)
      .map((p) => [p, this.entries.get(p) as OverlayEntry] as const);
    const top = this.entryFor(node);
    this.put(to, { k: "x" }); // clears whatever was below the destination
    this.put(to, top);
    // Re-add below the destination before dropping the source, so content stays referenced.
    for (const [p, e] of moved) this.put(`${to}${p.slice(from.length)}`, e);
    this.dropBelow(from);
    this.put(from, { k: "x" });
  }

  /** Entries referring to each content file; an unreferenced, unopened one is deleted at once. */
  private refs = new Map<string, number>();

  private release(id: string): void {
    const n = (this.refs.get(id) ?? 1) - 1;
    if (n > 0) {
      this.refs.set(id, n);
      return;
    }
    this.refs.delete(id);
    // Frees the space now (a full disk gets room back on rm); open handles keep it.
    if (!this.pinned.has(id)) this.dropContent(id);
  }

  /** Removed before the call returns: on a full disk the next write finds the space free. */
  private dropContent(id: string): void {
    try {
      rmSync(this.contentPath(id), { force: true });
    } catch {
      // Left for the next checkpoint's sweep of unreferenced content.
    }
  }

  pin(id: string): void {
    this.pinned.add(id);
  }

  /** The last handle on `id` closed. */
  unpin(id: string): void {
    this.pinned.delete(id);
    if (!this.refs.has(id)) this.dropContent(id);
  }

  /** The overlay entry that reproduces `node` (a base node becomes a reference to its blob/tree). */
  private entryFor(node: Node): OverlayEntry {
    switch (node.type) {
      case "dir":
        return { k: "d", tree: node.tree, perm: node.perm, mtime: node.mtime, ...attrsOf(node) };
      case "symlink":
        return { k: "l", target: node.target, mtime: node.mtime, ...attrsOf(node) };
      case "special":
        return { k: "n", t: node.t, perm: node.perm, mtime: node.mtime, ...attrsOf(node) };
      case "file":
        return {
          k: "f",
          c: node.content,
          blob: node.content ? undefined : node.blob,
          perm: node.perm,
          mtime: node.mtime,
          ...attrsOf(node),
        };
    }
  }

  private fromEntry(e: OverlayEntry): Node | undefined {
    switch (e.k) {
      case "x":
        return undefined;
      case "d":
        return { type: "dir", tree: e.tree, perm: e.perm, mtime: e.mtime, ...attrsOf(e) };
      case "l":
        return { type: "symlink", target: e.target, mtime: e.mtime, ...attrsOf(e) };
      case "n":
        return { type: "special", t: e.t, perm: e.perm, mtime: e.mtime, ...attrsOf(e) };
      case "f": {
        const size = e.c !== undefined ? (this.sizes.get(e.c) ?? 0) : (this.blobSize(e.blob ?? "") ?? 0);
        return {
          type: "file",
          perm: e.perm,
          size,
          mtime: e.mtime,
          content: e.c,
          blob: e.blob,
          ...attrsOf(e),
        };
      }
    }
  }

  /** The effective node at repo-relative `rel` ("" = the repo root). */
  lookup(rel: string): Lookup {
    const e = this.entries.get(rel);
    if (e?.k === "d" && e.inherit) {
      // Metadata from the entry, contents from whatever directory the lower layer has here.
      const lower = this.lower(rel);
      const tree = typeof lower !== "string" && lower.type === "dir" ? lower.tree : undefined;
      return { type: "dir", tree, perm: e.perm, mtime: e.mtime, ...attrsOf(e) };
    }
    if (e) return this.fromEntry(e) ?? "ENOENT";
    return this.lower(rel);
  }

  childOf(rel: string, dir: Node & { type: "dir" }, name: string): Lookup {
    const p = rel === "" ? name : `${rel}/${name}`;
    if (this.entries.has(p)) return this.lookup(p);
    return this.layer.child(dir.tree, name) ?? "ENOENT";
  }

  /** The node at `rel` as the layers below `rel`'s own entry give it. */
  private lower(rel: string): Lookup {
    if (rel === "") return this.layer.root();
    const parent = this.lookup(parentOf(rel));
    if (typeof parent === "string") return parent;
    if (parent.type !== "dir") return "ENOTDIR";
    return this.layer.child(parent.tree, baseName(rel)) ?? "ENOENT";
  }

  /** Names in directory `rel` (which must be a directory). */
  list(rel: string, dir: Node & { type: "dir" }): string[] {
    // Nothing changed in it: the committed names as they are.
    if (!this.kids.get(rel)?.size) return this.layer.names(dir.tree);
    const names = new Set<string>();
    for (const name of this.layer.names(dir.tree)) names.add(name);
    for (const n of this.kids.get(rel) ?? []) names.add(n);
    return [...names].filter((n) => typeof this.childOf(rel, dir, n) !== "string");
  }

  /** Subdirectories of directory `rel` (for its link count). */
  subdirCount(rel: string, dir: Node & { type: "dir" }): number {
    let n = dir.tree ? this.layer.treeSubdirs(dir.tree) : 0;
    const kids = this.kids.get(rel);
    if (!kids || kids.size === 0) return n;
    // The base's count, corrected for the names the overlay holds (cheap: no lookups).
    const base = dir.tree ? entryIndex(this.layer.tree(dir.tree) ?? []) : undefined;
    for (const name of kids) {
      const be = base?.get(name);
      const kind = be && entryKind(be.mode);
      const wasDir = kind === "dir" || kind === "submodule";
      const e = this.entries.get(rel === "" ? name : `${rel}/${name}`);
      const isDir = e === undefined ? wasDir : e.k === "d";
      n += (isDir ? 1 : 0) - (wasDir ? 1 : 0);
    }
    return n;
  }

  /** Does the overlay hold anything at all (i.e. would a persist have work to do)? */
  paths(): string[] {
    return [...this.entries.keys()].sort();
  }

  entry(p: string): OverlayEntry | undefined {
    return this.entries.get(p);
  }

  changedSince(p: string, seq: number): boolean {
    return (this.pathSeq.get(p) ?? 0) > seq;
  }

  // ---- mutations (each journaled before it returns) -----------------------------------

  private bump(): void {
    this.seq++;
    this.onChange?.();
  }

  set(p: string, e: OverlayEntry): void {
    this.seq++;
    this.append({ op: "set", p, e });
    this.put(p, e);
    this.onChange?.();
  }

  /**
   * Changes metadata only. A directory from the base becomes an `inherit` entry, and a
   * directory's metadata change does not count as a change of its contents for rebases.
   */
  setAttrs(p: string, change: AttrChange): void {
    const node = this.lookup(p);
    if (typeof node === "string") return;
    const prev = this.entries.get(p);
    // Times not changed here stay what they showed (absent ones followed mtime).
    const kept = { atime: node.atime ?? node.mtime, ctime: node.ctime ?? node.mtime };
    let next: OverlayEntry;
    if (prev && prev.k !== "x") next = { ...prev, ...kept, ...change } as OverlayEntry;
    else if (node.type === "dir")
      next = {
        k: "d",
        inherit: true,
        perm: node.perm,
        mtime: node.mtime,
        ...attrsOf(node),
        ...kept,
        ...change,
      };
    else next = { ...this.entryFor(node), ...kept, ...change } as OverlayEntry;
    if (next.k === "l") delete (next as { perm?: number }).perm;
    this.seq++;
    this.append({ op: "set", p, e: next });
    this.put(p, next, next.k !== "d");
    this.onChange?.();
  }

  rename(from: string, to: string): void {
    this.seq++;
    this.append({ op: "mv", from, to });
    this.move(from, to);
    this.onChange?.();
  }

  /** A new content file holding `data`; written before any entry points at it. */
  async newContent(data?: Buffer): Promise<string> {
    const id = randomBytes(10).toString("hex");
    this.young.add(id);
    await writeFile(this.contentPath(id), data ?? Buffer.alloc(0), { mode: 0o600 });
    this.sizes.set(id, data?.length ?? 0);
    return id;
  }

  /** Records that content `id` was written to / truncated; `size` is its new length. */
  contentChanged(p: string | undefined, id: string, size: number): void {
    this.sizes.set(id, size);
    this.contentSeq.set(id, (this.contentSeq.get(id) ?? 0) + 1);
    const e = p === undefined ? undefined : this.entries.get(p);
    if (e && e.k === "f" && e.c === id) {
      e.atime ??= e.mtime;
      e.mtime = Date.now();
      e.ctime = e.mtime;
      this.pathSeq.set(p as string, this.seq + 1);
    }
    this.bump();
  }

  size(id: string): number {
    return this.sizes.get(id) ?? 0;
  }

  /**
   * Git blob oid and size of a content file (cached until the content changes), hashed from
   * disk in chunks: a large file never sits in memory.
   */
  async contentOid(id: string): Promise<{ oid: string; size: number }> {
    const seq = this.contentSeq.get(id) ?? 0;
    const hit = this.oids.get(id);
    if (hit && hit.seq === seq) return { oid: hit.oid, size: hit.size };
    const { oid, size } = await hashBlobFile(this.contentPath(id));
    if ((this.contentSeq.get(id) ?? 0) === seq) this.oids.set(id, { seq, oid, size });
    return { oid, size };
  }

  /** Switches to a new base snapshot with exactly `entries` (a rebase or seal); checkpointed. */
  async rebase(base: RepoSnapshot, entries: Array<[string, OverlayEntry]>, meta: OverlayMeta): Promise<void> {
    // Paths the overlay showed before or shows after may look different now (rebased content,
    // conflict markers); what changed in the base itself is announced by whoever shows the base.
    const touched = new Set([...this.entries.keys(), ...entries.map(([p]) => p)]);
    this.layer.moveTo(base);
    this.entries = new Map();
    this.kids = new Map();
    this.pathSeq = new Map();
    this.refs = new Map();
    for (const [p, e] of entries.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))) this.put(p, e);
    this.meta = meta;
    this.seq++;
    await this.checkpoint();
    this.onRebased?.([...touched]);
  }

  /** Trees known to the overlay (for building a new tree from the base). */
  tree(oid: string): SnapshotEntry[] | undefined {
    return this.layer.tree(oid);
  }

  addTrees(trees: Map<string, SnapshotEntry[]>): void {
    this.layer.addTrees(trees);
  }

  isUnder(rel: string, dir: string): boolean {
    return under(rel, dir);
  }
}
