/**
 * `MesaFileSystem`: the daemon's filesystem (the same `FileSystem`/`WriteOps` the FUSE adapter
 * serves) called in-process. Paths are `/<org>/<repo>/…`; symlinks are followed here, as the
 * kernel would; errors are `MesaFsError`s with Node's codes. Writes go to the repo's overlay
 * and are pushed as its working change exactly as the daemon pushes them.
 */
import { rm } from "node:fs/promises";
import { posix } from "node:path";
import type { Session } from "../daemon/wiring.js";
import { isMesaError } from "../errors.js";
import {
  type Change,
  type FileSystem,
  FsError,
  S_IFDIR,
  S_IFLNK,
  S_IFMT,
  type Stat,
  type WriteOps,
} from "../workspace/fs-api.js";
import type { RepoFileSystem } from "../workspace/repos.js";
import { MesaBash, type MesaBashOptions } from "./bash.js";
import type { Client } from "./client.js";
import { MesaFsError } from "./errors.js";
import { FsBookmarks, FsChanges } from "./fs-vcs.js";

const O_WRONLY = 1;
const O_TRUNC = 0o1000;
const CHUNK = 1 << 20;
const MAX_SYMLINKS = 40;

export interface FsStat {
  isFile: boolean;
  isDirectory: boolean;
  /** Always false from `stat` (it follows symlinks). */
  isSymbolicLink: boolean;
  /** Full st_mode, e.g. 0o100644. */
  mode: number;
  size: number;
  mtime: Date;
  /** Milliseconds since the epoch. */
  mtimeMs: number;
}

/** Something below `path` changed because of others (a poll, a rebase, a checkout). */
export interface FsChangeEvent {
  path: string;
  /** Descendants of `path` may have changed too. */
  recursive: boolean;
}

export interface MountParts {
  org: string;
  client: Client;
  rfs: RepoFileSystem;
  session: Session;
  /** The mount's own temp dir (overlay); removed on close when everything was pushed. */
  dataDir: string;
  /** When the mount's token expires: every call fails from then on. */
  expiresAt: Date;
}

function split(path: string): string[] {
  return path.split("/").filter((p) => p.length > 0);
}

function child(dir: string, name: string): string {
  return dir === "/" ? `/${name}` : `${dir}/${name}`;
}

function kind(st: Stat): "dir" | "symlink" | "file" {
  const t = st.mode & S_IFMT;
  return t === S_IFDIR ? "dir" : t === S_IFLNK ? "symlink" : "file";
}

function toStat(st: Stat): FsStat {
  const k = kind(st);
  return {
    isFile: k === "file",
    isDirectory: k === "dir",
    isSymbolicLink: k === "symlink",
    mode: st.mode,
    size: st.size,
    mtime: st.mtime,
    mtimeMs: st.mtime.getTime(),
  };
}

function bytes(data: Uint8Array | string): Buffer {
  return typeof data === "string"
    ? Buffer.from(data, "utf8")
    : Buffer.from(data.buffer, data.byteOffset, data.byteLength);
}

function isErrno(err: unknown, ...codes: string[]): boolean {
  return (
    (err instanceof FsError && codes.includes(err.errno)) ||
    (err instanceof MesaFsError && codes.includes(err.code))
  );
}

export class MesaFileSystem {
  /** The organization every path starts with: `/<org>/<repo>/…`. */
  readonly org: string;
  /** When the mount's token expires; from then on every call fails with EACCES. */
  readonly expiresAt: Date;
  readonly changes: FsChanges;
  readonly bookmarks: FsBookmarks;
  private readonly fs: FileSystem;
  private readonly ops: WriteOps;
  private closing?: Promise<void>;
  private readonly unsubscribers = new Set<() => void>();

  /** @internal Use `mesa.fs.mount()`. */
  constructor(private readonly parts: MountParts) {
    this.org = parts.org;
    this.expiresAt = parts.expiresAt;
    this.fs = parts.rfs.fs;
    this.ops = parts.rfs.fs.writes;
    this.changes = new FsChanges(parts, (syscall, path) => this.usable(syscall, path));
    this.bookmarks = new FsBookmarks(parts, (syscall, path) => this.usable(syscall, path));
  }

  // ---- plumbing -------------------------------------------------------------------------

  private usable(syscall: string, path: string): void {
    if (this.closing) throw new MesaFsError("EBADF", syscall, path, "the filesystem is closed");
    if (Date.now() >= this.expiresAt.getTime())
      throw new MesaFsError(
        "EACCES",
        syscall,
        path,
        `the mount's access token expired at ${this.expiresAt.toISOString()}; mount again`,
      );
  }

  private abs(syscall: string, path: string): string {
    if (typeof path !== "string" || !path.startsWith("/"))
      throw new MesaFsError("EINVAL", syscall, String(path), "paths are absolute: /<org>/<repo>/…");
    return posix.normalize(path).replace(/(.)\/+$/, "$1");
  }

  /** Runs one call: checks the mount is usable, turns internal errors into MesaFsError. */
  private async op<T>(syscall: string, path: string, fn: (abs: string) => Promise<T>): Promise<T> {
    this.usable(syscall, path);
    const abs = this.abs(syscall, path);
    try {
      return await fn(abs);
    } catch (err) {
      if (err instanceof MesaFsError) throw err;
      if (err instanceof FsError)
        throw new MesaFsError(err.errno, syscall, path, err.message !== err.errno ? err.message : undefined);
      if (isMesaError(err)) throw new MesaFsError("EIO", syscall, path, err.message);
      throw err;
    }
  }

  /** Resolves symlinks (and, unless `followLast` is false, the last component too). */
  private async real(path: string, followLast = true): Promise<string> {
    let parts = split(path);
    let cur = "/";
    let hops = 0;
    for (let i = 0; i < parts.length; i++) {
      const next = child(cur, parts[i]);
      const last = i === parts.length - 1;
      if (last && !followLast) return next;
      const st = await this.fs.getattr(next);
      const k = kind(st);
      if (k === "symlink") {
        if (++hops > MAX_SYMLINKS) throw new FsError("ELOOP");
        const target = await this.fs.readlink(next);
        parts = [...split(posix.resolve(cur, target)), ...parts.slice(i + 1)];
        cur = "/";
        i = -1;
        continue;
      }
      if (!last && k !== "dir") throw new FsError("ENOTDIR");
      cur = next;
    }
    return cur;
  }

  /** Where a write to `path` lands: the file it names (through symlinks) or a new entry. */
  private async target(path: string): Promise<string> {
    try {
      return await this.real(path);
    } catch (err) {
      if (!isErrno(err, "ENOENT") || path === "/") throw err;
      return child(await this.real(posix.dirname(path)), posix.basename(path));
    }
  }

  private async tryGetattr(path: string): Promise<Stat | undefined> {
    try {
      return await this.fs.getattr(path);
    } catch (err) {
      if (isErrno(err, "ENOENT")) return undefined;
      throw err;
    }
  }

  private async readReal(p: string): Promise<Buffer> {
    const st = await this.fs.getattr(p);
    if (kind(st) === "dir") throw new FsError("EISDIR");
    const fh = await this.fs.open(p, 0);
    try {
      const chunks: Buffer[] = [];
      for (let pos = 0; ; ) {
        const b = await this.fs.read(p, fh, CHUNK, pos);
        if (b.length === 0) break;
        chunks.push(b);
        pos += b.length;
      }
      return Buffer.concat(chunks);
    } finally {
      await this.fs.release(p, fh);
    }
  }

  private async writeReal(p: string, data: Buffer, append: boolean): Promise<void> {
    const st = await this.tryGetattr(p);
    if (st && kind(st) === "dir") throw new FsError("EISDIR");
    const fh = st
      ? await this.fs.open(p, append ? O_WRONLY : O_WRONLY | O_TRUNC)
      : await this.ops.create(p, 0o644);
    try {
      let pos = append && st ? st.size : 0;
      for (let off = 0; off < data.length; ) {
        const n = await this.ops.write(p, fh, data.subarray(off, off + CHUNK), pos);
        if (n <= 0) throw new FsError("EIO", "short write");
        off += n;
        pos += n;
      }
    } finally {
      await this.fs.release(p, fh);
    }
  }

  // ---- bytes ----------------------------------------------------------------------------

  /** The file's bytes (decode them yourself). */
  read(path: string): Promise<Buffer> {
    return this.op("open", path, async (abs) => this.readReal(await this.real(abs)));
  }

  /** Replaces the file's contents, creating it if missing; the parent must exist. */
  write(path: string, content: Uint8Array | string): Promise<void> {
    return this.op("open", path, async (abs) =>
      this.writeReal(await this.target(abs), bytes(content), false),
    );
  }

  /** Appends to the file, creating it if missing. */
  append(path: string, content: Uint8Array | string): Promise<void> {
    return this.op("open", path, async (abs) => this.writeReal(await this.target(abs), bytes(content), true));
  }

  // ---- metadata and traversal -----------------------------------------------------------

  /** Whether the path exists (following symlinks). */
  exists(path: string): Promise<boolean> {
    return this.op("access", path, async (abs) => {
      try {
        await this.real(abs);
        return true;
      } catch (err) {
        if (isErrno(err, "ENOENT", "ENOTDIR", "ELOOP")) return false;
        throw err;
      }
    });
  }

  stat(path: string): Promise<FsStat> {
    return this.op("stat", path, async (abs) => toStat(await this.fs.getattr(await this.real(abs))));
  }

  /** Like `stat`, but a symlink is described itself. */
  lstat(path: string): Promise<FsStat> {
    return this.op("lstat", path, async (abs) => toStat(await this.fs.getattr(await this.real(abs, false))));
  }

  /** Entry names, in no particular order. */
  readdir(path: string): Promise<string[]> {
    return this.op("scandir", path, async (abs) => this.fs.readdir(await this.real(abs)));
  }

  /** The canonical path: symlinks and `..` resolved. */
  realpath(path: string): Promise<string> {
    return this.op("realpath", path, (abs) => this.real(abs));
  }

  readlink(path: string): Promise<string> {
    return this.op("readlink", path, async (abs) => this.fs.readlink(await this.real(abs, false)));
  }

  /** Joins and normalizes `path` against `base` without touching the filesystem. */
  resolvePath(base: string, path: string): string {
    return posix.resolve(base, path);
  }

  // ---- mutations ------------------------------------------------------------------------

  /** Creates a directory; `recursive` creates parents and accepts an existing directory. */
  mkdir(path: string, opts: { recursive?: boolean } = {}): Promise<void> {
    return this.op("mkdir", path, async (abs) => {
      if (!opts.recursive) {
        await this.ops.mkdir(await this.real(abs, false), 0o755);
        return;
      }
      let cur = "/";
      const parts = split(abs);
      for (let i = 0; i < parts.length; i++) {
        const next = child(cur, parts[i]);
        let real: string | undefined;
        try {
          real = await this.real(next);
        } catch (err) {
          if (!isErrno(err, "ENOENT")) throw err;
        }
        if (real === undefined) {
          await this.ops.mkdir(await this.real(next, false), 0o755);
          cur = next;
          continue;
        }
        if (kind(await this.fs.getattr(real)) !== "dir")
          throw new FsError(i === parts.length - 1 ? "EEXIST" : "ENOTDIR");
        cur = real;
      }
    });
  }

  private async remove(p: string, recursive: boolean): Promise<void> {
    const st = await this.fs.getattr(p);
    if (kind(st) !== "dir") return this.ops.unlink(p);
    if (!recursive) throw new FsError("EISDIR", "removing a directory needs recursive");
    for (const name of await this.fs.readdir(p)) await this.remove(child(p, name), true);
    await this.ops.rmdir(p);
  }

  /** Removes a file or (with `recursive`) a directory; `force` ignores a missing path. */
  rm(path: string, opts: { recursive?: boolean; force?: boolean } = {}): Promise<void> {
    return this.op("rm", path, async (abs) => {
      let p: string;
      try {
        p = await this.real(abs, false);
        await this.fs.getattr(p);
      } catch (err) {
        if (opts.force && isErrno(err, "ENOENT")) return;
        throw err;
      }
      await this.remove(p, opts.recursive === true);
    });
  }

  private async copy(src: string, dest: string, recursive: boolean): Promise<void> {
    const st = await this.fs.getattr(src);
    const k = kind(st);
    const existing = await this.tryGetattr(dest);
    if (k === "symlink") {
      if (existing && kind(existing) === "dir") throw new FsError("EISDIR");
      if (existing) await this.ops.unlink(dest);
      await this.ops.symlink(await this.fs.readlink(src), dest);
      return;
    }
    if (k === "dir") {
      if (!recursive) throw new FsError("EISDIR", "copying a directory needs recursive");
      if (dest === src || dest.startsWith(`${src}/`))
        throw new FsError("EINVAL", "cannot copy a directory into itself");
      if (existing && kind(existing) !== "dir") throw new FsError("ENOTDIR");
      if (!existing) await this.ops.mkdir(dest, st.mode & 0o7777);
      for (const name of await this.fs.readdir(src))
        await this.copy(child(src, name), child(dest, name), true);
      return;
    }
    if (existing && kind(existing) === "dir") throw new FsError("EISDIR");
    await this.writeReal(dest, await this.readReal(src), false);
    if ((st.mode & 0o111) !== 0) await this.ops.chmod(dest, st.mode & 0o7777);
  }

  /** Copies a file, a symlink (as a link) or, with `recursive`, a directory. */
  cp(src: string, dest: string, opts: { recursive?: boolean } = {}): Promise<void> {
    return this.op("cp", src, async (abs) => {
      const to = this.abs("cp", dest);
      await this.copy(await this.real(abs, false), await this.real(to, false), opts.recursive === true);
    });
  }

  /** Moves or renames; across repos it copies and removes. */
  mv(src: string, dest: string): Promise<void> {
    return this.op("rename", src, async (abs) => {
      const from = await this.real(abs, false);
      const to = await this.real(this.abs("rename", dest), false);
      try {
        await this.ops.rename(from, to);
      } catch (err) {
        if (!isErrno(err, "EXDEV")) throw err;
        await this.copy(from, to, true);
        await this.remove(from, true);
      }
    });
  }

  /** Sets permission bits (only the executable bit reaches the server). */
  chmod(path: string, mode: number): Promise<void> {
    return this.op("chmod", path, async (abs) => this.ops.chmod(await this.real(abs), mode));
  }

  /** Creates a symlink at `link`; a relative `target` resolves against link's directory. */
  symlink(target: string, link: string): Promise<void> {
    return this.op("symlink", link, async (abs) => this.ops.symlink(target, await this.real(abs, false)));
  }

  /** Sets access and modification times: milliseconds since the epoch (or Dates). */
  utimes(path: string, atime: number | Date, mtime: number | Date): Promise<void> {
    const date = (t: number | Date) => (t instanceof Date ? t : new Date(t));
    return this.op("utime", path, async (abs) =>
      this.ops.utimens(await this.real(abs), date(atime), date(mtime)),
    );
  }

  /** Hard links are not supported (Git has none): always throws ENOTSUP. */
  async link(existingPath: string, _newPath: string): Promise<void> {
    this.usable("link", existingPath);
    throw new MesaFsError("ENOTSUP", "link", existingPath, "hard links are not supported");
  }

  // ---- shell, subscriptions, lifetime ---------------------------------------------------

  /** An isolated bash (just-bash) over this filesystem: no host shell, no host environment. */
  bash(opts: MesaBashOptions = {}): MesaBash {
    return new MesaBash(this, opts);
  }

  /**
   * Calls `handler` for every path that others' changes (polls of the followed bookmark,
   * rebases, checkouts) changed, once the new state is visible here. Returns the unsubscribe.
   */
  subscribe(handler: (event: FsChangeEvent) => void): () => void {
    const feed = (changes: Change[]) => {
      for (const c of changes) handler({ path: c.path, recursive: c.recursive });
    };
    const off = this.parts.rfs.writes.onChange(feed);
    this.unsubscribers.add(off);
    return () => {
      off();
      this.unsubscribers.delete(off);
    };
  }

  /** Waits until every write so far is pushed (all writable repos). */
  async flush(): Promise<void> {
    this.usable("flush", "/");
    for (const w of this.parts.rfs.writes.status())
      if ("ref" in w)
        await this.parts.rfs.writes.flush(w.org, w.repo).catch((err: Error) => {
          throw new MesaFsError("EIO", "flush", `/${w.org}/${w.repo}`, err.message);
        });
  }

  /**
   * Pushes pending writes (bounded), then stops polling and releases everything. If a push
   * fails the local data is kept and the error names where.
   */
  close(): Promise<void> {
    this.closing ??= (async () => {
      for (const off of this.unsubscribers) off();
      this.unsubscribers.clear();
      const failed = await this.parts.rfs.writes.stop();
      await this.parts.session.close();
      if (failed.length > 0)
        throw new MesaFsError(
          "EIO",
          "close",
          "/",
          `the writes to ${failed.join(", ")} could not be pushed; they are kept in ${this.parts.dataDir}`,
        );
      await rm(this.parts.dataDir, { recursive: true, force: true });
    })();
    return this.closing;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}
