/**
 * The binding-independent filesystem contract. The FUSE adapter translates kernel requests
 * into these async calls; implementations return values or throw an `FsError` naming an
 * errno. Nothing here knows about FUSE, so the same filesystem serves the FUSE adapter and the SDK.
 */

/** A blob's content in a local file: `size` bytes at `offset` (files may hold many blobs). */
export interface BlobLocation {
  file: string;
  offset: number;
  size: number;
}

export type ErrnoName =
  | "ENOENT"
  | "EIO"
  | "EROFS"
  | "ENOTDIR"
  | "EISDIR"
  | "EINVAL"
  | "EBADF"
  | "EPERM"
  | "EACCES"
  | "ENOTSUP"
  | "ENODATA"
  | "ENAMETOOLONG"
  | "EEXIST"
  | "ENOTEMPTY"
  | "ENOSPC"
  | "EXDEV"
  | "EBUSY"
  | "EDQUOT"
  | "ELOOP"
  | "ESTALE";

export class FsError extends Error {
  readonly errno: ErrnoName;
  constructor(errno: ErrnoName, message?: string) {
    // An answer, not a fault: no stack to capture (a walk gets thousands of ENOENTs).
    const limit = Error.stackTraceLimit;
    Error.stackTraceLimit = 0;
    super(message ?? errno);
    Error.stackTraceLimit = limit;
    this.name = "FsError";
    this.errno = errno;
  }
}

export interface Stat {
  /** Full st_mode including the file type bits (e.g. 0o100644, 0o40755, 0o120777). */
  mode: number;
  size: number;
  uid: number;
  gid: number;
  mtime: Date;
  /** Defaults to `mtime` when absent. */
  atime?: Date;
  /** Defaults to `mtime` when absent. */
  ctime?: Date;
  nlink: number;
  /**
   * A regular file whose content is a committed blob: it changes only by a write through this
   * filesystem or by a change announced on `onChange`, so the kernel may open it without asking.
   */
  committed?: boolean;
  /** The committed blob's object id, when `committed`. */
  blob?: string;
}

/** Who asked: the requesting process's effective uid and gid (owner of what it creates). */
export interface Caller {
  uid: number;
  gid: number;
}

/**
 * Something the kernel (or an SDK subscriber) may hold changed below `path`, for a reason other
 * than a call through this filesystem: a poll brought another writer's commit, a rebase rewrote
 * files, a repo was opened or closed. `recursive`: anything below `path` may have changed too.
 */
export interface Change {
  path: string;
  recursive: boolean;
}
export type ChangeListener = (changes: Change[]) => void;

export interface StatFs {
  bsize: number;
  blocks: number;
  bfree: number;
  bavail: number;
  files: number;
  ffree: number;
  namemax: number;
}

/** A directory entry with its type, and its attributes when they are known without waiting. */
export interface DirEntry {
  name: string;
  /** File type bits of st_mode (S_IFREG, S_IFDIR, S_IFLNK), for d_type. */
  mode: number;
  /**
   * Present when known at once. Absent for a file whose size still has to be loaded (a Git
   * server without object-info): a READDIRPLUS reply then leaves the entry's attributes out
   * (nodeid 0), so `ls`, `find -name` and `rg --files` never wait for content.
   */
  stat?: Stat;
}

export interface FileSystem {
  getattr(path: string): Promise<Stat>;
  readdir(path: string): Promise<string[]>;
  /**
   * A listing with types (d_type, READDIRPLUS); the adapter should prefer it over `readdir`.
   * `ahead`: listed before anyone asked (the FUSE face lists subdirectories of a listed
   * directory ahead of the kernel), so it is not a reader's listing and starts no prefetch.
   */
  readdirEntries?(path: string, opts?: { ahead?: boolean }): Promise<DirEntry[]>;
  /** A reader listed `path` from a listing made `ahead` (the face kept it and answered). */
  listedByReader?(path: string): void;
  readlink(path: string): Promise<string>;
  /** Returns a file handle number passed to read/release. */
  open(path: string, flags: number): Promise<number>;
  read(path: string, fh: number, length: number, position: number): Promise<Buffer>;
  release(path: string, fh: number): Promise<void>;
  statfs(path: string): Promise<StatFs>;
  /** The mutating calls; paths outside a writable repo give EROFS (EPERM at `/` and orgs). */
  writes: WriteOps;
  /** Attributes through an open handle (fstat), valid also after the path was unlinked. */
  fgetattr?(path: string, fh: number): Promise<Stat>;
  /** Subscribes to changes made by others; returns the unsubscribe function. */
  onChange?(listener: ChangeListener): () => void;
  /**
   * Where blob `oid` is held locally and verified, for a face that can read it directly;
   * undefined while it is not local. The file may go (the cache evicts it): reads then come
   * back through `read`.
   */
  localBlob?(oid: string): BlobLocation | undefined;
  /** A read the face answered from `localBlob`'s file after it reached the face's JavaScript. */
  readHandedBack?(): void;
  /** Subscribes to blobs becoming local (`localBlob` may name them now); returns the unsubscribe function. */
  onBlobsLocal?(listener: (oids: string[]) => void): () => void;
}

/** The mutating calls of the workspace filesystem (src/workspace/write-ops.ts). */
export interface WriteOps {
  create(path: string, mode: number, caller?: Caller): Promise<number>;
  /** Returns the number of bytes written. */
  write(path: string, fh: number, data: Buffer, position: number): Promise<number>;
  truncate(path: string, size: number): Promise<void>;
  ftruncate(path: string, fh: number, size: number): Promise<void>;
  unlink(path: string): Promise<void>;
  mkdir(path: string, mode: number, caller?: Caller): Promise<void>;
  /** fifos and unix sockets (local-only); devices are EPERM. Optional until implemented. */
  mknod?(path: string, mode: number, rdev: number, caller?: Caller): Promise<void>;
  rmdir(path: string): Promise<void>;
  rename(from: string, to: string): Promise<void>;
  symlink(target: string, path: string, caller?: Caller): Promise<void>;
  link(from: string, to: string): Promise<void>;
  chmod(path: string, mode: number): Promise<void>;
  /** -1 leaves that id unchanged. */
  chown(path: string, uid: number, gid: number): Promise<void>;
  /** `undefined` leaves that time unchanged (UTIME_OMIT); the adapter resolves UTIME_NOW. */
  utimens(path: string, atime: Date | undefined, mtime: Date | undefined): Promise<void>;
  fsync(path: string, fh: number, datasync: boolean): Promise<void>;
  flush(path: string, fh: number): Promise<void>;
}

export const S_IFMT = 0o170000;
export const S_IFDIR = 0o040000;
export const S_IFREG = 0o100000;
export const S_IFLNK = 0o120000;

/** Access-mode bits of open(2) flags: O_RDONLY 0, O_WRONLY 1, O_RDWR 2. */
export function wantsWrite(flags: number): boolean {
  // O_TRUNC (0o1000) and O_APPEND (0o2000) also imply modification.
  return (flags & 3) !== 0 || (flags & 0o1000) !== 0;
}
