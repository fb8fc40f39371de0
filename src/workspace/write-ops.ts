/**
 * POSIX write operations of the workspace filesystem: each one checks the path is in a
 * writable repo, applies POSIX rules (owners, setgid directories, times, errnos) and records
 * the result in that repo's overlay. Persisting to the server is the writer's job.
 */
import { type FileHandle, open, utimes } from "node:fs/promises";
import { fsErrorOf, type Located, type WorkspaceFileSystem, type WritableLocated } from "./filesystem.js";
import { type Caller, FsError, S_IFMT, S_IFREG, type WriteOps } from "./fs-api.js";
import { attrsOf, type Node, parentOf } from "./node.js";
import type { AttrChange } from "./overlay.js";

const O_TRUNC = 0o1000;
const S_IFIFO = 0o010000;
const S_IFCHR = 0o020000;
const S_IFBLK = 0o060000;
const S_IFSOCK = 0o140000;
const S_ISGID = 0o2000;

/** Base content copied into the overlay per read when a file is first changed. */
const COPY_UP_CHUNK = 1 << 20;

type FileNode = Node & { type: "file" };

/** A new entry's owner: the caller, with the group of a setgid parent directory. */
function owner(
  fs: WorkspaceFileSystem,
  loc: Located,
  caller: Caller | undefined,
): { uid: number; gid: number; setgid: boolean } {
  const parent = fs.node(loc, parentOf(loc.rel));
  if (parent.type !== "dir") throw new FsError("ENOTDIR");
  const setgid = (parent.perm & S_ISGID) !== 0;
  return {
    uid: caller?.uid ?? fs.opts.uid,
    gid: setgid ? (parent.gid ?? fs.opts.gid) : (caller?.gid ?? fs.opts.gid),
    setgid,
  };
}

/** Times and owner of an entry created at `now`. */
function created(own: { uid: number; gid: number }, now: number) {
  return { mtime: now, atime: now, ctime: now, uid: own.uid, gid: own.gid };
}

function touch(loc: WritableLocated, rel: string, change: AttrChange): void {
  try {
    loc.writer.overlay.setAttrs(rel, change);
  } catch {
    // ENOSPC from the journal: the times stay as they were.
  }
}

/**
 * An entry was added to or removed from the parent of `rel`: its mtime and ctime move. Best
 * effort: the operation itself is done and journaled, so a full disk costs only these times.
 */
function touchParent(loc: WritableLocated, rel: string, now: number): void {
  touch(loc, parentOf(rel), { mtime: now, ctime: now });
}

function exists(loc: Located, rel = loc.rel): Node | undefined {
  const n = loc.repo.view.lookup(rel);
  return typeof n === "string" ? undefined : n;
}

async function emptyFile(loc: WritableLocated, n: FileNode): Promise<string> {
  const id = await loc.writer.overlay.newContent();
  const now = Date.now();
  loc.writer.overlay.set(loc.rel, {
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
async function copyUp(fs: WorkspaceFileSystem, loc: WritableLocated, unsized: FileNode): Promise<string> {
  if (unsized.content !== undefined) return unsized.content;
  const n = (await fs.sized(loc, unsized)) as FileNode;
  const overlay = loc.writer.overlay;
  const id = await overlay.newContent().catch((err) => {
    throw fsErrorOf(err);
  });
  // The base content is copied in 1 MiB ranges: a large file never sits in memory.
  const file = await open(overlay.contentPath(id), "r+").catch((err) => {
    throw fsErrorOf(err);
  });
  try {
    for (let off = 0; off < n.size; off += COPY_UP_CHUNK) {
      const data = await fs.content.read(
        overlay.base,
        n.blob as string,
        off,
        Math.min(COPY_UP_CHUNK, n.size - off),
      );
      await file.write(data, 0, data.length, off).catch((err) => {
        throw fsErrorOf(err);
      });
    }
  } finally {
    await file.close();
  }
  overlay.contentChanged(undefined, id, n.size);
  // Another call may have copied it up while the content was fetched.
  const now = fs.node(loc);
  if (now.type === "file" && now.content !== undefined) return now.content;
  // The bytes are the same: times and owner stay as they were (a restart reads the mtime back
  // from the content file).
  const cur = now.type === "file" ? now : n;
  await utimes(overlay.contentPath(id), new Date(cur.atime ?? cur.mtime), new Date(cur.mtime)).catch(
    () => undefined,
  );
  overlay.set(loc.rel, { ...attrsOf(cur), k: "f", c: id, perm: cur.perm, mtime: cur.mtime });
  return id;
}

async function resize(loc: WritableLocated, id: string, size: number, file?: FileHandle): Promise<void> {
  const f = file ?? (await open(loc.writer.overlay.contentPath(id), "r+"));
  try {
    await f.truncate(size);
  } catch (err) {
    throw fsErrorOf(err);
  } finally {
    if (!file) await f.close();
  }
  loc.writer.overlay.contentChanged(loc.rel, id, size);
}

/**
 * The overlay content a file opened for writing (or with O_TRUNC) writes to: a copy of the
 * committed bytes, or an empty file when they would be truncated away anyway.
 */
export async function prepareWrite(
  fs: WorkspaceFileSystem,
  loc: WritableLocated,
  n: FileNode,
  flags: number,
): Promise<string> {
  const truncating = (flags & O_TRUNC) !== 0;
  const id = truncating && n.content === undefined ? await emptyFile(loc, n) : await copyUp(fs, loc, n);
  // O_TRUNC moves mtime and ctime even when the file was already empty.
  if (truncating && n.content !== undefined) {
    if (loc.writer.overlay.size(id) > 0) await resize(loc, id, 0);
    else loc.writer.overlay.contentChanged(loc.rel, id, 0);
  }
  return id;
}

/** The path an overlay handle's file has now (renames move it), for mtime bookkeeping. */
function currentPath(h: { writer: WritableLocated["writer"]; rel: string; id: string }): string | undefined {
  const e = h.writer.overlay.entry(h.rel);
  return e && e.k === "f" && e.c === h.id ? h.rel : undefined;
}

export function makeWriteOps(fs: WorkspaceFileSystem): WriteOps {
  const ops: WriteOps = {
    create: async (path, mode, caller) => {
      const loc = fs.writable(path);
      const own = owner(fs, loc, caller);
      if (exists(loc)?.type === "dir") throw new FsError("EISDIR");
      const id = await loc.writer.overlay.newContent().catch((err) => {
        throw fsErrorOf(err);
      });
      const now = Date.now();
      loc.writer.overlay.set(loc.rel, {
        k: "f",
        c: id,
        perm: mode & 0o7777,
        ...created(own, now),
      });
      touchParent(loc, loc.rel, now);
      return fs.openContent(loc, id);
    },

    write: async (_path, fh, data, position) => {
      const h = fs.handles.get(fh);
      if (h?.kind !== "overlay") throw new FsError("EBADF");
      let written: number;
      try {
        ({ bytesWritten: written } = await h.file.write(data, 0, data.length, position));
      } catch (err) {
        throw fsErrorOf(err);
      }
      const size = Math.max(h.writer.overlay.size(h.id), position + written);
      h.writer.overlay.contentChanged(currentPath(h), h.id, size);
      if (h.orphan) h.orphan.mtime = h.orphan.ctime = new Date();
      return written;
    },

    truncate: async (path, size) => {
      const loc = fs.writable(path);
      const n = fs.node(loc);
      if (n.type === "dir") throw new FsError("EISDIR");
      if (n.type !== "file") throw new FsError("EINVAL");
      const id = size === 0 && n.content === undefined ? await emptyFile(loc, n) : await copyUp(fs, loc, n);
      await resize(loc, id, size);
    },

    ftruncate: async (path, fh, size) => {
      const h = fs.handles.get(fh);
      if (h?.kind !== "overlay") return ops.truncate(path, size);
      const loc = fs.writable(path);
      await resize(loc, h.id, size, h.file);
      if (h.orphan) h.orphan.mtime = h.orphan.ctime = new Date();
    },

    unlink: async (path) => {
      const loc = fs.writable(path);
      const n = fs.node(loc);
      if (n.type === "dir") throw new FsError("EISDIR");
      const now = Date.now();
      fs.orphanHandles(loc, n, now);
      loc.writer.overlay.set(loc.rel, { k: "x" });
      touchParent(loc, loc.rel, now);
    },

    mkdir: async (path, mode, caller) => {
      const loc = fs.writable(path);
      const own = owner(fs, loc, caller);
      if (exists(loc)) throw new FsError("EEXIST");
      const now = Date.now();
      // The kernel already applied the umask; a setgid parent passes its setgid bit on.
      const perm = (mode & 0o7777) | (own.setgid ? S_ISGID : 0);
      loc.writer.overlay.set(loc.rel, {
        k: "d",
        perm,
        ...created(own, now),
      });
      touchParent(loc, loc.rel, now);
    },

    mknod: async (path, mode, _rdev, caller) => {
      const loc = fs.writable(path);
      const own = owner(fs, loc, caller);
      if (exists(loc)) throw new FsError("EEXIST");
      const fmt = mode & S_IFMT;
      const now = Date.now();
      const attrs = { perm: mode & 0o7777, ...created(own, now) };
      if (fmt === S_IFCHR || fmt === S_IFBLK)
        throw new FsError("EPERM", "device nodes are not supported in the mount");
      if (fmt === S_IFIFO || fmt === S_IFSOCK) {
        // Usable while mounted, never pushed: Git cannot store them.
        loc.writer.overlay.set(loc.rel, { k: "n", t: fmt === S_IFIFO ? "p" : "s", ...attrs });
      } else if (fmt === S_IFREG || fmt === 0) {
        const id = await loc.writer.overlay.newContent();
        loc.writer.overlay.set(loc.rel, { k: "f", c: id, ...attrs });
      } else throw new FsError("EINVAL");
      touchParent(loc, loc.rel, now);
    },

    rmdir: async (path) => {
      const loc = fs.writable(path);
      const n = fs.node(loc);
      if (n.type !== "dir") throw new FsError("ENOTDIR");
      if (loc.writer.overlay.list(loc.rel, n).length > 0) throw new FsError("ENOTEMPTY");
      loc.writer.overlay.set(loc.rel, { k: "x" });
      touchParent(loc, loc.rel, Date.now());
    },

    rename: async (from, to) => {
      const src = fs.writable(from);
      let dst: Located | undefined;
      try {
        dst = fs.locate(to);
      } catch {
        dst = undefined;
      }
      if (dst?.repo !== src.repo) throw new FsError("EXDEV");
      const dest = fs.writable(to);
      const n = fs.node(src);
      const parent = fs.node(dest, parentOf(dest.rel));
      if (parent.type !== "dir") throw new FsError("ENOTDIR");
      if (src.rel === dest.rel) return;
      if (n.type === "dir" && dest.rel.startsWith(`${src.rel}/`)) throw new FsError("EINVAL");
      const target = exists(dest);
      if (target) {
        if (n.type === "dir" && target.type !== "dir") throw new FsError("ENOTDIR");
        if (n.type !== "dir" && target.type === "dir") throw new FsError("EISDIR");
        if (target.type === "dir" && dest.writer.overlay.list(dest.rel, target).length > 0)
          throw new FsError("ENOTEMPTY");
      }
      const now = Date.now();
      if (target) fs.orphanHandles(dest, target, now);
      src.writer.overlay.rename(src.rel, dest.rel);
      // Like Linux: the moved entry's ctime and both parents' mtime and ctime move.
      touch(dest, dest.rel, { ctime: now });
      touchParent(src, src.rel, now);
      if (parentOf(src.rel) !== parentOf(dest.rel)) touchParent(dest, dest.rel, now);
      // Open handles follow the file to its new name.
      fs.renameHandles(src.repo.key, src.rel, dest.rel);
    },

    symlink: async (target, path, caller) => {
      const loc = fs.writable(path);
      const own = owner(fs, loc, caller);
      if (exists(loc)) throw new FsError("EEXIST");
      const now = Date.now();
      loc.writer.overlay.set(loc.rel, {
        k: "l",
        target,
        ...created(own, now),
      });
      touchParent(loc, loc.rel, now);
    },

    link: async (_from, to) => {
      fs.writable(to);
      // Git has no hard links; a copy would silently diverge.
      throw new FsError("EPERM", "hard links are not supported");
    },

    // Who may chmod/chown is the kernel's check (`default_permissions`, from mode and owner).
    chmod: async (path, mode) => {
      const loc = fs.writable(path, true);
      if (fs.node(loc).type === "symlink") return;
      loc.writer.overlay.setAttrs(loc.rel, { perm: mode & 0o7777, ctime: Date.now() });
    },

    chown: async (path, uid, gid) => {
      const loc = fs.writable(path, true);
      fs.node(loc);
      const change: AttrChange = { ctime: Date.now() };
      // -1 (as the kernel's unsigned 32-bit value too) leaves that id unchanged.
      if (uid !== -1 && uid !== 0xffffffff) change.uid = uid;
      if (gid !== -1 && gid !== 0xffffffff) change.gid = gid;
      loc.writer.overlay.setAttrs(loc.rel, change);
    },

    utimens: async (path, atime, mtime) => {
      const loc = fs.writable(path, true);
      const n = fs.node(loc);
      const now = Date.now();
      const ms = (d: Date) => (Number.isFinite(d.getTime()) ? d.getTime() : now);
      const change: AttrChange = { ctime: now };
      if (atime !== undefined) change.atime = ms(atime);
      if (mtime !== undefined) change.mtime = ms(mtime);
      if (n.type === "file" && n.content !== undefined && change.mtime !== undefined) {
        // The content file's mtime is what a restart reads back (writes are not journaled).
        const file = loc.writer.overlay.contentPath(n.content);
        await utimes(file, new Date(change.atime ?? n.atime ?? n.mtime), new Date(change.mtime));
      }
      loc.writer.overlay.setAttrs(loc.rel, change);
    },

    fsync: async (path, fh) => {
      const h = fs.handles.get(fh);
      let writer = h?.kind === "overlay" ? h.writer : undefined;
      if (!writer) {
        try {
          writer = fs.locate(path)?.repo.writer;
        } catch {
          writer = undefined;
        }
      }
      if (!writer) return;
      if (h?.kind === "overlay") await h.file.datasync().catch((err) => Promise.reject(fsErrorOf(err)));
      writer.overlay.syncJournal();
      try {
        await writer.persistNow();
      } catch (err) {
        throw new FsError("EIO", (err as Error).message);
      }
    },

    flush: async () => undefined,
  };
  return ops;
}
