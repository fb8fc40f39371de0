/**
 * The writable filesystem: wraps the read-only `SnapshotFileSystem` and answers every path
 * of a writable repo from that repo's `RepoOverlay` (unmodified paths show the base snapshot,
 * modified ones the overlay). Root/org paths and read-only repos go to the core unchanged.
 * POSIX semantics and errnos live here; persisting lives in the daemon's persister.
 */
import { type FileHandle, open, statfs } from "node:fs/promises";
import type { ContentProvider, SnapshotFileSystem } from "./core.js";
import {
  type DirEntry,
  type ErrnoName,
  type FileSystem,
  FsError,
  S_IFDIR,
  S_IFLNK,
  S_IFREG,
  type Stat,
  type StatFs,
  type WriteOps,
  wantsWrite,
} from "./filesystem.js";
import { type Node, parentOf, type RepoOverlay } from "./overlay.js";

const O_TRUNC = 0o1000;
const NAME_MAX = 255;

/** One writable repo as the filesystem sees it. */
export interface WritableRepo {
  overlay: RepoOverlay;
  /** Undefined when writable; else why not (EROFS for every write). */
  readOnlyReason?: string;
  /** Waits until everything written so far is acknowledged by the server (fsync). */
  persistNow(): Promise<void>;
}

type Handle =
  | { kind: "core"; fh: number }
  | { kind: "base"; repo: WritableRepo; oid: string; size: number }
  | { kind: "overlay"; repo: WritableRepo; id: string; file: FileHandle; rel: string };

interface Located {
  key: string;
  repo: WritableRepo;
  rel: string;
}

/** Node/libuv error codes that map one-to-one onto errnos the writer should see. */
const PASS_THROUGH = new Set<ErrnoName>(["ENOSPC", "EDQUOT", "EIO", "ENOENT"]);

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

  private stat(n: Node): Stat {
    const base = { uid: this.opts.uid, gid: this.opts.gid, mtime: new Date(n.mtime) };
    switch (n.type) {
      case "dir":
        return { ...base, mode: S_IFDIR | (n.perm & 0o7777), size: 4096, nlink: 2 };
      case "symlink":
        return { ...base, mode: S_IFLNK | 0o777, size: Buffer.byteLength(n.target), nlink: 1 };
      case "file":
        return { ...base, mode: S_IFREG | (n.perm & 0o7777), size: n.size, nlink: 1 };
    }
  }

  // ---- reads --------------------------------------------------------------------------

  async getattr(path: string): Promise<Stat> {
    const loc = this.locate(path);
    if (!loc) return this.core.getattr(path);
    this.core.counters.getattr++;
    return this.stat(await this.sized(loc, this.node(loc)));
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
      const mode = n.type === "dir" ? S_IFDIR : n.type === "symlink" ? S_IFLNK : S_IFREG;
      const unsized =
        n.type === "file" &&
        n.content === undefined &&
        n.blob !== undefined &&
        loc.repo.overlay.blobSize(n.blob) === undefined;
      out.push(unsized ? { name, mode } : { name, mode, stat: this.stat(n) });
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
      return this.addHandle({ kind: "base", repo: loc.repo, oid, size: n.size });
    }
    if (wantsWrite(flags)) this.checkWritable(loc);
    const id =
      (flags & O_TRUNC) !== 0 && n.content === undefined
        ? await this.emptyFile(loc, n)
        : await this.copyUp(loc, n);
    if ((flags & O_TRUNC) !== 0 && loc.repo.overlay.size(id) > 0) {
      const f = await open(loc.repo.overlay.contentPath(id), "r+");
      try {
        await f.truncate(0);
      } finally {
        await f.close();
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

  /** The repo of a path that is about to change, or EROFS outside any writable repo. */
  private writable(path: string): Located {
    const loc = this.locate(path);
    if (!loc) {
      this.core.counters.erofs++;
      throw new FsError(path.split("/").filter(Boolean).length <= 2 ? "EPERM" : "EROFS");
    }
    if (loc.rel === "") throw new FsError("EPERM");
    this.checkWritable(loc);
    for (const part of loc.rel.split("/"))
      if (Buffer.byteLength(part) > NAME_MAX) throw new FsError("ENAMETOOLONG");
    return loc;
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
    loc.repo.overlay.set(loc.rel, { k: "f", c: id, perm: n.perm, mtime: Date.now() });
    return id;
  }

  /** Makes the file at `loc` an overlay file (fetching base content once); returns its content id. */
  private async copyUp(loc: Located, file: Node & { type: "file" }): Promise<string> {
    if (file.content !== undefined) return file.content;
    const n = (await this.sized(loc, file)) as Node & { type: "file" };
    let data: Buffer;
    try {
      data =
        n.size === 0
          ? Buffer.alloc(0)
          : await this.content.read(loc.repo.overlay.base, n.blob as string, 0, n.size);
    } catch (err) {
      throw new FsError("EIO", (err as Error).message);
    }
    const id = await loc.repo.overlay.newContent(data).catch((err) => {
      throw fsErrorOf(err);
    });
    // Another call may have copied it up while the content was fetched.
    const now = this.node(loc);
    if (now.type === "file" && now.content !== undefined) return now.content;
    loc.repo.overlay.set(loc.rel, { k: "f", c: id, perm: n.perm, mtime: Date.now() });
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
      create: async (path, mode) => {
        const loc = this.writable(path);
        this.parentDir(loc);
        const prev = this.exists(loc);
        if (prev?.type === "dir") throw new FsError("EISDIR");
        const id = await loc.repo.overlay.newContent().catch((err) => {
          throw fsErrorOf(err);
        });
        loc.repo.overlay.set(loc.rel, { k: "f", c: id, perm: mode & 0o7777, mtime: Date.now() });
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
      },

      unlink: async (path) => {
        const loc = this.writable(path);
        const n = this.node(loc);
        if (n.type === "dir") throw new FsError("EISDIR");
        loc.repo.overlay.set(loc.rel, { k: "x" });
      },

      mkdir: async (path, mode) => {
        const loc = this.writable(path);
        this.parentDir(loc);
        if (this.exists(loc)) throw new FsError("EEXIST");
        loc.repo.overlay.set(loc.rel, { k: "d", perm: (mode & 0o7777) | 0o700, mtime: Date.now() });
      },

      rmdir: async (path) => {
        const loc = this.writable(path);
        const n = this.node(loc);
        if (n.type !== "dir") throw new FsError("ENOTDIR");
        if (loc.repo.overlay.list(loc.rel, n).length > 0) throw new FsError("ENOTEMPTY");
        loc.repo.overlay.set(loc.rel, { k: "x" });
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
        src.repo.overlay.rename(src.rel, dest.rel);
        // Open handles follow the file to its new name.
        for (const h of this.handles.values()) {
          if (h.kind !== "overlay" || h.repo !== src.repo) continue;
          if (h.rel === src.rel) h.rel = dest.rel;
          else if (h.rel.startsWith(`${src.rel}/`)) h.rel = dest.rel + h.rel.slice(src.rel.length);
        }
      },

      symlink: async (target, path) => {
        const loc = this.writable(path);
        this.parentDir(loc);
        if (this.exists(loc)) throw new FsError("EEXIST");
        loc.repo.overlay.set(loc.rel, { k: "l", target, mtime: Date.now() });
      },

      link: async (_from, to) => {
        this.writable(to);
        // Git has no hard links; a copy would silently diverge.
        throw new FsError("EPERM", "hard links are not supported");
      },

      chmod: async (path, mode) => {
        const loc = this.writable(path);
        const n = this.node(loc);
        const perm = mode & 0o7777;
        if (n.type === "file")
          loc.repo.overlay.set(loc.rel, {
            k: "f",
            c: n.content,
            blob: n.content ? undefined : n.blob,
            perm,
            mtime: n.mtime,
          });
        else if (n.type === "dir")
          loc.repo.overlay.set(loc.rel, { k: "d", tree: n.tree, perm, mtime: n.mtime });
      },

      chown: async (path, uid, gid) => {
        const loc = this.writable(path);
        this.node(loc);
        // Files belong to the mount's owner; only a no-op change is allowed.
        const same = (v: number, own: number) => v === own || v === -1 || v === 0xffffffff;
        if (!same(uid, this.opts.uid) || !same(gid, this.opts.gid)) throw new FsError("EPERM");
      },

      utimens: async (path, _atime, mtime) => {
        const loc = this.writable(path);
        const n = this.node(loc);
        if (mtime === undefined) return;
        const t = Number.isFinite(mtime.getTime()) ? mtime.getTime() : Date.now();
        if (n.type === "file")
          loc.repo.overlay.set(loc.rel, {
            k: "f",
            c: n.content,
            blob: n.content ? undefined : n.blob,
            perm: n.perm,
            mtime: t,
          });
        else if (n.type === "dir")
          loc.repo.overlay.set(loc.rel, { k: "d", tree: n.tree, perm: n.perm, mtime: t });
        else loc.repo.overlay.set(loc.rel, { k: "l", target: n.target, mtime: t });
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
