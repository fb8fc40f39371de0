/**
 * The read-only filesystem over immutable repo snapshots: `/` lists orgs, `/<org>` lists
 * repos, `/<org>/<repo>/…` resolves through the snapshot's trees. Metadata is answered from
 * memory only; content goes through a `ContentProvider` (the cache layer in the daemon).
 */
import {
  type Change,
  type ChangeListener,
  type DirEntry,
  type FileSystem,
  FsError,
  S_IFDIR,
  S_IFLNK,
  S_IFREG,
  type Stat,
  type StatFs,
  wantsWrite,
} from "../workspace/fs-api.js";
import {
  type EntryKind,
  entryIndex,
  entryKind,
  type RepoSnapshot,
  type SnapshotEntry,
} from "../workspace/snapshot.js";
import { changedPaths } from "../workspace/snapshot-diff.js";

export interface PrefetchFile {
  oid: string;
  size: number;
  path: string;
  /** 1 = a direct child of the listed directory. */
  depth: number;
}

/** Where file content comes from; the daemon backs it with the blob cache. */
export interface ContentProvider {
  /** `length` bytes at `offset` of a blob (fewer at its end). */
  read(snap: RepoSnapshot, oid: string, offset: number, length: number): Promise<Buffer>;
  pin(oid: string): void;
  unpin(oid: string): void;
  /** A directory was listed: its files may be fetched in the background. */
  onDirectoryListed?(snap: RepoSnapshot, files: PrefetchFile[]): void;
  /** A snapshot is mounted (or replaced): its content may be fetched in the background. */
  onSnapshotReady?(snap: RepoSnapshot): void;
  /**
   * Sizes of blobs the snapshot lacks (a Git server without object-info): one call per
   * directory, which may fetch their content. Without it, missing sizes are EIO.
   */
  sizes?(snap: RepoSnapshot, oids: string[]): Promise<Map<string, number>>;
}

export interface CoreOptions {
  uid: number;
  gid: number;
  /** Bounded wait for content; past it a read fails with EIO. */
  readTimeoutMs: number;
  /** Depth of prefetch below a listed directory: null = whole subtree, 0 = off. */
  prefetchDepth: number | null;
  log?: {
    warn(obj: object, msg: string): void;
    info(obj: object, msg: string): void;
  };
}

export interface CoreCounters {
  getattr: number;
  readdir: number;
  open: number;
  read: number;
  readBytes: number;
  readErrors: number;
  erofs: number;
}

type Resolved =
  | { kind: "root" }
  | { kind: "org"; org: string }
  | { kind: "tree"; snap: RepoSnapshot; tree: string; path: string }
  | { kind: "blob"; snap: RepoSnapshot; entry: SnapshotEntry; entryKind: EntryKind; tree: string };

interface Handle {
  snap: RepoSnapshot;
  oid: string;
  size: number;
}

const DIR_MODE = 0o40755;

export class SnapshotFileSystem implements FileSystem {
  private readonly orgs = new Map<string, Map<string, RepoSnapshot>>();
  private readonly prefetched = new WeakMap<RepoSnapshot, Set<string>>();
  /** Size loads in progress, per snapshot sizes map and directory tree. */
  private readonly sizeLoads = new WeakMap<Map<string, number>, Map<string, Promise<void>>>();
  private readonly handles = new Map<number, Handle>();
  private readonly listeners = new Set<ChangeListener>();
  private nextHandle = 1;
  private readonly started = new Date();
  private contentFailing = false;
  readonly counters: CoreCounters = {
    getattr: 0,
    readdir: 0,
    open: 0,
    read: 0,
    readBytes: 0,
    readErrors: 0,
    erofs: 0,
  };

  constructor(
    private readonly content: ContentProvider,
    private readonly opts: CoreOptions,
  ) {}

  /** Orgs shown at the root even before (or without) any repo loaded. */
  setOrgs(orgs: string[]): void {
    const added = orgs.filter((o) => !this.orgs.has(o));
    for (const o of added) this.orgs.set(o, new Map());
    this.emitChanges(added.map((o) => ({ path: `/${o}`, recursive: true })));
  }

  /** Shows `snap` for its repo; what differs from the snapshot shown before is announced. */
  setRepo(snap: RepoSnapshot): void {
    let repos = this.orgs.get(snap.org);
    if (!repos) {
      repos = new Map();
      this.orgs.set(snap.org, repos);
    }
    const before = repos.get(snap.repo);
    repos.set(snap.repo, snap);
    const root = `/${snap.org}/${snap.repo}`;
    if (!before) this.emitChanges([{ path: root, recursive: true }]);
    else if (before.rootTree !== snap.rootTree)
      this.emitChanges(
        changedPaths(
          root,
          before.rootTree,
          snap.rootTree,
          (oid) => snap.trees.get(oid) ?? before.trees.get(oid),
        ),
      );
    this.content.onSnapshotReady?.(snap);
  }

  /**
   * The size of blob `oid` of `snap`, loading the sizes of every file of directory `tree` in
   * one call when the snapshot lacks it (a server without object-info).
   */
  async sizeOf(snap: RepoSnapshot, oid: string, tree?: string): Promise<number> {
    const known = snap.sizes.get(oid);
    if (known !== undefined) return known;
    if (!this.content.sizes) throw new FsError("EIO", `size of ${oid} missing from snapshot`);
    let loads = this.sizeLoads.get(snap.sizes);
    if (!loads) {
      loads = new Map();
      this.sizeLoads.set(snap.sizes, loads);
    }
    const key = tree ?? oid;
    let p = loads.get(key);
    if (!p) {
      const oids = new Set<string>([oid]);
      for (const e of tree ? (snap.trees.get(tree) ?? []) : []) {
        const k = entryKind(e.mode);
        if ((k === "file" || k === "exec") && !snap.sizes.has(e.oid)) oids.add(e.oid);
      }
      const all = loads;
      p = this.content
        .sizes(snap, [...oids])
        .then((got) => {
          for (const [o, n] of got) snap.sizes.set(o, n);
        })
        .finally(() => all.delete(key));
      loads.set(key, p);
    }
    try {
      await p;
    } catch (err) {
      this.counters.readErrors++;
      throw new FsError("EIO", `size of ${oid}: ${(err as Error).message}`);
    }
    const size = snap.sizes.get(oid);
    if (size === undefined) throw new FsError("EIO", `size of ${oid} missing from snapshot`);
    return size;
  }

  removeRepo(org: string, repo: string): boolean {
    const removed = this.orgs.get(org)?.delete(repo) ?? false;
    if (removed) this.emitChanges([{ path: `/${org}/${repo}`, recursive: true }]);
    return removed;
  }

  onChange(listener: ChangeListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Tells subscribers (the kernel's caches, SDK subscribers) about changes made by others. */
  emitChanges(changes: Change[]): void {
    if (changes.length === 0) return;
    for (const l of this.listeners) l(changes);
  }

  repos(): RepoSnapshot[] {
    return [...this.orgs.values()].flatMap((m) => [...m.values()]);
  }

  openHandles(): number {
    return this.handles.size;
  }

  private resolve(path: string): Resolved {
    if (path === "/" || path === "") return { kind: "root" };
    const parts = path.split("/").filter((p) => p.length > 0);
    const repos = this.orgs.get(parts[0]);
    if (!repos) throw new FsError("ENOENT");
    if (parts.length === 1) return { kind: "org", org: parts[0] };
    const snap = repos.get(parts[1]);
    if (!snap) throw new FsError("ENOENT");
    let tree = snap.rootTree;
    for (let i = 2; i < parts.length; i++) {
      const entries = snap.trees.get(tree);
      if (!entries) throw new FsError("EIO", `tree ${tree} missing from snapshot`);
      const entry = entryIndex(entries).get(parts[i]);
      if (!entry) throw new FsError("ENOENT");
      const kind = entryKind(entry.mode);
      if (kind === "dir") {
        tree = entry.oid;
        continue;
      }
      if (kind === "submodule") {
        if (i !== parts.length - 1) throw new FsError("ENOENT");
        return { kind: "tree", snap, tree: "", path: parts.slice(2, i + 1).join("/") };
      }
      if (i !== parts.length - 1) throw new FsError("ENOTDIR");
      return { kind: "blob", snap, entry, entryKind: kind, tree };
    }
    return { kind: "tree", snap, tree, path: parts.slice(2).join("/") };
  }

  private dirStat(mtime: Date): Stat {
    return { mode: DIR_MODE, size: 4096, uid: this.opts.uid, gid: this.opts.gid, mtime, nlink: 2 };
  }

  async getattr(path: string): Promise<Stat> {
    this.counters.getattr++;
    const r = this.resolve(path);
    switch (r.kind) {
      case "root":
      case "org":
        return this.dirStat(this.started);
      case "tree":
        return this.dirStat(r.snap.commitTime);
      case "blob":
        if (r.entryKind !== "symlink") await this.sizeOf(r.snap, r.entry.oid, r.tree);
        return this.blobStat(r.snap, r.entry, r.entryKind);
    }
  }

  /** Attributes of a file or symlink whose size is known. */
  private blobStat(snap: RepoSnapshot, entry: SnapshotEntry, kind: EntryKind): Stat {
    const base = { uid: this.opts.uid, gid: this.opts.gid, mtime: snap.commitTime, nlink: 1 };
    if (kind === "symlink") {
      const target = snap.symlinks.get(entry.oid);
      const size = target === undefined ? (snap.sizes.get(entry.oid) ?? 0) : Buffer.byteLength(target);
      return { ...base, mode: 0o120777, size };
    }
    const size = snap.sizes.get(entry.oid);
    if (size === undefined) throw new FsError("EIO", `size of ${entry.oid} missing from snapshot`);
    return { ...base, mode: kind === "exec" ? 0o100755 : 0o100644, size, committed: true };
  }

  async readdir(path: string): Promise<string[]> {
    this.counters.readdir++;
    const r = this.resolve(path);
    switch (r.kind) {
      case "root":
        return [...this.orgs.keys()];
      case "org":
        return [...(this.orgs.get(r.org)?.keys() ?? [])];
      case "blob":
        throw new FsError("ENOTDIR");
      case "tree": {
        if (r.tree === "") return [];
        const entries = r.snap.trees.get(r.tree);
        if (!entries) throw new FsError("EIO", `tree ${r.tree} missing from snapshot`);
        this.prefetch(r.snap, r.tree, r.path);
        return entries.map((e) => e.name);
      }
    }
  }

  async readdirEntries(path: string): Promise<DirEntry[]> {
    const names = await this.readdir(path);
    const r = this.resolve(path);
    if (r.kind !== "tree") {
      const stat = this.dirStat(this.started);
      return names.map((name) => ({ name, mode: S_IFDIR, stat }));
    }
    const out: DirEntry[] = [];
    for (const e of r.tree === "" ? [] : (r.snap.trees.get(r.tree) ?? [])) {
      const kind = entryKind(e.mode);
      if (kind === "dir" || kind === "submodule") {
        out.push({ name: e.name, mode: S_IFDIR, stat: this.dirStat(r.snap.commitTime) });
        continue;
      }
      const mode = kind === "symlink" ? S_IFLNK : S_IFREG;
      const known = r.snap.sizes.has(e.oid) || (kind === "symlink" && r.snap.symlinks.has(e.oid));
      out.push(known ? { name: e.name, mode, stat: this.blobStat(r.snap, e, kind) } : { name: e.name, mode });
    }
    return out;
  }

  /** Hands the files below a listed directory to the prefetcher, each subtree once. */
  private prefetch(snap: RepoSnapshot, tree: string, dirPath: string): void {
    const depth = this.opts.prefetchDepth;
    if (!this.content.onDirectoryListed || depth === 0) return;
    let done = this.prefetched.get(snap);
    if (!done) {
      done = new Set();
      this.prefetched.set(snap, done);
    }
    const key = depth === null ? tree : `${tree}:${depth}`;
    if (done.has(key)) return;
    const files: PrefetchFile[] = [];
    const stack: Array<{ tree: string; path: string; level: number }> = [{ tree, path: dirPath, level: 1 }];
    while (stack.length > 0) {
      const cur = stack.pop() as { tree: string; path: string; level: number };
      if (depth === null) {
        if (cur.tree !== tree && done.has(cur.tree)) continue;
        done.add(cur.tree);
      }
      for (const e of snap.trees.get(cur.tree) ?? []) {
        const kind = entryKind(e.mode);
        const p = cur.path ? `${cur.path}/${e.name}` : e.name;
        if (kind === "file" || kind === "exec")
          files.push({ oid: e.oid, size: snap.sizes.get(e.oid) ?? 0, path: p, depth: cur.level });
        else if (kind === "dir" && (depth === null || cur.level < depth))
          stack.push({ tree: e.oid, path: p, level: cur.level + 1 });
      }
    }
    done.add(key);
    if (files.length > 0) this.content.onDirectoryListed(snap, files);
  }

  async readlink(path: string): Promise<string> {
    const r = this.resolve(path);
    if (r.kind !== "blob" || r.entryKind !== "symlink") throw new FsError("EINVAL");
    const target = r.snap.symlinks.get(r.entry.oid);
    if (target === undefined) throw new FsError("EIO", `symlink target ${r.entry.oid} missing from snapshot`);
    return target;
  }

  async open(path: string, flags: number): Promise<number> {
    this.counters.open++;
    const r = this.resolve(path);
    if (r.kind !== "blob") throw new FsError("EISDIR");
    if (wantsWrite(flags)) {
      this.counters.erofs++;
      throw new FsError("EROFS");
    }
    const size = await this.sizeOf(r.snap, r.entry.oid, r.tree);
    const fh = this.nextHandle++;
    if (this.nextHandle > 0xffff_fff0) this.nextHandle = 1;
    this.handles.set(fh, { snap: r.snap, oid: r.entry.oid, size });
    this.content.pin(r.entry.oid);
    return fh;
  }

  async read(_path: string, fh: number, length: number, position: number): Promise<Buffer> {
    this.counters.read++;
    const h = this.handles.get(fh);
    if (!h) throw new FsError("EBADF");
    if (position >= h.size || length === 0) return Buffer.alloc(0);
    const out = await this.fetch(h, position, Math.min(length, h.size - position));
    this.counters.readBytes += out.length;
    return out;
  }

  private async fetch(h: Handle, offset: number, length: number): Promise<Buffer> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`no content after ${this.opts.readTimeoutMs} ms`)),
        this.opts.readTimeoutMs,
      );
    });
    try {
      const data = await Promise.race([this.content.read(h.snap, h.oid, offset, length), timeout]);
      if (this.contentFailing) {
        this.contentFailing = false;
        this.opts.log?.info({ oid: h.oid }, "content reads work again");
      }
      return data;
    } catch (err) {
      this.counters.readErrors++;
      // Log the first failure of an outage, not every read of it.
      if (!this.contentFailing) {
        this.contentFailing = true;
        this.opts.log?.warn(
          { org: h.snap.org, repo: h.snap.repo, oid: h.oid, err: (err as Error).message },
          "reading file content failed; reads of uncached files return EIO until the server answers",
        );
      }
      throw new FsError("EIO", (err as Error).message);
    } finally {
      clearTimeout(timer);
    }
  }

  async release(_path: string, fh: number): Promise<void> {
    const h = this.handles.get(fh);
    if (!h) return;
    this.handles.delete(fh);
    this.content.unpin(h.oid);
  }

  async statfs(_path: string): Promise<StatFs> {
    let bytes = 0;
    let files = 0;
    for (const snap of this.repos()) {
      files += snap.sizes.size;
      for (const s of snap.sizes.values()) bytes += s;
    }
    return {
      bsize: 4096,
      blocks: Math.ceil(bytes / 4096),
      bfree: 0,
      bavail: 0,
      files,
      ffree: 0,
      namemax: 255,
    };
  }

  async mutate(_op: string, path: string): Promise<never> {
    this.counters.erofs++;
    // Resolve first so a write below a missing path reports ENOENT like a real filesystem.
    if (path !== "/" && _op !== "create" && _op !== "mkdir" && _op !== "symlink") this.resolve(path);
    throw new FsError("EROFS");
  }
}
