/**
 * The writable filesystem: wraps the read-only `SnapshotFileSystem` and answers every path
 * of a writable repo from that repo's `RepoOverlay` (unmodified paths show the base snapshot,
 * modified ones the overlay). Root/org paths and read-only repos go to the core unchanged.
 * POSIX semantics and errnos live here; persisting lives in the daemon's persister.
 */
import { type FileHandle, open, statfs, utimes } from "node:fs/promises";
import {
  type Caller,
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
} from "../workspace/fs-api.js";
import { type AttrChange, attrsOf, type Node, parentOf, type RepoOverlay } from "../workspace/overlay.js";
import type { ContentProvider, SnapshotFileSystem } from "./core.js";

const O_TRUNC = 0o1000;
const NAME_MAX = 255;
const S_IFIFO = 0o010000;
const S_IFCHR = 0o020000;
const S_IFBLK = 0o060000;
const S_IFSOCK = 0o140000;
const S_ISGID = 0o2000;

/** One writable repo as the filesystem sees it. */
export interface WritableRepo {
  overlay: RepoOverlay;
  /** Undefined when writable; else why not (EROFS for every write). */
  readOnlyReason?: string;
  /** Waits until everything written so far is acknowledged by the server (fsync). */
  persistNow(): Promise<void>;
}

/** `orphan`: the attributes of a file unlinked while this handle is open (fstat still works). */
type Handle =
  | { kind: "core"; fh: number }
  | { kind: "base"; repo: WritableRepo; oid: string; size: number; rel: string; orphan?: Stat }
  | { kind: "overlay"; repo: WritableRepo; id: string; file: FileHandle; rel: string; orphan?: Stat };

interface Located {
  key: string;
  repo: WritableRepo;
  rel: string;
}

/** Base content copied into the overlay per read when a file is first changed. */
const COPY_UP_CHUNK = 1 << 20;

/** Node/libuv error codes that map one-to-one onto errnos the writer should see. */
const PASS_THROUGH = new Set<ErrnoName>(["ENOSPC", "EDQUOT", "EIO", "ENOENT"]);

/** ENAMETOOLONG for a name over 255 bytes, as Linux filesystems give it for any call. */
function checkNames(rel: string): void {
  for (const part of rel.split("/"))
    if (Buffer.byteLength(part) > NAME_MAX) throw new FsError("ENAMETOOLONG");
}

function fsErrorOf(err: unknown): FsError {
  if (err instanceof FsError) return err;
  const code = (err as NodeJS.ErrnoException).code as ErrnoName | undefined;
  return new FsError(code && PASS_THROUGH.has(code) ? code : "EIO", (err as Error).message);
}

export class WritableFileSystem implements FileSystem {
  private readonly repos = new Map<string, WritableRepo>();
  private readonly handles = new Map<number, Handle>();
  private nextFh = 1;
  readonly writes: WriteOps;

  constructor(
    private readonly core: SnapshotFileSystem,
    private readonly content: ContentProvider,
    private readonly opts: { uid: number; gid: number; dataDir: string; readTimeoutMs?: number },
  ) {
    // Any failure of the local disk (ENOSPC from the journal or a content file) reaches the
    // writer as its errno; the in-memory state changes only after the journal line is written.
    const ops = this.makeWriteOps();
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

  attach(org: string, repo: string, w: WritableRepo): void {
    this.repos.set(`${org}/${repo}`, w);
    w.overlay.onRebased = (paths) =>
      this.core.emitChanges(
        paths.map((p) => ({ path: p ? `/${org}/${repo}/${p}` : `/${org}/${repo}`, recursive: p === "" })),
      );
  }

  onChange(listener: ChangeListener): () => void {
    return this.core.onChange(listener);
  }

  detach(org: string, repo: string): WritableRepo | undefined {
    const w = this.repos.get(`${org}/${repo}`);
    this.repos.delete(`${org}/${repo}`);
    return w;
  }

  openHandles(): number {
    return this.handles.size;
  }

  private locate(path: string): Located | undefined {
    const parts = path.split("/").filter((p) => p.length > 0);
    if (parts.length < 2) return undefined;
    const key = `${parts[0]}/${parts[1]}`;
    const repo = this.repos.get(key);
    if (!repo) return undefined;
    return { key, repo, rel: parts.slice(2).join("/") };
  }

  private node(loc: Located, rel = loc.rel): Node {
    const n = loc.repo.overlay.lookup(rel);
    if (typeof n === "string") throw new FsError(n);
    return n;
  }

  /** Committed paths show the mount's owner and the commit time until something changes them. */
  private stat(loc: Located, n: Node, rel = loc.rel): Stat {
    const base = {
      uid: n.uid ?? this.opts.uid,
      gid: n.gid ?? this.opts.gid,
      mtime: new Date(n.mtime),
      atime: new Date(n.atime ?? n.mtime),
      ctime: new Date(n.ctime ?? n.mtime),
    };
    switch (n.type) {
      case "dir": {
        const nlink = 2 + loc.repo.overlay.subdirCount(rel, n);
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
        };
      case "special":
        return { ...base, mode: (n.t === "p" ? S_IFIFO : S_IFSOCK) | (n.perm & 0o7777), size: 0, nlink: 1 };
    }
  }

  // ---- reads --------------------------------------------------------------------------

  async getattr(path: string): Promise<Stat> {
    const loc = this.locate(path);
    if (!loc) return this.core.getattr(path);
    this.core.counters.getattr++;
    checkNames(loc.rel);
    return this.stat(loc, await this.sized(loc, this.node(loc)));
  }

  async fgetattr(path: string, fh: number): Promise<Stat> {
    const h = this.handles.get(fh);
    if (h && h.kind !== "core" && h.orphan)
      return { ...h.orphan, size: h.kind === "overlay" ? h.repo.overlay.size(h.id) : h.size };
    return this.getattr(path);
  }

  /** A base file's node with its size loaded (lazily, per directory, without object-info). */
  private async sized(loc: Located, n: Node): Promise<Node> {
    if (n.type !== "file" || n.content !== undefined || n.blob === undefined) return n;
    const overlay = loc.repo.overlay;
    if (overlay.blobSize(n.blob) !== undefined) return n;
    const parent = overlay.lookup(loc.rel.includes("/") ? loc.rel.slice(0, loc.rel.lastIndexOf("/")) : "");
    const tree = typeof parent !== "string" && parent.type === "dir" ? parent.tree : undefined;
    const size = await this.core.sizeOf(overlay.base, n.blob, tree);
    return { ...n, size };
  }

  async readdir(path: string): Promise<string[]> {
    const loc = this.locate(path);
    if (!loc) return this.core.readdir(path);
    this.core.counters.readdir++;
    const n = this.node(loc);
    if (n.type !== "dir") throw new FsError("ENOTDIR");
    // The core's listing starts the prefetcher for unmodified directories.
    if (n.tree) this.core.readdir(path).catch(() => undefined);
    return loc.repo.overlay.list(loc.rel, n);
  }

  async readdirEntries(path: string): Promise<DirEntry[]> {
    const loc = this.locate(path);
    if (!loc) return this.core.readdirEntries(path);
    const names = await this.readdir(path);
    const out: DirEntry[] = [];
    for (const name of names) {
      const rel = loc.rel === "" ? name : `${loc.rel}/${name}`;
      const n = loc.repo.overlay.lookup(rel);
      if (typeof n === "string") continue;
      const unsized =
        n.type === "file" &&
        n.content === undefined &&
        n.blob !== undefined &&
        loc.repo.overlay.blobSize(n.blob) === undefined;
      if (unsized) {
        out.push({ name, mode: S_IFREG });
        continue;
      }
      const stat = this.stat(loc, n, rel);
      out.push({ name, mode: stat.mode & S_IFMT, stat });
    }
    return out;
  }

  async readlink(path: string): Promise<string> {
    const loc = this.locate(path);
    if (!loc) return this.core.readlink(path);
    const n = this.node(loc);
    if (n.type !== "symlink") throw new FsError("EINVAL");
    return n.target;
  }

  private addHandle(h: Handle): number {
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
    const loc = this.locate(path);
    if (!loc) return this.addHandle({ kind: "core", fh: await this.core.open(path, flags) });
    this.core.counters.open++;
    const n = await this.sized(loc, this.node(loc));
    if (n.type === "dir") throw new FsError("EISDIR");
    if (n.type !== "file") throw new FsError("ELOOP");
    if (!wantsWrite(flags) && n.content === undefined) {
      const oid = n.blob as string;
      this.content.pin(oid);
      return this.addHandle({ kind: "base", repo: loc.repo, oid, size: n.size, rel: loc.rel });
    }
    if (wantsWrite(flags)) this.checkWritable(loc);
    const id =
      (flags & O_TRUNC) !== 0 && n.content === undefined
        ? await this.emptyFile(loc, n)
        : await this.copyUp(loc, n);
    // O_TRUNC moves mtime and ctime even when the file was already empty.
    if ((flags & O_TRUNC) !== 0 && n.content !== undefined) {
      if (loc.repo.overlay.size(id) > 0) {
        const f = await open(loc.repo.overlay.contentPath(id), "r+");
        try {
          await f.truncate(0);
        } finally {
          await f.close();
        }
      }
      loc.repo.overlay.contentChanged(loc.rel, id, 0);
    }
    return this.openContent(loc, id);
  }

  private async openContent(loc: Located, id: string): Promise<number> {
    let file: FileHandle;
    try {
      file = await open(loc.repo.overlay.contentPath(id), "r+");
    } catch (err) {
      throw fsErrorOf(err);
    }
    loc.repo.overlay.pin(id);
    return this.addHandle({ kind: "overlay", repo: loc.repo, id, file, rel: loc.rel });
  }

  async read(path: string, fh: number, length: number, position: number): Promise<Buffer> {
    const h = this.handles.get(fh);
    if (!h) throw new FsError("EBADF");
    if (h.kind === "core") return this.core.read(path, h.fh, length, position);
    // The core's counters are the daemon's `mesa stats` for every repo.
    const c = this.core.counters;
    c.read++;
    const out = await this.readOwn(h, length, position).catch((err: unknown) => {
      c.readErrors++;
      throw err;
    });
    c.readBytes += out.length;
    return out;
  }

  private async readOwn(
    h: Handle & { kind: "base" | "overlay" },
    length: number,
    position: number,
  ): Promise<Buffer> {
    if (h.kind === "base") {
      if (position >= h.size || length === 0) return Buffer.alloc(0);
      let timer: NodeJS.Timeout | undefined;
      const ms = this.opts.readTimeoutMs ?? 20_000;
      try {
        // Bounded like the core's reads: a server that never answers gives EIO, not a hang.
        return await Promise.race([
          this.content.read(h.repo.overlay.base, h.oid, position, Math.min(length, h.size - position)),
          new Promise<never>((_, reject) => {
            timer = setTimeout(() => reject(new Error(`no content after ${ms} ms`)), ms);
          }),
        ]);
      } catch (err) {
        throw new FsError("EIO", (err as Error).message);
      } finally {
        clearTimeout(timer);
      }
    }
    const buf = Buffer.alloc(length);
    try {
      const { bytesRead } = await h.file.read(buf, 0, length, position);
      return buf.subarray(0, bytesRead);
    } catch (err) {
      throw fsErrorOf(err);
    }
  }

  async release(path: string, fh: number): Promise<void> {
    const h = this.handles.get(fh);
    if (!h) return;
    this.handles.delete(fh);
    if (h.kind === "core") return this.core.release(path, h.fh);
    if (h.kind === "base") {
      this.content.unpin(h.oid);
      return;
    }
    await h.file.close().catch(() => undefined);
    if (![...this.handles.values()].some((o) => o.kind === "overlay" && o.id === h.id))
      h.repo.overlay.unpin(h.id);
  }

  async statfs(path: string): Promise<StatFs> {
    const s = await this.core.statfs(path);
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

  async mutate(op: string, path: string): Promise<never> {
    return this.core.mutate(op, path);
  }

  // ---- helpers for writes -------------------------------------------------------------

  private checkWritable(loc: Located): void {
    if (loc.repo.readOnlyReason !== undefined) throw new FsError("EROFS", loc.repo.readOnlyReason);
  }

  /**
   * The repo of a path that is about to change, or EROFS outside any writable repo. The repo
   * root itself takes metadata changes only (`root`).
   */
  private writable(path: string, root = false): Located {
    const loc = this.locate(path);
    if (!loc) {
      this.core.counters.erofs++;
      throw new FsError(path.split("/").filter(Boolean).length <= 2 ? "EPERM" : "EROFS");
    }
    if (loc.rel === "" && !root) throw new FsError("EPERM");
    this.checkWritable(loc);
    checkNames(loc.rel);
    return loc;
  }

  /** A new entry's owner: the caller, with the group of a setgid parent directory. */
  private owner(loc: Located, caller: Caller | undefined): { uid: number; gid: number; setgid: boolean } {
    const parent = this.node(loc, parentOf(loc.rel));
    if (parent.type !== "dir") throw new FsError("ENOTDIR");
    const setgid = (parent.perm & S_ISGID) !== 0;
    return {
      uid: caller?.uid ?? this.opts.uid,
      gid: setgid ? (parent.gid ?? this.opts.gid) : (caller?.gid ?? this.opts.gid),
      setgid,
    };
  }

  /**
   * An entry was added to or removed from the parent of `rel`: its mtime and ctime move. Best
   * effort: the operation itself is done and journaled, so a full disk costs only these times.
   */
  private touchParent(loc: Located, rel: string, now: number): void {
    this.touch(loc, parentOf(rel), { mtime: now, ctime: now });
  }

  private touch(loc: Located, rel: string, change: AttrChange): void {
    try {
      loc.repo.overlay.setAttrs(rel, change);
    } catch {
      // ENOSPC from the journal: the times stay as they were.
    }
  }

  /** Open handles of the file at `rel` keep its attributes once the name is gone. */
  private orphanHandles(loc: Located, n: Node, now: number): void {
    if (n.type !== "file") return;
    for (const h of this.handles.values()) {
      if (h.kind === "core" || h.repo !== loc.repo || h.rel !== loc.rel || h.orphan) continue;
      if (h.kind === "overlay" ? h.id !== n.content : n.content !== undefined || h.oid !== n.blob) continue;
      h.orphan = { ...this.stat(loc, n), nlink: 0, ctime: new Date(now) };
    }
  }

  private parentDir(loc: Located): void {
    const p = this.node(loc, parentOf(loc.rel));
    if (p.type !== "dir") throw new FsError("ENOTDIR");
  }

  private exists(loc: Located, rel = loc.rel): Node | undefined {
    const n = loc.repo.overlay.lookup(rel);
    return typeof n === "string" ? undefined : n;
  }

  private async emptyFile(loc: Located, n: Node & { type: "file" }): Promise<string> {
    const id = await loc.repo.overlay.newContent();
    const now = Date.now();
    loc.repo.overlay.set(loc.rel, {
      ...attrsOf(n),
      k: "f",
      c: id,
      perm: n.perm,
      atime: n.atime ?? n.mtime,
      mtime: now,
      ctime: now,
    });
    return id;
  }

  /** Makes the file at `loc` an overlay file (fetching base content once); returns its content id. */
  private async copyUp(loc: Located, unsized: Node & { type: "file" }): Promise<string> {
    if (unsized.content !== undefined) return unsized.content;
    const n = (await this.sized(loc, unsized)) as Node & { type: "file" };
    const id = await loc.repo.overlay.newContent().catch((err) => {
      throw fsErrorOf(err);
    });
    // The base content is copied in 1 MiB ranges: a large file never sits in memory.
    const file = await open(loc.repo.overlay.contentPath(id), "r+").catch((err) => {
      throw fsErrorOf(err);
    });
    try {
      for (let off = 0; off < n.size; off += COPY_UP_CHUNK) {
        let data: Buffer;
        try {
          data = await this.content.read(
            loc.repo.overlay.base,
            n.blob as string,
            off,
            Math.min(COPY_UP_CHUNK, n.size - off),
          );
        } catch (err) {
          throw new FsError("EIO", (err as Error).message);
        }
        await file.write(data, 0, data.length, off).catch((err) => {
          throw fsErrorOf(err);
        });
      }
    } finally {
      await file.close();
    }
    loc.repo.overlay.contentChanged(undefined, id, n.size);
    // Another call may have copied it up while the content was fetched.
    const now = this.node(loc);
    if (now.type === "file" && now.content !== undefined) return now.content;
    // The bytes are the same: times and owner stay as they were (a restart reads the mtime back
    // from the content file).
    const cur = now.type === "file" ? now : n;
    await utimes(
      loc.repo.overlay.contentPath(id),
      new Date(cur.atime ?? cur.mtime),
      new Date(cur.mtime),
    ).catch(() => undefined);
    loc.repo.overlay.set(loc.rel, { ...attrsOf(cur), k: "f", c: id, perm: cur.perm, mtime: cur.mtime });
    return id;
  }

  private async resize(loc: Located, id: string, size: number, file?: FileHandle): Promise<void> {
    const f = file ?? (await open(loc.repo.overlay.contentPath(id), "r+"));
    try {
      await f.truncate(size);
    } catch (err) {
      throw fsErrorOf(err);
    } finally {
      if (!file) await f.close();
    }
    loc.repo.overlay.contentChanged(loc.rel, id, size);
  }

  private makeWriteOps(): WriteOps {
    return {
      create: async (path, mode, caller) => {
        const loc = this.writable(path);
        const own = this.owner(loc, caller);
        const prev = this.exists(loc);
        if (prev?.type === "dir") throw new FsError("EISDIR");
        const id = await loc.repo.overlay.newContent().catch((err) => {
          throw fsErrorOf(err);
        });
        const now = Date.now();
        loc.repo.overlay.set(loc.rel, {
          k: "f",
          c: id,
          perm: mode & 0o7777,
          mtime: now,
          atime: now,
          ctime: now,
          uid: own.uid,
          gid: own.gid,
        });
        this.touchParent(loc, loc.rel, now);
        return this.openContent(loc, id);
      },

      write: async (_path, fh, data, position) => {
        const h = this.handles.get(fh);
        if (!h) throw new FsError("EBADF");
        if (h.kind !== "overlay") throw new FsError("EBADF");
        let written: number;
        try {
          ({ bytesWritten: written } = await h.file.write(data, 0, data.length, position));
        } catch (err) {
          throw fsErrorOf(err);
        }
        const size = Math.max(h.repo.overlay.size(h.id), position + written);
        h.repo.overlay.contentChanged(this.currentPath(h), h.id, size);
        if (h.orphan) h.orphan.mtime = h.orphan.ctime = new Date();
        return written;
      },

      truncate: async (path, size) => {
        const loc = this.writable(path);
        const n = this.node(loc);
        if (n.type === "dir") throw new FsError("EISDIR");
        if (n.type !== "file") throw new FsError("EINVAL");
        const id =
          size === 0 && n.content === undefined ? await this.emptyFile(loc, n) : await this.copyUp(loc, n);
        await this.resize(loc, id, size);
      },

      ftruncate: async (path, fh, size) => {
        const h = this.handles.get(fh);
        if (h?.kind !== "overlay") return this.writes.truncate(path, size);
        const loc = this.writable(path);
        await this.resize(loc, h.id, size, h.file);
        if (h.orphan) h.orphan.mtime = h.orphan.ctime = new Date();
      },

      unlink: async (path) => {
        const loc = this.writable(path);
        const n = this.node(loc);
        if (n.type === "dir") throw new FsError("EISDIR");
        const now = Date.now();
        this.orphanHandles(loc, n, now);
        loc.repo.overlay.set(loc.rel, { k: "x" });
        this.touchParent(loc, loc.rel, now);
      },

      mkdir: async (path, mode, caller) => {
        const loc = this.writable(path);
        const own = this.owner(loc, caller);
        if (this.exists(loc)) throw new FsError("EEXIST");
        const now = Date.now();
        // The kernel already applied the umask; a setgid parent passes its setgid bit on.
        const perm = (mode & 0o7777) | (own.setgid ? S_ISGID : 0);
        loc.repo.overlay.set(loc.rel, {
          k: "d",
          perm,
          mtime: now,
          atime: now,
          ctime: now,
          uid: own.uid,
          gid: own.gid,
        });
        this.touchParent(loc, loc.rel, now);
      },

      mknod: async (path, mode, _rdev, caller) => {
        const loc = this.writable(path);
        const own = this.owner(loc, caller);
        if (this.exists(loc)) throw new FsError("EEXIST");
        const fmt = mode & S_IFMT;
        const now = Date.now();
        const attrs = { perm: mode & 0o7777, mtime: now, atime: now, ctime: now, uid: own.uid, gid: own.gid };
        if (fmt === S_IFCHR || fmt === S_IFBLK)
          throw new FsError("EPERM", "device nodes are not supported in the mount");
        if (fmt === S_IFIFO || fmt === S_IFSOCK) {
          // Usable while mounted, never pushed: Git cannot store them.
          loc.repo.overlay.set(loc.rel, { k: "n", t: fmt === S_IFIFO ? "p" : "s", ...attrs });
        } else if (fmt === S_IFREG || fmt === 0) {
          const id = await loc.repo.overlay.newContent();
          loc.repo.overlay.set(loc.rel, { k: "f", c: id, ...attrs });
        } else throw new FsError("EINVAL");
        this.touchParent(loc, loc.rel, now);
      },

      rmdir: async (path) => {
        const loc = this.writable(path);
        const n = this.node(loc);
        if (n.type !== "dir") throw new FsError("ENOTDIR");
        if (loc.repo.overlay.list(loc.rel, n).length > 0) throw new FsError("ENOTEMPTY");
        loc.repo.overlay.set(loc.rel, { k: "x" });
        this.touchParent(loc, loc.rel, Date.now());
      },

      rename: async (from, to) => {
        const src = this.writable(from);
        const dst = this.locate(to);
        if (!dst || dst.key !== src.key) throw new FsError("EXDEV");
        const dest = this.writable(to);
        const n = this.node(src);
        this.parentDir(dest);
        if (src.rel === dest.rel) return;
        if (n.type === "dir" && dest.rel.startsWith(`${src.rel}/`)) throw new FsError("EINVAL");
        const target = this.exists(dest);
        if (target) {
          if (n.type === "dir" && target.type !== "dir") throw new FsError("ENOTDIR");
          if (n.type !== "dir" && target.type === "dir") throw new FsError("EISDIR");
          if (target.type === "dir" && dest.repo.overlay.list(dest.rel, target).length > 0)
            throw new FsError("ENOTEMPTY");
        }
        const now = Date.now();
        if (target) this.orphanHandles(dest, target, now);
        src.repo.overlay.rename(src.rel, dest.rel);
        // Like Linux: the moved entry's ctime and both parents' mtime and ctime move.
        this.touch(dest, dest.rel, { ctime: now });
        this.touchParent(src, src.rel, now);
        if (parentOf(src.rel) !== parentOf(dest.rel)) this.touchParent(dest, dest.rel, now);
        // Open handles follow the file to its new name.
        for (const h of this.handles.values()) {
          if (h.kind === "core" || h.repo !== src.repo || h.orphan) continue;
          if (h.rel === src.rel) h.rel = dest.rel;
          else if (h.rel.startsWith(`${src.rel}/`)) h.rel = dest.rel + h.rel.slice(src.rel.length);
        }
      },

      symlink: async (target, path, caller) => {
        const loc = this.writable(path);
        const own = this.owner(loc, caller);
        if (this.exists(loc)) throw new FsError("EEXIST");
        const now = Date.now();
        loc.repo.overlay.set(loc.rel, {
          k: "l",
          target,
          mtime: now,
          atime: now,
          ctime: now,
          uid: own.uid,
          gid: own.gid,
        });
        this.touchParent(loc, loc.rel, now);
      },

      link: async (_from, to) => {
        this.writable(to);
        // Git has no hard links; a copy would silently diverge.
        throw new FsError("EPERM", "hard links are not supported");
      },

      // Who may chmod/chown is the kernel's check (`default_permissions`, from mode and owner).
      chmod: async (path, mode) => {
        const loc = this.writable(path, true);
        const n = this.node(loc);
        if (n.type === "symlink") return;
        loc.repo.overlay.setAttrs(loc.rel, { perm: mode & 0o7777, ctime: Date.now() });
      },

      chown: async (path, uid, gid) => {
        const loc = this.writable(path, true);
        this.node(loc);
        const change: AttrChange = { ctime: Date.now() };
        // -1 (as the kernel's unsigned 32-bit value too) leaves that id unchanged.
        if (uid !== -1 && uid !== 0xffffffff) change.uid = uid;
        if (gid !== -1 && gid !== 0xffffffff) change.gid = gid;
        loc.repo.overlay.setAttrs(loc.rel, change);
      },

      utimens: async (path, atime, mtime) => {
        const loc = this.writable(path, true);
        const n = this.node(loc);
        const now = Date.now();
        const ms = (d: Date) => (Number.isFinite(d.getTime()) ? d.getTime() : now);
        const change: AttrChange = { ctime: now };
        if (atime !== undefined) change.atime = ms(atime);
        if (mtime !== undefined) change.mtime = ms(mtime);
        if (n.type === "file" && n.content !== undefined && change.mtime !== undefined) {
          // The content file's mtime is what a restart reads back (writes are not journaled).
          const path = loc.repo.overlay.contentPath(n.content);
          await utimes(path, new Date(change.atime ?? n.atime ?? n.mtime), new Date(change.mtime));
        }
        loc.repo.overlay.setAttrs(loc.rel, change);
      },

      fsync: async (path, fh) => {
        const h = this.handles.get(fh);
        const loc = this.locate(path);
        const repo = h && h.kind !== "core" ? h.repo : loc?.repo;
        if (!repo) return;
        if (h?.kind === "overlay") await h.file.datasync().catch((err) => Promise.reject(fsErrorOf(err)));
        repo.overlay.syncJournal();
        if (repo.readOnlyReason !== undefined) return;
        try {
          await repo.persistNow();
        } catch (err) {
          throw new FsError("EIO", (err as Error).message);
        }
      },

      flush: async () => undefined,
    };
  }

  /** The path an overlay handle's file has now (renames move it), for mtime bookkeeping. */
  private currentPath(h: Handle & { kind: "overlay" }): string | undefined {
    const e = h.repo.overlay.entry(h.rel);
    return e && e.k === "f" && e.c === h.id ? h.rel : undefined;
  }
}
