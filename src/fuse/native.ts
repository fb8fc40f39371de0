/**
 * Loads mesa's libfuse3 binding (native/mesa_fuse.c): the binary built in this checkout
 * (build/Release) or the one shipped in the package (prebuilds/linux-<arch>).
 */
import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";
import { MesaError } from "../errors.js";
import { packageRoot } from "../package-root.js";

/** Operation codes of the binding's dispatch calls (native/mesa_fuse.c keeps the same list). */
export const Op = {
  INIT: 1,
  ENDED: 2,
  LOOKUP: 3,
  FORGET: 4,
  GETATTR: 5,
  SETATTR: 6,
  READLINK: 7,
  MKNOD: 8,
  MKDIR: 9,
  UNLINK: 10,
  RMDIR: 11,
  SYMLINK: 12,
  RENAME: 13,
  LINK: 14,
  OPEN: 15,
  READ: 16,
  WRITE: 17,
  FLUSH: 18,
  RELEASE: 19,
  FSYNC: 20,
  READDIR: 21,
  STATFS: 22,
  CREATE: 23,
  SETXATTR: 24,
  REMOVEXATTR: 25,
  LOOKUPS: 26,
  /** The binding answered a readdir from a listing it kept (no reply expected). */
  LISTED: 27,
} as const;

/** Numbers per entry in attribute arrays: ino, mode, size, uid, gid, nlink, atime, mtime, ctime (ms). */
export const ATTR_FIELDS = 9;

/** fuse_file_info bits for replyOpen/replyCreate. */
export const OPEN_KEEP_CACHE = 1;
export const OPEN_DIRECT_IO = 2;
export const OPEN_NOFLUSH = 4;

declare const sessionBrand: unique symbol;
export type Session = { readonly [sessionBrand]: true };
/** A request handle: valid until exactly one reply function was called with it. */
export type Req = number;

type Attr = [number, number, number, number, number, number, number, number, number];
/** A directory's listing as the binding keeps it (`dirFill`, `prefill`). */
type Listing = [names: string[], attrs: Float64Array, entryTimeout: number, attrTimeout: number];

export interface Binding {
  version(): number;
  mount(
    mountPoint: string,
    args: string[],
    dispatch: (op: number, req: Req, ino: number, ...args: never[]) => void,
    maxThreads: number,
    /** 1: the kernel opens files without asking (see MountOptions.kernelOpens). */
    kernelOpens: number,
  ): Session;
  exit(session: Session): void;
  replyErr(req: Req, errno: number): void;
  replyEntry(req: Req, ...attrAndTimeouts: [...Attr, number, number]): void;
  replyAttr(req: Req, ...attrAndTimeout: [...Attr, number]): void;
  replyCreate(req: Req, ...rest: [...Attr, number, number, number, number]): void;
  replyOpen(req: Req, fh: number, bits: number): void;
  replyBuf(req: Req, data: Buffer): void;
  replyWrite(req: Req, count: number): void;
  replyReadlink(req: Req, target: string): void;
  replyStatfs(
    req: Req,
    bsize: number,
    blocks: number,
    bfree: number,
    bavail: number,
    files: number,
    ffree: number,
    namemax: number,
  ): void;
  /**
   * `dirHandle` 0: the kernel opened the directory itself; the listing is kept by `dirIno`
   * and, while `gen` (read with `generation` before the listing was made) is current, answers
   * readdirs and lookups in that directory without JavaScript.
   */
  dirFill(
    req: Req,
    dirHandle: number,
    dirIno: number,
    parentIno: number,
    ...rest: [...Listing, size: number, off: number, plus: number, gen: number]
  ): void;
  /** Keeps a listing before the kernel asks (as dirFill does); false when `gen` is no longer current. */
  prefill(session: Session, dirIno: number, parentIno: number, ...rest: [...Listing, gen: number]): boolean;
  /** Advances whenever a name or attribute may have changed (a mutating request, an invalidation). */
  generation(session: Session): number;
  /** Requests handed to JavaScript that its event loop has not taken up yet. */
  queued(session: Session): number;
  /** Lookups the binding answered from its kept listings (counted since the mount). */
  lookupsAnswered(session: Session): number;
  /** Gives the C heap's free pages back to the system; 1 when something was released. */
  trimMemory(): number;
  invalEntry(session: Session, parentIno: number, name: string): void;
  invalInode(session: Session, ino: number, off: number, len: number): void;
  /** Whether read-only opens of `ino` are answered by the binding itself (handle 0). */
  setCommitted(session: Session, ino: number, on: number): void;
  /**
   * Answers a read of `ino` from its backing file (`setBacking`) off the event loop; when the
   * file is gone by then, the read comes back as an OP_READ.
   */
  replyBacked(req: Req, ino: number, size: number, off: number): void;
  /** The local file holding `ino`'s content (`length` bytes at `offset`), read by the binding itself; null: none. */
  setBacking(session: Session, ino: number, path: string | null, offset: number, length: number): void;
}

const PACKAGE_ROOT = packageRoot(import.meta.url);

/** Where the binary is looked for, in order. */
export function bindingCandidates(): string[] {
  return [
    join(PACKAGE_ROOT, "build/Release/mesa_fuse.node"),
    join(PACKAGE_ROOT, `prebuilds/${process.platform}-${process.arch}/mesa_fuse.node`),
  ];
}

let loaded: Binding | undefined;

/** The binary that loads (or would load) here. */
export function bindingPath(): string | undefined {
  return bindingCandidates().find((f) => existsSync(f));
}

/** The binding, loaded once; a `MesaError` (code FUSE) says why it cannot load here. */
export function loadBinding(): Binding {
  if (loaded) return loaded;
  const file = bindingPath();
  if (!file)
    throw new MesaError("FUSE", `the FUSE binding is missing for ${process.platform}-${process.arch}`, {
      hint: "in a checkout run `npm run build` (needs libfuse3-dev, pkg-config and a C compiler)",
    });
  try {
    loaded = createRequire(import.meta.url)(file) as Binding;
  } catch (err) {
    const msg = (err as Error).message;
    throw new MesaError("FUSE", `the FUSE binding could not be loaded (${msg.split("\n")[0]})`, {
      hint: /libfuse3/.test(msg)
        ? "install libfuse3 and fusermount3: apt-get install fuse3"
        : "rebuild it with `npm run build` in a checkout, or reinstall mesa",
      cause: err,
    });
  }
  return loaded;
}
