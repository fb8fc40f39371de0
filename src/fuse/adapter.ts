/**
 * The only file that knows fuse-native. It turns kernel callbacks into calls on a
 * `FileSystem` and errors into negative errnos, and owns the mount options.
 */
import { createRequire } from "node:module";
import { MesaError } from "../errors.js";
import { type FileSystem, FsError, type Stat, type WriteOps } from "./filesystem.js";

const require = createRequire(import.meta.url);

// fuse-native ships no types; this is the subset used here.
type Cb = (...args: unknown[]) => void;
interface FuseInstance {
  mount(cb: (err: Error | null) => void): void;
  unmount(cb: (err: Error | null) => void): void;
}
interface FuseClass {
  new (mnt: string, ops: Record<string, unknown>, opts: Record<string, unknown>): FuseInstance;
  unmount(mnt: string, cb: (err: Error | null) => void): void;
  [errno: string]: unknown;
}

let fuseClass: FuseClass | undefined;
function loadFuse(): FuseClass {
  if (!fuseClass) {
    try {
      fuseClass = require("fuse-native") as FuseClass;
    } catch (err) {
      throw new MesaError("FUSE", `the FUSE binding could not be loaded (${(err as Error).message})`, {
        hint: "install the system packages fuse3 and libfuse2 (apt-get install fuse3 libfuse2)",
        cause: err,
      });
    }
  }
  return fuseClass;
}

/** Why the FUSE binding cannot load here, or undefined when it can (for `mesa doctor`). */
export function fuseBindingProblem(): string | undefined {
  try {
    loadFuse();
    return undefined;
  } catch (err) {
    return (err as Error).message;
  }
}

/** Seconds the kernel may cache entries and attributes: committed content never changes. */
const CACHE_TIMEOUT_SECONDS = 3600;
/** Safety net: an operation that never answers is failed by the binding after this long. */
const OP_TIMEOUT_MS = 120_000;

function errnoOf(Fuse: FuseClass, err: unknown): number {
  if (err instanceof FsError) {
    const name = err.errno === "ENOTSUP" ? "EOPNOTSUPP" : err.errno;
    const n = Fuse[name];
    if (typeof n === "number") return n;
  }
  return Fuse.EIO as number;
}

function statObject(s: Stat): Record<string, unknown> {
  return {
    mode: s.mode,
    uid: s.uid,
    gid: s.gid,
    size: s.size,
    nlink: s.nlink,
    mtime: s.mtime,
    atime: s.atime ?? s.mtime,
    ctime: s.ctime ?? s.mtime,
    blksize: 4096,
    blocks: Math.ceil(s.size / 512),
  };
}

export interface MountOptions {
  uid: number;
  gid: number;
  /**
   * The filesystem changes under the kernel (local writes, others' pushes): short attribute
   * and entry timeouts, and `auto_cache` (page cache dropped when mtime/size change) instead
   * of `kernel_cache`.
   */
  writable?: boolean;
  /** Called with any error a FileSystem method threw that is not an FsError (a bug or I/O). */
  onUnexpectedError?: (op: string, path: string, err: unknown) => void;
}

export interface FuseMount {
  readonly mountPoint: string;
  unmount(): Promise<void>;
}

/** Lazily unmounts whatever is mounted at `mountPoint` (a stale mount of a dead daemon). */
export function forceUnmount(mountPoint: string): Promise<void> {
  const Fuse = loadFuse();
  return new Promise((resolve, reject) => Fuse.unmount(mountPoint, (err) => (err ? reject(err) : resolve())));
}

/** Seconds the kernel may cache attributes of a writable mount (others' edits show after this). */
const WRITABLE_CACHE_TIMEOUT_SECONDS = 1;

type Fail = (op: string, path: string, cb: Cb, err: unknown, ...rest: unknown[]) => void;

/**
 * fuse-native turns timespecs into milliseconds, so UTIME_OMIT (and UTIME_NOW, which the
 * kernel resolves before libfuse2 sees it) arrives as this value: the time was not given.
 */
const UTIME_OMIT_MS = 1073;

function utimeArg(ms: number): Date | undefined {
  return ms === UTIME_OMIT_MS ? undefined : new Date(ms);
}

/** Kernel callbacks of the mutating operations, routed to a writable filesystem. */
function writeCallbacks(w: WriteOps, fail: Fail): Record<string, unknown> {
  const ok = (op: string, path: string, cb: Cb, p: Promise<unknown>) =>
    p.then(
      () => cb(0),
      (err) => fail(op, path, cb, err),
    );
  return {
    create(path: string, mode: number, cb: Cb) {
      w.create(path, mode).then(
        (fh) => cb(0, fh),
        (err) => fail("create", path, cb, err),
      );
    },
    write(path: string, fh: number, buf: Buffer, len: number, pos: number, cb: Cb) {
      // The binding reuses `buf` after this call returns: copy it first.
      const data = Buffer.from(buf.subarray(0, len));
      w.write(path, fh, data, pos).then(
        (n) => cb(n),
        (err) => fail("write", path, cb, err),
      );
    },
    truncate: (path: string, size: number, cb: Cb) => ok("truncate", path, cb, w.truncate(path, size)),
    ftruncate: (path: string, fh: number, size: number, cb: Cb) =>
      ok("ftruncate", path, cb, w.ftruncate(path, fh, size)),
    unlink: (path: string, cb: Cb) => ok("unlink", path, cb, w.unlink(path)),
    mkdir: (path: string, mode: number, cb: Cb) => ok("mkdir", path, cb, w.mkdir(path, mode)),
    rmdir: (path: string, cb: Cb) => ok("rmdir", path, cb, w.rmdir(path)),
    rename: (from: string, to: string, cb: Cb) => ok("rename", from, cb, w.rename(from, to)),
    symlink: (target: string, path: string, cb: Cb) => ok("symlink", path, cb, w.symlink(target, path)),
    link: (from: string, to: string, cb: Cb) => ok("link", to, cb, w.link(from, to)),
    chmod: (path: string, mode: number, cb: Cb) => ok("chmod", path, cb, w.chmod(path, mode)),
    chown: (path: string, uid: number, gid: number, cb: Cb) => ok("chown", path, cb, w.chown(path, uid, gid)),
    // fuse-native passes the access time in both arguments (its C side drops the mtime).
    utimens: (path: string, atime: number, mtime: number, cb: Cb) =>
      ok("utimens", path, cb, w.utimens(path, utimeArg(atime), utimeArg(mtime))),
    mknod: (path: string, mode: number, dev: number, cb: Cb) =>
      w.mknod
        ? ok("mknod", path, cb, w.mknod(path, mode, dev))
        : fail("mknod", path, cb, new FsError("EPERM")),
    fsync: (path: string, datasync: number, fh: number, cb: Cb) =>
      ok("fsync", path, cb, w.fsync(path, fh, Boolean(datasync))),
    flush: (path: string, fh: number, cb: Cb) => ok("flush", path, cb, w.flush(path, fh)),
    // Git stores no extended attributes: "not supported" (tools carry on), not "read-only".
    setxattr: (path: string, _n: string, _v: Buffer, _p: number, _f: number, cb: Cb) =>
      fail("setxattr", path, cb, new FsError("ENOTSUP")),
    removexattr: (path: string, _n: string, cb: Cb) => fail("removexattr", path, cb, new FsError("ENOTSUP")),
  };
}

/** Mounts `fs` at `mountPoint`; resolves once the kernel has sent FUSE init. */
export function mountFileSystem(mountPoint: string, fs: FileSystem, opts: MountOptions): Promise<FuseMount> {
  const Fuse = loadFuse();
  const fail = (op: string, path: string, cb: Cb, err: unknown, ...rest: unknown[]) => {
    if (!(err instanceof FsError)) opts.onUnexpectedError?.(op, path, err);
    cb(errnoOf(Fuse, err), ...rest);
  };
  const erofs =
    (op: string) =>
    (path: string, ...args: unknown[]) => {
      const cb = args[args.length - 1] as Cb;
      fs.mutate(op, path).then(
        () => cb(0),
        (err) => fail(op, path, cb, err),
      );
    };

  const ops: Record<string, unknown> = {
    getattr(path: string, cb: Cb) {
      fs.getattr(path).then(
        (s) => cb(0, statObject(s)),
        (err) => fail("getattr", path, cb, err),
      );
    },
    fgetattr(path: string, fd: number, cb: Cb) {
      (fs.fgetattr ? fs.fgetattr(path, fd) : fs.getattr(path)).then(
        (s) => cb(0, statObject(s)),
        (err) => fail("fgetattr", path, cb, err),
      );
    },
    readdir(path: string, cb: Cb) {
      fs.readdir(path).then(
        (names) => cb(0, [".", "..", ...names]),
        (err) => fail("readdir", path, cb, err),
      );
    },
    readlink(path: string, cb: Cb) {
      fs.readlink(path).then(
        (target) => cb(0, target),
        (err) => fail("readlink", path, cb, err),
      );
    },
    open(path: string, flags: number, cb: Cb) {
      fs.open(path, flags).then(
        (fh) => cb(0, fh),
        (err) => fail("open", path, cb, err),
      );
    },
    read(path: string, fh: number, buf: Buffer, len: number, pos: number, cb: Cb) {
      fs.read(path, fh, len, pos).then(
        (data) => cb(data.copy(buf, 0, 0, Math.min(len, data.length))),
        (err) => fail("read", path, cb, err),
      );
    },
    release(path: string, fh: number, cb: Cb) {
      fs.release(path, fh).then(
        () => cb(0),
        (err) => fail("release", path, cb, err),
      );
    },
    statfs(path: string, cb: Cb) {
      fs.statfs(path).then(
        (s) => cb(0, { ...s, frsize: s.bsize, favail: s.ffree }),
        (err) => fail("statfs", path, cb, err),
      );
    },
    write(path: string, _fh: number, _buf: Buffer, _len: number, _pos: number, cb: Cb) {
      fs.mutate("write", path).then(
        () => cb(0),
        (err) => fail("write", path, cb, err),
      );
    },
    create: erofs("create"),
    unlink: erofs("unlink"),
    rename: erofs("rename"),
    link: erofs("link"),
    symlink(_target: string, path: string, cb: Cb) {
      erofs("symlink")(path, cb);
    },
    mkdir: erofs("mkdir"),
    rmdir: erofs("rmdir"),
    truncate: erofs("truncate"),
    ftruncate(path: string, _fd: number, _size: number, cb: Cb) {
      erofs("ftruncate")(path, cb);
    },
    chmod: erofs("chmod"),
    chown: erofs("chown"),
    utimens: erofs("utimens"),
    mknod: erofs("mknod"),
    setxattr(path: string, _n: string, _v: Buffer, _p: number, _f: number, cb: Cb) {
      erofs("setxattr")(path, cb);
    },
    removexattr: erofs("removexattr"),
  };
  if (fs.writes) Object.assign(ops, writeCallbacks(fs.writes, fail));
  const cacheSeconds = opts.writable ? WRITABLE_CACHE_TIMEOUT_SECONDS : CACHE_TIMEOUT_SECONDS;

  const fuse = new Fuse(mountPoint, ops, {
    mkdir: true,
    allowOther: true,
    // The kernel checks permissions (and sticky directories) from the modes and owners getattr gives.
    defaultPermissions: true,
    autoUnmount: true,
    kernelCache: !opts.writable,
    autoCache: Boolean(opts.writable),
    entryTimeout: cacheSeconds,
    attrTimeout: cacheSeconds,
    fsname: "mesa",
    subtype: "mesa",
    timeout: OP_TIMEOUT_MS,
  });

  return new Promise((resolve, reject) => {
    fuse.mount((err) => {
      if (err) {
        reject(
          new MesaError("FUSE", `could not mount at ${mountPoint}: ${err.message}`, {
            hint: "run `mesa doctor` to check /dev/fuse, fusermount and /etc/fuse.conf",
            cause: err,
          }),
        );
        return;
      }
      let unmounted: Promise<void> | undefined;
      resolve({
        mountPoint,
        unmount() {
          unmounted ??= new Promise<void>((res, rej) => fuse.unmount((e) => (e ? rej(e) : res())));
          return unmounted;
        },
      });
    });
  });
}
