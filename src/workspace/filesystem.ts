/**
 * The one filesystem over every mounted repo, served by both faces (the FUSE adapter and the
 * SDK): `/` lists orgs, `/<org>` lists repos, and `/<org>/<repo>/…` is answered by that repo's
 * view — its committed snapshot alone (read-only) or its overlay on top (writable). One handle
 * table covers every open file. Metadata comes from memory; committed content through
 * `CommittedContent`; POSIX write operations live in `write-ops.ts`, persisting in the writer.
 */
import { type FileHandle, open, statfs } from "node:fs/promises";
import { BaseLayer } from "./base-layer.js";
import { CommittedContent, type ContentOptions, type ContentProvider } from "./content.js";
import {
  type BlobLocation,
  type Change,
  type ChangeListener,
  type DirEntry,
  type ErrnoName,
  type FileSystem,
  FsError,
  S_IFDIR,
  S_IFLNK,
  S_IFMT,
  S_IFREG,
  type Stat,
  type StatFs,
  type WriteOps,
  wantsWrite,
} from "./fs-api.js";
import { type Node, parentOf, type RepoView } from "./node.js";
import type { RepoOverlay } from "./overlay.js";
import type { RepoSnapshot } from "./snapshot.js";
import { changedPaths } from "./snapshot-diff.js";
import { makeWriteOps, prepareWrite } from "./write-ops.js";

const NAME_MAX = 255;
const S_IFIFO = 0o010000;
const S_IFSOCK = 0o140000;
const DIR_MODE = S_IFDIR | 0o755;

/** Node/libuv error codes that map one-to-one onto errnos the caller should see. */
const PASS_THROUGH = new Set<ErrnoName>(["ENOSPC", "EDQUOT", "EIO", "ENOENT"]);

export function fsErrorOf(err: unknown): FsError {
  if (err instanceof FsError) return err;
  const code = (err as NodeJS.ErrnoException).code as ErrnoName | undefined;
  return new FsError(code && PASS_THROUGH.has(code) ? code : "EIO", (err as Error).message);
}

/** ENAMETOOLONG for a name over 255 bytes, as Linux filesystems give it for any call. */
function checkNames(rel: string): void {
  for (const part of rel.split("/"))
    if (Buffer.byteLength(part) > NAME_MAX) throw new FsError("ENAMETOOLONG");
}

/** A writable repo's local layer and a way to wait until the server has everything (fsync). */
export interface RepoWriterLink {
  overlay: RepoOverlay;
  persistNow(): Promise<void>;
}

interface MountedRepo {
  key: string;
  /** What was asked for ("bookmark:main", "change-id:…"), kept when the base moves. */
  revision: string;
  view: RepoView;
  /** Present while the repo is writable. */
  writer?: RepoWriterLink;
  /** The committed root tree the kernel and subscribers were last told about. */
  shownRoot: string;
}

/** A path inside a mounted repo. */
export interface Located {
  repo: MountedRepo;
  rel: string;
}

/** A path inside a writable repo. */
export type WritableLocated = Located & { writer: RepoWriterLink };

/** `orphan`: the attributes of a file unlinked while this handle is open (fstat still works). */
export type Handle =
  | { kind: "base"; key: string; snap: RepoSnapshot; oid: string; size: number; rel: string; orphan?: Stat }
  | {
      kind: "overlay";
      key: string;
      writer: RepoWriterLink;
      id: string;
      file: FileHandle;
      rel: string;
      orphan?: Stat;
    };

export interface FileSystemCounters {
  getattr: number;
  readdir: number;
  /** Listings made ahead of a reader (see `readdirEntries`' `ahead`), and those a reader used. */
  listedAhead: number;
  aheadUsed: number;
  open: number;
  read: number;
  /** Reads that reached JavaScript only to be handed back to the face's local-file reader. */
  readsHandedBack: number;
  readBytes: number;
  readErrors: number;
  erofs: number;
}

export interface WorkspaceOptions extends Omit<ContentOptions, "onError"> {
  uid: number;
  gid: number;
  /** Where writes land: its free space is what statfs reports. */
  dataDir?: string;
}

export class WorkspaceFileSystem implements FileSystem {
  private readonly orgs = new Map<string, Map<string, MountedRepo>>();
  readonly handles = new Map<number, Handle>();
  private nextFh = 1;
  private readonly listeners = new Set<ChangeListener>();
  private readonly started = new Date();
  readonly content: CommittedContent;
  readonly writes: WriteOps;
  readonly counters: FileSystemCounters = {
    getattr: 0,
    readdir: 0,
    listedAhead: 0,
    aheadUsed: 0,
    open: 0,
    read: 0,
    readsHandedBack: 0,
    readBytes: 0,
    readErrors: 0,
    erofs: 0,
  };

  constructor(
    provider: ContentProvider,
    readonly opts: WorkspaceOptions,
  ) {
    this.content = new CommittedContent(provider, { ...opts, onError: () => this.counters.readErrors++ });
    // Any failure of the local disk (ENOSPC from the journal or a content file) reaches the
    // writer as its errno; the in-memory state changes only after the journal line is written.
    const ops = makeWriteOps(this);
    this.writes = Object.fromEntries(
      Object.entries(ops).map(([name, fn]) => [
        name,
        (...args: unknown[]) =>
          (fn as (...a: unknown[]) => Promise<unknown>)(...args).catch((err: unknown) => {
            throw fsErrorOf(err);
          }),
      ]),
    ) as unknown as WriteOps;
  }

  // ---- what is mounted ------------------------------------------------------------------

  /** Orgs shown at the root even before (or without) any repo loaded. */
  setOrgs(orgs: string[]): void {
    const added = orgs.filter((o) => !this.orgs.has(o));
    for (const o of added) this.orgs.set(o, new Map());
    this.emitChanges(added.map((o) => ({ path: `/${o}`, recursive: true })));
  }

  /**
   * Shows `snap` read-only for its repo, or moves a read-only repo to it; what differs from
   * what was shown before is announced. A writable repo follows its own base (`baseMoved`).
   */
  setRepo(snap: RepoSnapshot): void {
    let repos = this.orgs.get(snap.org);
    if (!repos) {
      repos = new Map();
      this.orgs.set(snap.org, repos);
    }
    const key = `${snap.org}/${snap.repo}`;
    const before = repos.get(snap.repo);
    if (before?.writer) return;
    if (before) {
      (before.view as BaseLayer).moveTo(snap);
      before.revision = snap.revision;
      this.announceBase(before);
    } else {
      repos.set(snap.repo, {
        key,
        revision: snap.revision,
        view: new BaseLayer(snap),
        shownRoot: snap.rootTree,
      });
      this.emitChanges([{ path: `/${key}`, recursive: true }]);
    }
    this.content.ready(snap);
  }

  /** Makes a shown repo writable: from now on its overlay answers every path. */
  attach(org: string, repo: string, writer: RepoWriterLink): void {
    const m = this.mounted(org, repo);
    if (!m) throw new Error(`${org}/${repo} is not shown`);
    m.view = writer.overlay;
    m.writer = writer;
    writer.overlay.onRebased = (paths) =>
      this.emitChanges(paths.map((p) => ({ path: p ? `/${m.key}/${p}` : `/${m.key}`, recursive: p === "" })));
    this.baseMoved(org, repo);
  }

  /** A writable repo's base changed (a poll, rebase, seal or checkout): announce what differs. */
  baseMoved(org: string, repo: string): void {
    const m = this.mounted(org, repo);
    if (!m?.writer) return;
    if (m.shownRoot !== m.view.base.rootTree) {
      this.announceBase(m);
      this.content.ready(m.view.base);
    }
  }

  /** The repo stops being writable and shows its current base; returns its writer link. */
  detach(org: string, repo: string): RepoWriterLink | undefined {
    const m = this.mounted(org, repo);
    const writer = m?.writer;
    if (!m || !writer) return undefined;
    writer.overlay.onRebased = undefined;
    const paths = writer.overlay.paths();
    m.view = new BaseLayer(writer.overlay.base);
    m.writer = undefined;
    this.emitChanges(paths.map((p) => ({ path: p ? `/${m.key}/${p}` : `/${m.key}`, recursive: true })));
    return writer;
  }

  removeRepo(org: string, repo: string): boolean {
    const removed = this.orgs.get(org)?.delete(repo) ?? false;
    if (removed) this.emitChanges([{ path: `/${org}/${repo}`, recursive: true }]);
    return removed;
  }

  /** The committed snapshot each mounted repo shows, labelled with what was asked for. */
  repos(): RepoSnapshot[] {
    return [...this.orgs.values()].flatMap((m) =>
      [...m.values()].map((r) =>
        r.view.base.revision === r.revision ? r.view.base : { ...r.view.base, revision: r.revision },
      ),
    );
  }

  openHandles(): number {
    return this.handles.size;
  }

  private mounted(org: string, repo: string): MountedRepo | undefined {
    return this.orgs.get(org)?.get(repo);
  }

  private announceBase(m: MountedRepo): void {
    const after = m.view.base;
    const before = m.shownRoot;
    m.shownRoot = after.rootTree;
    this.emitChanges(changedPaths(`/${m.key}`, before, after.rootTree, (oid) => m.view.tree(oid)));
  }

  // ---- change feed ----------------------------------------------------------------------

  onChange(listener: ChangeListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Tells subscribers (the kernel's caches, SDK subscribers) about changes made by others. */
  emitChanges(changes: Change[]): void {
    if (changes.length === 0) return;
    for (const l of this.listeners) l(changes);
  }

  // ---- paths ----------------------------------------------------------------------------

  /** The repo and repo-relative path of `path`; undefined for `/` and `/<org>`. */
  locate(path: string): Located | undefined {
    const parts = path.split("/").filter((p) => p.length > 0);
    if (parts.length === 0) return undefined;
    const repos = this.orgs.get(parts[0]);
    if (!repos) throw new FsError("ENOENT");
    if (parts.length === 1) return undefined;
    const repo = repos.get(parts[1]);
    if (!repo) throw new FsError("ENOENT");
    return { repo, rel: parts.slice(2).join("/") };
  }

  /** As `locate`, undefined also where the org or repo is not (or no longer) mounted. */
  private locateIfThere(path: string): Located | undefined {
    try {
      return this.locate(path);
    } catch {
      return undefined;
    }
  }

  node(loc: Located, rel = loc.rel): Node {
    const n = loc.repo.view.lookup(rel);
    if (typeof n === "string") throw new FsError(n);
    return n;
  }

  /** The repo of a path that is about to change; EROFS (EPERM at the root and orgs) elsewhere. */
  writable(path: string, root = false): WritableLocated {
    const loc = this.locateIfThere(path);
    if (!loc?.repo.writer) {
      this.counters.erofs++;
      // Like a read-only Linux filesystem: a missing parent is ENOENT before it is EROFS.
      if (loc && loc.rel !== "") this.node(loc, parentOf(loc.rel));
      throw new FsError(path.split("/").filter(Boolean).length <= 2 ? "EPERM" : "EROFS");
    }
    if (loc.rel === "" && !root) throw new FsError("EPERM");
    checkNames(loc.rel);
    return { ...loc, writer: loc.repo.writer };
  }

  /** Committed paths show the mount's owner and the commit time until something changes them. */
  stat(loc: Located, n: Node, rel = loc.rel): Stat {
    const base = {
      uid: n.uid ?? this.opts.uid,
      gid: n.gid ?? this.opts.gid,
      mtime: new Date(n.mtime),
      atime: new Date(n.atime ?? n.mtime),
      ctime: new Date(n.ctime ?? n.mtime),
    };
    switch (n.type) {
      case "dir": {
        const nlink = 2 + loc.repo.view.subdirCount(rel, n);
        return { ...base, mode: S_IFDIR | (n.perm & 0o7777), size: 4096, nlink };
      }
      case "symlink":
        return { ...base, mode: S_IFLNK | 0o777, size: Buffer.byteLength(n.target), nlink: 1 };
      case "file":
        return {
          ...base,
          mode: S_IFREG | (n.perm & 0o7777),
          size: n.size,
          nlink: 1,
          committed: n.content === undefined,
          ...(n.content === undefined && n.blob !== undefined ? { blob: n.blob } : {}),
        };
      case "special":
        return { ...base, mode: (n.t === "p" ? S_IFIFO : S_IFSOCK) | (n.perm & 0o7777), size: 0, nlink: 1 };
    }
  }

  /** A committed file's node with its size loaded (lazily, per directory, without object-info). */
  async sized(loc: Located, n: Node): Promise<Node> {
    if (n.type !== "file" || n.content !== undefined || n.blob === undefined) return n;
    const view = loc.repo.view;
    if (view.blobSize(n.blob) !== undefined) return n;
    const parent = view.lookup(parentOf(loc.rel));
    const tree = typeof parent !== "string" && parent.type === "dir" ? parent.tree : undefined;
    return { ...n, size: await this.content.sizeOf(view.base, n.blob, tree) };
  }

  private dirStat(): Stat {
    const t = this.started;
    return { mode: DIR_MODE, size: 4096, uid: this.opts.uid, gid: this.opts.gid, mtime: t, nlink: 2 };
  }

  // ---- reads ----------------------------------------------------------------------------

  localBlob(oid: string): BlobLocation | undefined {
    return this.content.provider.localBlob?.(oid);
  }

  readHandedBack(): void {
    this.counters.readsHandedBack++;
  }

  onBlobsLocal(listener: (oids: string[]) => void): () => void {
    return this.content.provider.onLocal?.(listener) ?? (() => undefined);
  }

  async getattr(path: string): Promise<Stat> {
    this.counters.getattr++;
    this.content.provider.onListing?.();
    const loc = this.locate(path);
    if (!loc) return this.dirStat();
    checkNames(loc.rel);
    return this.stat(loc, await this.sized(loc, this.node(loc)));
  }

  async fgetattr(path: string, fh: number): Promise<Stat> {
    const h = this.handles.get(fh);
    if (h?.orphan) return { ...h.orphan, size: h.kind === "overlay" ? h.writer.overlay.size(h.id) : h.size };
    return this.getattr(path);
  }

  async readdir(path: string): Promise<string[]> {
    return (await this.listing(path)).names;
  }

  /** The names of directory `path`, and its repo and node when it is inside one. */
  private async listing(
    path: string,
    ahead = false,
  ): Promise<{ names: string[]; loc?: Located; dir?: Node & { type: "dir" } }> {
    if (ahead) this.counters.listedAhead++;
    else this.counters.readdir++;
    const loc = this.locate(path);
    if (!loc) {
      const parts = path.split("/").filter(Boolean);
      const names = parts.length === 0 ? [...this.orgs.keys()] : [...(this.orgs.get(parts[0])?.keys() ?? [])];
      return { names };
    }
    const dir = this.node(loc);
    if (dir.type !== "dir") throw new FsError("ENOTDIR");
    if (!ahead) this.readerListed(loc, dir);
    return { names: loc.repo.view.list(loc.rel, dir), loc, dir };
  }

  /**
   * A reader listed `path` from a listing made ahead of it (the FUSE face kept it): as for a
   * reader's `readdir`, the foreground is busy and the prefetcher starts below it.
   */
  listedByReader(path: string): void {
    const loc = this.locateIfThere(path);
    if (!loc) return;
    const dir = loc.repo.view.lookup(loc.rel);
    if (typeof dir === "string" || dir.type !== "dir") return;
    this.counters.aheadUsed++;
    this.readerListed(loc, dir);
  }

  private readerListed(loc: Located, dir: Node & { type: "dir" }): void {
    this.content.provider.onListing?.();
    // A reader listing a committed directory starts the prefetcher below it.
    if (dir.tree) this.content.listed(loc.repo.view.base, dir.tree, loc.rel);
  }

  async readdirEntries(path: string, opts?: { ahead?: boolean }): Promise<DirEntry[]> {
    const { names, loc, dir } = await this.listing(path, opts?.ahead);
    if (!loc || !dir) {
      // Orgs get the mount's directory attributes, repos their root's: what getattr gives.
      return names.map((name) => {
        const repo = this.locate(path === "/" ? `/${name}` : `${path}/${name}`);
        return { name, mode: S_IFDIR, stat: repo ? this.stat(repo, this.node(repo)) : this.dirStat() };
      });
    }
    const view = loc.repo.view;
    const out: DirEntry[] = [];
    for (const name of names) {
      const n = view.childOf(loc.rel, dir, name);
      if (typeof n === "string") continue;
      // Entries whose size is not known yet come without attributes (no fetch for a listing).
      if (
        n.type === "file" &&
        n.content === undefined &&
        n.blob !== undefined &&
        view.blobSize(n.blob) === undefined
      ) {
        out.push({ name, mode: S_IFREG });
        continue;
      }
      const stat = this.stat(loc, n, loc.rel === "" ? name : `${loc.rel}/${name}`);
      out.push({ name, mode: stat.mode & S_IFMT, stat });
    }
    return out;
  }

  async readlink(path: string): Promise<string> {
    const loc = this.locate(path);
    if (!loc) throw new FsError("EINVAL");
    const n = this.node(loc);
    if (n.type !== "symlink") throw new FsError("EINVAL");
    return n.target;
  }

  addHandle(h: Handle): number {
    const fh = this.nextFh++;
    if (this.nextFh > 0x7fff_fff0) this.nextFh = 1;
    this.handles.set(fh, h);
    return fh;
  }

  async open(path: string, flags: number): Promise<number> {
    return this.openInner(path, flags).catch((err: unknown) => {
      throw fsErrorOf(err);
    });
  }

  private async openInner(path: string, flags: number): Promise<number> {
    this.counters.open++;
    const loc = this.locate(path);
    if (!loc) throw new FsError("EISDIR");
    const n = await this.sized(loc, this.node(loc));
    if (n.type === "dir") throw new FsError("EISDIR");
    if (n.type !== "file") throw new FsError("ELOOP");
    if (!wantsWrite(flags) && n.content === undefined) {
      const oid = n.blob as string;
      this.content.pin(oid);
      const snap = loc.repo.view.base;
      return this.addHandle({ kind: "base", key: loc.repo.key, snap, oid, size: n.size, rel: loc.rel });
    }
    if (wantsWrite(flags) && !loc.repo.writer) {
      this.counters.erofs++;
      throw new FsError("EROFS");
    }
    const at = { ...loc, writer: loc.repo.writer as RepoWriterLink };
    return this.openContent(at, await prepareWrite(this, at, n, flags));
  }

  /** A handle on overlay content `id` (the file at `loc`). */
  async openContent(loc: WritableLocated, id: string): Promise<number> {
    let file: FileHandle;
    try {
      file = await open(loc.writer.overlay.contentPath(id), "r+");
    } catch (err) {
      throw fsErrorOf(err);
    }
    loc.writer.overlay.pin(id);
    return this.addHandle({ kind: "overlay", key: loc.repo.key, writer: loc.writer, id, file, rel: loc.rel });
  }

  async read(_path: string, fh: number, length: number, position: number): Promise<Buffer> {
    const h = this.handles.get(fh);
    if (!h) throw new FsError("EBADF");
    this.counters.read++;
    const out = await this.readHandle(h, length, position);
    this.counters.readBytes += out.length;
    return out;
  }

  private async readHandle(h: Handle, length: number, position: number): Promise<Buffer> {
    if (h.kind === "base") {
      if (position >= h.size || length === 0) return Buffer.alloc(0);
      return this.content.read(h.snap, h.oid, position, Math.min(length, h.size - position));
    }
    const buf = Buffer.alloc(length);
    try {
      const { bytesRead } = await h.file.read(buf, 0, length, position);
      return buf.subarray(0, bytesRead);
    } catch (err) {
      this.counters.readErrors++;
      throw fsErrorOf(err);
    }
  }

  async release(_path: string, fh: number): Promise<void> {
    const h = this.handles.get(fh);
    if (!h) return;
    this.handles.delete(fh);
    if (h.kind === "base") {
      this.content.unpin(h.oid);
      return;
    }
    await h.file.close().catch(() => undefined);
    if (![...this.handles.values()].some((o) => o.kind === "overlay" && o.id === h.id))
      h.writer.overlay.unpin(h.id);
  }

  async statfs(_path: string): Promise<StatFs> {
    let bytes = 0;
    let files = 0;
    for (const snap of this.repos()) {
      files += snap.sizes.size;
      for (const s of snap.sizes.values()) bytes += s;
    }
    const s: StatFs = {
      bsize: 4096,
      blocks: Math.ceil(bytes / 4096),
      bfree: 0,
      bavail: 0,
      files,
      ffree: 0,
      namemax: NAME_MAX,
    };
    if (this.opts.dataDir === undefined) return s;
    try {
      // Writes land in the data dir: its free space is what a writer can use.
      const d = await statfs(this.opts.dataDir);
      const scale = d.bsize / s.bsize;
      return {
        ...s,
        bfree: Math.floor(d.bfree * scale),
        bavail: Math.floor(d.bavail * scale),
        ffree: d.ffree,
      };
    } catch {
      return s;
    }
  }

  /** Open handles of the file at `loc` keep its attributes once the name is gone. */
  orphanHandles(loc: Located, n: Node, now: number): void {
    if (n.type !== "file") return;
    for (const h of this.handles.values()) {
      if (h.key !== loc.repo.key || h.rel !== loc.rel || h.orphan) continue;
      if (h.kind === "overlay" ? h.id !== n.content : n.content !== undefined || h.oid !== n.blob) continue;
      h.orphan = { ...this.stat(loc, n), nlink: 0, ctime: new Date(now) };
    }
  }

  /** Open handles below `from` follow a rename to `to`. */
  renameHandles(key: string, from: string, to: string): void {
    for (const h of this.handles.values()) {
      if (h.key !== key || h.orphan) continue;
      if (h.rel === from) h.rel = to;
      else if (h.rel.startsWith(`${from}/`)) h.rel = to + h.rel.slice(from.length);
    }
  }
}
