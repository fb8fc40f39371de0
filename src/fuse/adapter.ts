/**
 * The FUSE face of a `FileSystem`: turns the kernel's inode-based requests (through mesa's
 * libfuse3 binding, src/fuse/native.ts) into path-based calls, errors into errnos, and the
 * filesystem's change feed into kernel cache invalidations. It owns the inode table and the
 * mount options; nothing else knows about FUSE.
 *
 * Caching: the kernel may keep entries, attributes, misses, listings and file content for a
 * day. Everything that changes through the mount the kernel sees itself; everything else
 * (another writer's commit arriving by a poll, a rebase, a repo opened or closed) comes
 * through `onChange` and is invalidated explicitly.
 */
import { execFile } from "node:child_process";
import { mkdir, stat } from "node:fs/promises";
import { constants } from "node:os";
import { MesaError } from "../errors.js";
import {
  type Caller,
  type Change,
  type DirEntry,
  type FileSystem,
  FsError,
  S_IFDIR,
  S_IFMT,
  S_IFREG,
  type Stat,
  wantsWrite,
} from "../workspace/fs-api.js";
import {
  ATTR_FIELDS,
  type Binding,
  loadBinding,
  OPEN_KEEP_CACHE,
  OPEN_NOFLUSH,
  Op,
  type Req,
  type Session,
} from "./native.js";

/** Seconds the kernel may keep entries, misses and attributes: it is told when they change. */
const CACHE_SECONDS = 86_400;
/** Entries listed for the binding beyond one level ahead of a walker (~130 bytes each there). */
const DEEP_LIST_ENTRIES = 100_000;
/**
 * Deep listing stops when a read reached JavaScript this recently: a search reading content is
 * paced by the content (listings made ahead of it only take the event loop from its reads).
 */
const DEEP_LIST_AFTER_READ_MS = 2000;
/**
 * Listing ahead holds the event loop this long at most, and lets requests waiting for
 * JavaScript in at once: one directory per turn took about twice as long as the listing's own
 * CPU time to list a 40,000-file tree, and a walker overtook it (every directory it reached
 * first cost a trip through JavaScript).
 */
const LIST_TURN_MS = 10;
/** Worker threads reading /dev/fuse; they never wait for JavaScript, so a few suffice. */
const MAX_THREADS = 8;
const NAME_MAX = 255;
const ROOT_INO = 1;
/** A shared read handle (see `SharedHandle`) is let go after this long without reads. */
const SHARED_IDLE_MS = 5000;
const O_RDWR = 2;

/** setattr's `to_set` bits (fuse_lowlevel.h). */
const SET_MODE = 1 << 0;
const SET_UID = 1 << 1;
const SET_GID = 1 << 2;
const SET_SIZE = 1 << 3;
const SET_ATIME = 1 << 4;
const SET_MTIME = 1 << 5;
const SET_ATIME_NOW = 1 << 7;
const SET_MTIME_NOW = 1 << 8;
const RENAME_NOREPLACE = 1;
const RENAME_EXCHANGE = 2;

const ERRNO = constants.errno as Record<string, number>;

/** Whether a `FileSystem` call failure is the filesystem's answer (an FsError) or a fault. */
function errnoOf(err: unknown): number {
  if (err instanceof FsError) {
    const name = err.errno === "ENOTSUP" ? "EOPNOTSUPP" : err.errno;
    return ERRNO[name] ?? ERRNO.EIO;
  }
  return ERRNO.EIO;
}

/** One inode the kernel may know: a path while attached, frozen at its last path once removed. */
interface Node {
  ino: number;
  parent: Node | undefined;
  name: string;
  /** S_IFMT bits: a path whose type changes gets a new inode. */
  type: number;
  nlookup: number;
  children?: Map<string, Node>;
  /** Set when unlinked or replaced: its last path (open handles still use it). */
  removedPath?: string;
  /** Open file handles: fstat of a removed file is answered through one of them. */
  handles?: Set<number>;
  /** In the binding's set of committed files: its read-only opens never reach JavaScript. */
  committed?: boolean;
  /** The committed blob it shows, and whether the binding reads it from a local file. */
  blob?: string;
  backed?: boolean;
  /** The handle that serves reads through handle 0 (opens the binding answered). */
  shared?: SharedHandle;
  /** The binding's generation when it was given this directory's listing (0: asked for, see `listSoon`). */
  listedAt?: number;
}

interface SharedHandle {
  fh: Promise<number>;
  /** The handle once open. */
  num?: number;
  /** Reads and writes in flight. */
  reads: number;
  /** Opened for writing (overlay content); one opened for reading may show a committed blob. */
  writable?: boolean;
  /** Let go after SHARED_IDLE_MS without reads (armed by a read that did not reach the end). */
  idle?: NodeJS.Timeout;
  /** Opened for a file about to be removed: kept until the kernel forgets the inode. */
  keep?: boolean;
}

/** The inode table: nodes stay while attached, so a path keeps its inode number. */
class Inodes {
  private readonly byIno = new Map<number, Node>();
  private nextIno = ROOT_INO + 1;
  readonly root: Node = { ino: ROOT_INO, parent: undefined, name: "", type: S_IFDIR, nlookup: 1 };

  constructor() {
    this.byIno.set(ROOT_INO, this.root);
  }

  get(ino: number): Node {
    const n = this.byIno.get(ino);
    if (!n) throw new FsError("ESTALE", `unknown inode ${ino}`);
    return n;
  }

  find(ino: number): Node | undefined {
    return this.byIno.get(ino);
  }

  pathOf(node: Node): string {
    if (node.removedPath !== undefined) return node.removedPath;
    if (node === this.root) return "/";
    const parts: string[] = [];
    for (let n: Node | undefined = node; n && n !== this.root; n = n.parent) parts.push(n.name);
    return `/${parts.reverse().join("/")}`;
  }

  childPath(parent: Node, name: string): string {
    const p = this.pathOf(parent);
    return p === "/" ? `/${name}` : `${p}/${name}`;
  }

  /** The child's node, created (or replaced when its type changed) as needed. */
  child(parent: Node, name: string, type: number): Node {
    parent.children ??= new Map();
    const existing = parent.children.get(name);
    if (existing && existing.type === type) return existing;
    if (existing) this.detach(existing);
    const node: Node = { ino: this.nextIno++, parent, name, type, nlookup: 0 };
    parent.children.set(name, node);
    this.byIno.set(node.ino, node);
    return node;
  }

  peek(parent: Node, name: string): Node | undefined {
    return parent.children?.get(name);
  }

  /** The path is gone (unlinked, replaced): the inode lives on until the kernel forgets it. */
  detach(node: Node): void {
    if (node.removedPath !== undefined) return;
    const path = this.pathOf(node);
    if (node.parent?.children?.get(node.name) === node) node.parent.children.delete(node.name);
    node.removedPath = path;
    this.detachChildren(node, path);
    if (node.nlookup <= 0) this.byIno.delete(node.ino);
  }

  private detachChildren(node: Node, path: string): void {
    if (!node.children) return;
    for (const c of node.children.values()) {
      c.removedPath = `${path}/${c.name}`;
      this.detachChildren(c, c.removedPath);
      if (c.nlookup <= 0) this.byIno.delete(c.ino);
    }
    node.children = undefined;
  }

  move(node: Node, parent: Node, name: string): void {
    const replaced = this.peek(parent, name);
    if (replaced && replaced !== node) this.detach(replaced);
    node.parent?.children?.delete(node.name);
    node.parent = parent;
    node.name = name;
    parent.children ??= new Map();
    parent.children.set(name, node);
  }

  /** Inodes the kernel holds (looked up, not yet forgotten), the root among them. */
  held = 1;

  /** The kernel got `node` in an entry (a lookup, a readdirplus, a create). */
  hold(node: Node): void {
    if (node.nlookup++ === 0) this.held++;
  }

  lookedUp(ino: number): void {
    const n = this.byIno.get(ino);
    if (n) this.hold(n);
  }

  /** Returns the node when the kernel no longer holds it and it is gone from the table. */
  forget(ino: number, count: number): Node | undefined {
    const n = this.byIno.get(ino);
    if (!n) return undefined;
    if (n.nlookup > 0 && n.nlookup <= count) this.held--;
    n.nlookup -= count;
    if (n.nlookup > 0 || n.removedPath === undefined) return undefined;
    this.byIno.delete(ino);
    return n;
  }

  /** The node at `path` and its parent, as far as the kernel may know them (for invalidation). */
  resolve(path: string): { node?: Node; parent?: Node; name: string } {
    const parts = path.split("/").filter((p) => p.length > 0);
    if (parts.length === 0) return { node: this.root, name: "" };
    let parent = this.root;
    for (const part of parts.slice(0, -1)) {
      const next = parent.children?.get(part);
      if (!next) return { name: "" }; // the kernel holds nothing below an unknown directory
      parent = next;
    }
    const name = parts[parts.length - 1];
    return { parent, node: parent.children?.get(name), name };
  }
}

function ms(d: Date | undefined, fallback: Date): number {
  return (d ?? fallback).getTime();
}

type AttrTuple = [number, number, number, number, number, number, number, number, number];

function attrOf(ino: number, s: Stat): AttrTuple {
  return [
    ino,
    s.mode,
    s.size,
    s.uid,
    s.gid,
    s.nlink,
    ms(s.atime, s.mtime),
    s.mtime.getTime(),
    ms(s.ctime, s.mtime),
  ];
}

export interface MountOptions {
  /** Called with any error a FileSystem method threw that is not an FsError (a bug or I/O). */
  onUnexpectedError?: (op: string, path: string, err: unknown) => void;
  /**
   * Let the kernel open files without asking (FUSE no-open, where the kernel supports it): a
   * warm read of a file then sends nothing at all. The cost: an open for writing cannot be
   * refused, so in a read-only repo EROFS comes with the first write instead of the open.
   */
  kernelOpens?: boolean;
}

export interface FuseMount {
  readonly mountPoint: string;
  /**
   * Hands the binding the listings of the whole tree, from the root down, in the background
   * (within the deep-listing budget): a fresh mount is walked or searched first thing, and the
   * binding answers a walker's readdirs and lookups only in directories it has listings of.
   * Called once the mount is announced (not before: it costs ~50 ms of CPU at 40,000 files,
   * which would delay readiness by as much); it yields to waiting requests. Resolves when
   * nothing is left to list.
   */
  listTree(): Promise<void>;
  /** What the kernel holds of this mount, and what the binding answered on its own. */
  counters(): FuseCounters;
  unmount(): Promise<void>;
}

export interface FuseCounters {
  /** Inodes the kernel holds: one per entry it was given attributes for and has not forgotten. */
  kernelInodes: number;
  /** Lookups the binding answered from kept listings, without JavaScript. */
  lookupsAnswered: number;
}

/** Why the FUSE binding cannot load here, or undefined when it can (for `mesa doctor`). */
export function fuseBindingProblem(): string | undefined {
  try {
    const v = loadBinding().version();
    return v >= 312
      ? undefined
      : `libfuse ${Math.floor(v / 100)}.${v % 100} is too old (3.12 or newer is needed)`;
  } catch (err) {
    return (err as Error).message;
  }
}

/** The libfuse version the binding runs with, e.g. "3.14". */
export function fuseVersion(): string {
  const v = loadBinding().version();
  return `${Math.floor(v / 100)}.${v % 100}`;
}

function unmountCommand(mountPoint: string): Promise<void> {
  const [cmd, args] =
    process.getuid?.() === 0 ? ["umount", [mountPoint]] : ["fusermount3", ["-u", "--", mountPoint]];
  return new Promise((resolve, reject) =>
    execFile(
      cmd,
      args,
      { timeout: 10_000, env: { PATH: process.env.PATH ?? "/usr/bin:/bin" } },
      (err, _o, stderr) => (err ? reject(new Error(String(stderr).trim() || err.message)) : resolve()),
    ),
  );
}

/** Mounts `fs` at `mountPoint`; resolves once the kernel has sent FUSE init. */
export async function mountFileSystem(
  mountPoint: string,
  fs: FileSystem,
  opts: MountOptions = {},
): Promise<FuseMount> {
  const b = loadBinding();
  const existing = await stat(mountPoint).catch(() => undefined);
  if (existing && !existing.isDirectory())
    throw new MesaError("FUSE", `the mount point ${mountPoint} is not a directory`, {
      hint: "choose a directory with --mount-point or MESA_MOUNT_POINT",
    });
  await mkdir(mountPoint, { recursive: true });
  const face = new FuseFace(b, fs, opts);
  return face.mount(mountPoint);
}

class FuseFace {
  private readonly inodes = new Inodes();
  private session: Session | undefined;
  /** The kernel opens files without asking (granted at INIT). */
  private kernelOpens = false;
  private ready?: { resolve: () => void; reject: (e: Error) => void };
  private ended = false;
  private endedWaiters: Array<() => void> = [];
  private unsubscribe?: () => void;

  constructor(
    private readonly b: Binding,
    private readonly fs: FileSystem,
    private readonly opts: MountOptions,
  ) {}

  mount(mountPoint: string): Promise<FuseMount> {
    const options = ["fsname=mesa", "subtype=mesa", "allow_other", "default_permissions", "auto_unmount"];
    return new Promise<FuseMount>((resolve, reject) => {
      this.ready = {
        resolve: () => {
          const unsubscribe = [
            this.fs.onChange?.((changes) => this.invalidate(changes)),
            this.fs.onBlobsLocal?.(this.blobsLocal),
          ];
          this.unsubscribe = () => {
            for (const u of unsubscribe) u?.();
            this.awaitingBlob.clear();
            this.awaitQueue = [];
          };
          resolve({
            mountPoint,
            listTree: () => this.listFromRoot(),
            counters: () => ({
              kernelInodes: this.inodes.held,
              lookupsAnswered: this.session ? this.b.lookupsAnswered(this.session) : 0,
            }),
            unmount: () => this.unmount(mountPoint),
          });
        },
        reject,
      };
      try {
        this.session = this.b.mount(
          mountPoint,
          ["-o", options.join(",")],
          this.dispatch as (op: number, req: Req, ino: number, ...args: never[]) => void,
          MAX_THREADS,
          this.opts.kernelOpens ? 1 : 0,
        );
      } catch (err) {
        reject(
          new MesaError("FUSE", `could not mount at ${mountPoint}: ${(err as Error).message}`, {
            hint: "run `mesa doctor` to check /dev/fuse, fusermount3 and /etc/fuse.conf",
            cause: err,
          }),
        );
      }
    });
  }

  private unmountPromise?: Promise<void>;
  private unmount(mountPoint: string): Promise<void> {
    this.unmountPromise ??= (async () => {
      this.unsubscribe?.();
      if (this.ended) return;
      const gone = new Promise<void>((r) => this.endedWaiters.push(r));
      await unmountCommand(mountPoint);
      await gone;
    })();
    // A failed unmount (busy) may be retried by the caller.
    this.unmountPromise.catch(() => {
      this.unmountPromise = undefined;
    });
    return this.unmountPromise;
  }

  // ---- invalidation ----------------------------------------------------------------------

  /** Drops what the kernel may hold for each changed path (runs on the binding's notifier thread). */
  private invalidate(changes: Change[]): void {
    const session = this.session;
    if (!session || this.ended) return;
    for (const c of changes) {
      const { node, parent, name } = this.inodes.resolve(c.path);
      if (node === this.inodes.root) {
        this.b.invalInode(session, ROOT_INO, 0, 0);
        continue;
      }
      // The entry (a miss, a file that became a directory, a deletion) and the parent's listing.
      if (parent) {
        this.b.invalEntry(session, parent.ino, name);
        this.b.invalInode(session, parent.ino, 0, 0);
      }
      if (!node) continue;
      this.forgetContent(node);
      this.b.invalInode(session, node.ino, 0, 0);
      if (c.recursive) this.invalidateBelow(session, node);
    }
  }

  /** Its content changed elsewhere: opens go to the filesystem, shared reads reopen. */
  private forgetContent(node: Node): void {
    this.uncommit(node);
    if (node.shared) this.dropShared(node, node.shared);
  }

  private invalidateBelow(session: Session, node: Node): void {
    for (const child of node.children?.values() ?? []) {
      this.forgetContent(child);
      this.b.invalEntry(session, node.ino, child.name);
      this.b.invalInode(session, child.ino, 0, 0);
      this.invalidateBelow(session, child);
    }
  }

  // ---- dispatch --------------------------------------------------------------------------

  private readonly dispatch = (op: number, req: Req, ino: number, ...args: unknown[]): void => {
    try {
      switch (op) {
        case Op.INIT:
          this.kernelOpens = args[0] === 1;
          this.ready?.resolve();
          return;
        case Op.ENDED:
          this.onEnded();
          return;
        case Op.FORGET: {
          const pairs = args[0] as number[];
          for (let i = 0; i < pairs.length; i += 2) {
            const gone = this.inodes.forget(pairs[i], pairs[i + 1]);
            if (gone) this.uncommit(gone);
            if (gone?.shared) this.dropShared(gone, gone.shared, true);
          }
          return;
        }
        case Op.LOOKUPS:
          for (const n of args[0] as number[]) this.inodes.lookedUp(n);
          return;
        case Op.LISTED: {
          const dir = this.inodes.find(ino);
          if (!dir) return;
          this.fs.listedByReader?.(this.inodes.pathOf(dir));
          this.listAhead(dir);
          return;
        }
      }
      const p = this.handle(op, req, ino, args);
      p.catch((err) => this.fail(op, req, ino, err));
    } catch (err) {
      this.fail(op, req, ino, err);
    }
  };

  private fail(op: number, req: Req, ino: number, err: unknown): void {
    // Notices from the binding (forgets, listings served) carry no request to answer.
    if (req !== 0) this.b.replyErr(req, errnoOf(err));
    if (err instanceof FsError) return;
    const node = this.inodes.find(ino);
    try {
      this.opts.onUnexpectedError?.(opName(op), node ? this.inodes.pathOf(node) : `inode ${ino}`, err);
    } catch {
      // Reporting must not take the daemon down; the request is answered already.
    }
  }

  private onEnded(): void {
    this.ended = true;
    this.unsubscribe?.();
    for (const w of this.endedWaiters) w();
    this.endedWaiters = [];
  }

  private async handle(op: number, req: Req, ino: number, a: unknown[]): Promise<void> {
    const b = this.b;
    switch (op) {
      case Op.LOOKUP:
        return this.lookup(req, this.inodes.get(ino), a[0] as string);
      case Op.GETATTR: {
        const node = this.inodes.get(ino);
        return this.replyAttr(req, node, await this.statOf(node, a[0] as number));
      }
      case Op.SETATTR:
        return this.setattr(req, this.inodes.get(ino), a as number[]);
      case Op.READLINK:
        return b.replyReadlink(req, await this.fs.readlink(this.path(ino)));
      case Op.OPEN: {
        const flags = a[0] as number;
        const node = this.inodes.get(ino);
        // A writer changes the content: read-only opens must reach the filesystem again.
        if (wantsWrite(flags)) this.uncommit(node);
        const fh = await this.fs.open(this.inodes.pathOf(node), flags);
        this.opened(node, fh);
        // Content that changes behind the kernel's back is invalidated explicitly: keep the cache.
        return b.replyOpen(req, fh, OPEN_KEEP_CACHE | (wantsWrite(flags) ? 0 : OPEN_NOFLUSH));
      }
      case Op.READ: {
        const [fh, size, off] = a as number[];
        const node = this.inodes.get(ino);
        this.lastRead = performance.now();
        if (fh !== 0) return b.replyBuf(req, await this.fs.read(this.inodes.pathOf(node), fh, size, off));
        // A committed blob that became local since the binding was last told: it reads it.
        if (this.backIfLocal(node, node.shared?.writable)) {
          this.fs.readHandedBack?.();
          return b.replyBacked(req, ino, size, off);
        }
        return b.replyBuf(req, await this.readShared(node, size, off));
      }
      case Op.WRITE: {
        const [fh, data, off] = a as [number, Buffer, number];
        if (fh !== 0) return b.replyWrite(req, await this.fs.writes.write(this.path(ino), fh, data, off));
        return b.replyWrite(req, await this.writeShared(this.inodes.get(ino), data, off));
      }
      case Op.FLUSH:
        await this.fs.writes.flush(this.path(ino), a[0] as number);
        return b.replyErr(req, 0);
      case Op.RELEASE: {
        const node = this.inodes.get(ino);
        node.handles?.delete(a[0] as number);
        await this.fs.release(this.inodes.pathOf(node), a[0] as number);
        return b.replyErr(req, 0);
      }
      case Op.FSYNC: {
        const node = this.inodes.get(ino);
        const fh = this.handleOf(node, a[0] as number) ?? 0;
        await this.fs.writes.fsync(this.inodes.pathOf(node), fh, Boolean(a[1]));
        return b.replyErr(req, 0);
      }
      case Op.READDIR:
        return this.readdir(req, this.inodes.get(ino), a as number[]);
      case Op.STATFS: {
        const s = await this.fs.statfs("/");
        return b.replyStatfs(req, s.bsize, s.blocks, s.bfree, s.bavail, s.files, s.ffree, s.namemax);
      }
      case Op.CREATE:
        return this.create(req, this.inodes.get(ino), a);
      case Op.MKNOD:
        return this.mknod(req, this.inodes.get(ino), a);
      case Op.MKDIR: {
        const parent = this.inodes.get(ino);
        const [name, mode, , uid, gid] = a as [string, number, number, number, number];
        const path = this.newPath(parent, name);
        await this.fs.writes.mkdir(path, mode, { uid, gid });
        return this.replyNewEntry(req, parent, name);
      }
      case Op.SYMLINK: {
        const parent = this.inodes.get(ino);
        const [name, target, uid, gid] = a as [string, string, number, number];
        const path = this.newPath(parent, name);
        await this.fs.writes.symlink(target, path, { uid, gid });
        return this.replyNewEntry(req, parent, name);
      }
      case Op.UNLINK:
      case Op.RMDIR: {
        const parent = this.inodes.get(ino);
        const name = a[0] as string;
        const path = this.inodes.childPath(parent, name);
        await this.beforeRemoval(this.inodes.peek(parent, name));
        await (op === Op.UNLINK ? this.fs.writes.unlink(path) : this.fs.writes.rmdir(path));
        const gone = this.inodes.peek(parent, name);
        if (gone) this.inodes.detach(gone);
        return b.replyErr(req, 0);
      }
      case Op.RENAME:
        return this.rename(req, this.inodes.get(ino), a);
      case Op.LINK: {
        const [newParent, newName] = a as [number, string];
        const to = this.newPath(this.inodes.get(newParent), newName);
        await this.fs.writes.link(this.path(ino), to);
        // Hard links are refused by every filesystem here; reaching this is a bug.
        throw new FsError("EPERM");
      }
      case Op.SETXATTR:
      case Op.REMOVEXATTR:
        // Git stores no extended attributes: "not supported" (tools carry on).
        throw new FsError("ENOTSUP");
      default:
        throw new FsError("ENOTSUP");
    }
  }

  private path(ino: number): string {
    return this.inodes.pathOf(this.inodes.get(ino));
  }

  /** The path of a new entry; names longer than NAME_MAX never reach the filesystem. */
  private newPath(parent: Node, name: string): string {
    if (Buffer.byteLength(name) > NAME_MAX) throw new FsError("ENAMETOOLONG");
    return this.inodes.childPath(parent, name);
  }

  private opened(node: Node, fh: number): void {
    node.handles ??= new Set();
    node.handles.add(fh);
  }

  /** The filesystem handle a request refers to: its own, else one open on the inode. */
  private handleOf(node: Node, fh: number): number | undefined {
    if (fh > 0) return fh;
    return node.handles?.values().next().value ?? node.shared?.num;
  }

  /** A removed file is stat'ed through an open handle (fstat does not name one). */
  private statOf(node: Node, fh: number): Promise<Stat> {
    const path = this.inodes.pathOf(node);
    const handle = this.handleOf(node, fh);
    if (handle !== undefined && node.removedPath !== undefined && this.fs.fgetattr)
      return this.fs.fgetattr(path, handle);
    return this.fs.getattr(path);
  }

  private replyAttr(req: Req, node: Node, s: Stat): void {
    this.noteCommitted(node, s);
    this.b.replyAttr(req, ...attrOf(node.ino, s), CACHE_SECONDS);
  }

  // ---- committed files: opens and reads answered by the binding --------------------------

  /**
   * Keeps the binding's set of committed inodes (whose read-only opens it answers) and their
   * local files (whose reads it answers) in step with what the filesystem reports; with kernel
   * opens there are no opens to answer.
   */
  private noteCommitted(node: Node, s: Stat): void {
    if (!this.session) return;
    const on = s.committed === true && (s.mode & S_IFMT) === S_IFREG && node.removedPath === undefined;
    if (on !== Boolean(node.committed)) {
      node.committed = on;
      if (!this.kernelOpens) this.b.setCommitted(this.session, node.ino, on ? 1 : 0);
    }
    const blob = on ? s.blob : undefined;
    if (blob !== node.blob || (blob !== undefined && !node.backed)) {
      if (node.blob !== undefined && blob !== node.blob) this.stopAwaiting(node, node.blob);
      node.blob = blob;
      this.back(node);
    }
  }

  /**
   * Points the binding at a local file holding the node's committed blob (it then answers
   * reads with handle 0 itself), or at none; whether it reads one now.
   */
  private back(node: Node): boolean {
    const at = node.blob !== undefined ? this.fs.localBlob?.(node.blob) : undefined;
    if (at === undefined && node.blob !== undefined) this.awaitBlob(node);
    if ((at === undefined && !node.backed) || !this.session) return false;
    node.backed = at !== undefined;
    this.b.setBacking(this.session, node.ino, at?.file ?? null, at?.offset ?? 0, at?.size ?? 0);
    return node.backed;
  }

  /**
   * Names the committed blob's local file to the binding when it became local since the node
   * was last reported (not while a handle writes the file); whether it did just now. A node
   * already backed gives false: its file was gone when the binding tried it.
   */
  private backIfLocal(node: Node, writable: boolean | undefined): boolean {
    if (node.blob === undefined || node.backed || writable) return false;
    return this.back(node);
  }

  /**
   * Committed files whose blob is not local yet, by blob: named to the binding as their blobs
   * arrive (a whole-tree stream after listings made at mount), so their first reads are the
   * binding's instead of each going through JavaScript to be handed back.
   */
  private readonly awaitingBlob = new Map<string, Node | Node[]>();
  /**
   * Nodes to file in `awaitingBlob` once blobs arrive: listing a fresh mount's tree meets tens
   * of thousands of them, and filing each then was a third of the listing's time.
   */
  private awaitQueue: Node[] = [];

  private awaitBlob(node: Node): void {
    // Filed at once past the deep-listing budget: relistings with no blob arriving meanwhile
    // (prefetch off, nothing read) queue the same nodes again.
    if (this.awaitQueue.push(node) > DEEP_LIST_ENTRIES) this.fileAwaiting();
  }

  private fileAwaiting(): void {
    for (const node of this.awaitQueue) {
      const blob = node.blob;
      if (blob === undefined || node.backed || node.removedPath !== undefined) continue;
      const waiting = this.awaitingBlob.get(blob);
      if (waiting === undefined) this.awaitingBlob.set(blob, node);
      else if (Array.isArray(waiting)) {
        if (!waiting.includes(node)) waiting.push(node);
      } else if (waiting !== node) this.awaitingBlob.set(blob, [waiting, node]);
    }
    this.awaitQueue = [];
  }

  private stopAwaiting(node: Node, blob: string): void {
    this.fileAwaiting();
    const waiting = this.awaitingBlob.get(blob);
    if (waiting === node) this.awaitingBlob.delete(blob);
    else if (Array.isArray(waiting)) {
      const rest = waiting.filter((n) => n !== node);
      if (rest.length === 0) this.awaitingBlob.delete(blob);
      else this.awaitingBlob.set(blob, rest.length === 1 ? rest[0] : rest);
    }
  }

  /** Blobs became local: the binding reads the files waiting for them. */
  private readonly blobsLocal = (oids: string[]): void => {
    if (!this.session || this.ended) return;
    this.fileAwaiting();
    for (const oid of oids) {
      const waiting = this.awaitingBlob.get(oid);
      if (waiting === undefined) continue;
      this.awaitingBlob.delete(oid);
      for (const node of Array.isArray(waiting) ? waiting : [waiting])
        if (node.blob === oid && node.removedPath === undefined)
          this.backIfLocal(node, node.shared?.writable);
    }
  };

  /** Before a change to the file through the mount, or when the kernel lets go of it. */
  private uncommit(node: Node): void {
    if (node.committed && this.session && !this.kernelOpens) this.b.setCommitted(this.session, node.ino, 0);
    node.committed = false;
    if (node.blob !== undefined) this.stopAwaiting(node, node.blob);
    node.blob = undefined;
    this.back(node);
  }

  /**
   * Reads through handle 0 (an open the binding answered) share one handle per inode, opened
   * at the first read and let go when a read reached the end of the file (the kernel keeps the
   * pages it read), or after SHARED_IDLE_MS without reads.
   */
  private async readShared(node: Node, size: number, off: number): Promise<Buffer> {
    const shared = this.openShared(node);
    shared.reads++;
    let atEnd = false;
    try {
      const data = await this.fs.read(this.inodes.pathOf(node), await shared.fh, size, off);
      // Committed content is read whole: a short read is its end.
      atEnd = data.length < size;
      // Its blob is local now: further reads are the binding's.
      this.backIfLocal(node, shared.writable);
      return data;
    } finally {
      shared.reads--;
      // Most files are read in one or two requests: letting go at once keeps nothing per file
      // read (a reader of the whole tree would otherwise hold tens of thousands for seconds).
      if (atEnd && !shared.keep && shared.reads === 0) this.dropShared(node, shared);
      else this.armIdle(node, shared);
    }
  }

  /** The node's shared handle, opened by its current path if it has none (one open at a time). */
  private openShared(node: Node, flags = 0): SharedHandle {
    if (node.shared) return node.shared;
    const shared: SharedHandle = { fh: this.fs.open(this.inodes.pathOf(node), flags), reads: 0 };
    if (wantsWrite(flags)) shared.writable = true;
    node.shared = shared;
    shared.fh.then(
      (fh) => {
        shared.num = fh;
      },
      () => {
        if (node.shared === shared) node.shared = undefined;
      },
    );
    return shared;
  }

  /**
   * Writes through handle 0 (the kernel opened the file without asking) go to the inode's
   * shared handle, opened for writing at the first one (a committed file is copied up then).
   */
  private async writeShared(node: Node, data: Buffer, off: number): Promise<number> {
    let shared = node.shared;
    if (!shared?.writable) {
      this.uncommit(node);
      const before = shared;
      node.shared = undefined;
      shared = this.openShared(node, O_RDWR);
      shared.keep = before?.keep;
      // A handle opened for reading may show the committed blob: it goes once its reads end.
      if (before) this.dropShared(node, before, true);
    }
    shared.reads++;
    try {
      return await this.fs.writes.write(this.inodes.pathOf(node), await shared.fh, data, off);
    } finally {
      shared.reads--;
      this.armIdle(node, shared);
    }
  }

  private armIdle(node: Node, shared: SharedHandle): void {
    if (shared.idle) {
      shared.idle.refresh();
      return;
    }
    shared.idle = setTimeout(() => this.dropShared(node, shared), SHARED_IDLE_MS);
    shared.idle.unref();
  }

  /** Lets go of a shared handle once its reads end; one kept for a removed file only when forced. */
  private dropShared(node: Node, shared: SharedHandle, force = false): void {
    if (!force && shared.keep && node.removedPath !== undefined) return;
    if (shared.reads > 0) {
      if (node.shared === shared && !force) {
        this.armIdle(node, shared);
        return;
      }
      // Replaced or forgotten: released when its last read ends.
      shared.keep = false;
      if (node.shared === shared) node.shared = undefined;
      shared.fh.then(
        () => this.armIdle(node, shared),
        () => undefined,
      );
      return;
    }
    clearTimeout(shared.idle);
    if (node.shared === shared) node.shared = undefined;
    shared.fh.then(
      (fh) => this.fs.release(this.inodes.pathOf(node), fh).catch(() => undefined),
      () => undefined,
    );
  }

  /**
   * A file about to be unlinked or replaced: processes that opened it keep reading (and
   * writing) it. Opens the daemon never saw (handle 0) have no handle of their own, so the
   * inode's shared handle is kept until the kernel forgets it: opened now for a committed file
   * (reading it costs no space), kept if already open for a local one (opening one would hold
   * its disk space until the kernel forgets the inode, after the unlink has returned).
   */
  private async beforeRemoval(node: Node | undefined): Promise<void> {
    if (!node || node.type !== S_IFREG) return;
    const committed = node.committed;
    this.uncommit(node);
    if (node.nlookup === 0 || (!committed && !node.shared)) return;
    const shared = this.openShared(node);
    shared.keep = true;
    await shared.fh.catch(() => undefined);
  }

  private async lookup(req: Req, parent: Node, name: string): Promise<void> {
    if (Buffer.byteLength(name) > NAME_MAX) throw new FsError("ENAMETOOLONG");
    this.listSoon(parent);
    let s: Stat;
    try {
      s = await this.fs.getattr(this.inodes.childPath(parent, name));
    } catch (err) {
      // A miss is an answer the kernel may keep, like any entry.
      if (err instanceof FsError && err.errno === "ENOENT")
        return this.b.replyEntry(req, 0, 0, 0, 0, 0, 0, 0, 0, 0, CACHE_SECONDS, CACHE_SECONDS);
      throw err;
    }
    this.replyEntry(req, parent, name, s);
  }

  private replyEntry(req: Req, parent: Node, name: string, s: Stat): void {
    const node = this.inodes.child(parent, name, s.mode & S_IFMT);
    this.inodes.hold(node);
    this.noteCommitted(node, s);
    this.b.replyEntry(req, ...attrOf(node.ino, s), CACHE_SECONDS, CACHE_SECONDS);
  }

  private async replyNewEntry(req: Req, parent: Node, name: string): Promise<void> {
    this.replyEntry(req, parent, name, await this.fs.getattr(this.inodes.childPath(parent, name)));
  }

  /** Entries with types, and attributes where they are known without waiting. */
  private async listing(path: string): Promise<DirEntry[]> {
    if (this.fs.readdirEntries) return this.fs.readdirEntries(path);
    const names = await this.fs.readdir(path);
    const stats = await Promise.all(
      names.map((n) => this.fs.getattr(path === "/" ? `/${n}` : `${path}/${n}`).catch(() => undefined)),
    );
    // An entry gone between the listing and its stat is left out.
    return names.flatMap((name, i) => {
      const stat = stats[i];
      return stat ? [{ name, mode: stat.mode & S_IFMT, stat }] : [];
    });
  }

  private async readdir(req: Req, dir: Node, a: number[]): Promise<void> {
    const [dirHandle, size, off, plus] = a;
    const gen = this.b.generation(this.session as Session);
    const { names, attrs } = this.entryArrays(dir, await this.listing(this.inodes.pathOf(dir)));
    this.b.dirFill(
      req,
      dirHandle,
      dir.ino,
      dir.parent?.ino ?? ROOT_INO,
      names,
      attrs,
      CACHE_SECONDS,
      CACHE_SECONDS,
      size,
      off,
      plus,
      gen,
    );
    if (dirHandle === 0) {
      dir.listedAt = gen;
      this.listAhead(dir);
    }
  }

  /** Names and binding attributes of a listing; nodes for its entries. */
  private entryArrays(dir: Node, entries: DirEntry[]): { names: string[]; attrs: Float64Array } {
    const attrs = new Float64Array(entries.length * ATTR_FIELDS);
    const names: string[] = new Array(entries.length);
    for (let i = 0; i < entries.length; i++) {
      const e = entries[i];
      const node = this.inodes.child(dir, e.name, e.mode & S_IFMT);
      if (e.stat) this.noteCommitted(node, e.stat);
      // nlink 0 tells the binding the attributes are not known: name and type only.
      const attr = e.stat ? attrOf(node.ino, e.stat) : [node.ino, e.mode & S_IFMT, 0, 0, 0, 0, 0, 0, 0];
      attrs.set(attr, i * ATTR_FIELDS);
      names[i] = e.name;
    }
    return { names, attrs };
  }

  // ---- listing ahead ----------------------------------------------------------------------

  /**
   * A walker that listed `dir` lists its subdirectories next: hand the binding their listings
   * before the kernel asks, so those readdirs, and lookups of their names and misses (ripgrep
   * looks for ignore files in every directory), are answered without waiting for JavaScript.
   * One level ahead: the binding reports each listing it serves, which moves this on.
   */
  private listAhead(dir: Node): void {
    for (const child of dir.children?.values() ?? []) if (child.type === S_IFDIR) this.toList.push(child);
    this.listQueued();
  }

  /** See `FuseMount.listTree`: deep listing, so within its budget and yielding to reads. */
  private listFromRoot(): Promise<void> {
    this.toList.push(this.inodes.root);
    this.listQueued();
    if (!this.listingQueued) return Promise.resolve();
    return new Promise((resolve) => this.listedAll.push(resolve));
  }
  /** Waiting for the listing queue to empty (see `listTree`). */
  private listedAll: Array<() => void> = [];

  /**
   * A lookup in `dir` reached JavaScript because the binding has no exact listing of it: make
   * one, before those ahead, so the next lookups there and its readdir are answered by the
   * binding (ripgrep looks for three ignore files in a directory before it lists it). Once per
   * directory: lookups in a directory being written to (each change moves the generation) do
   * not relist it each time.
   */
  private listSoon(dir: Node): void {
    if (dir.listedAt !== undefined) return;
    dir.listedAt = 0;
    this.toListFirst.push(dir);
    this.listQueued();
  }

  /**
   * Directories whose listings the binding gets next: those looked up in first, then those a
   * walker reaches next, then the rest of the tree below them (while nothing else is waiting).
   */
  private readonly toListFirst: Node[] = [];
  private readonly toList: Node[] = [];
  private readonly toListDeep: Node[] = [];
  /** When a read last reached JavaScript: a search reading content gains nothing from deep listings. */
  private lastRead = Number.NEGATIVE_INFINITY;
  /** Entries still to be listed deep ahead of a walker (bounds what the binding keeps). */
  private deepBudget = DEEP_LIST_ENTRIES;
  private listingQueued = false;

  /** Lists the queued directories, a turn of the event loop at a time, so requests are not held up. */
  private listQueued(): void {
    if (this.listingQueued || !this.session) return;
    this.listingQueued = true;
    setImmediate(async () => {
      try {
        let turn = performance.now();
        for (let dir = this.nextToList(); dir && !this.ended; dir = this.nextToList()) {
          if (await this.prefill(dir)) this.listDeeper(dir);
          const session = this.session;
          if (session && this.b.queued(session) === 0 && performance.now() - turn < LIST_TURN_MS) continue;
          await new Promise((r) => setImmediate(r));
          turn = performance.now();
        }
      } finally {
        this.toListFirst.length = this.toList.length = this.toListDeep.length = 0;
        this.listingQueued = false;
        for (const resolve of this.listedAll.splice(0)) resolve();
      }
    });
  }

  private nextToList(): Node | undefined {
    const next = this.toListFirst.shift() ?? this.toList.shift();
    if (next || performance.now() - this.lastRead < DEEP_LIST_AFTER_READ_MS) return next;
    return this.toListDeep.shift();
  }

  /**
   * A walker gets ahead of listings made one level ahead (its threads overtake the event loop,
   * which is idle half of a walk): the subdirectories of a directory listed ahead are listed
   * too, after everything nearer, until the budget is spent. Each directory once.
   */
  private listDeeper(dir: Node): void {
    if (this.deepBudget <= 0 || !dir.children) return;
    this.deepBudget -= dir.children.size;
    for (const child of dir.children.values())
      if (child.type === S_IFDIR && child.listedAt === undefined) this.toListDeep.push(child);
  }

  /** Hands the binding `dir`'s listing unless it has an exact one; whether it made one. */
  private async prefill(dir: Node): Promise<boolean> {
    const session = this.session;
    if (!session || this.ended || dir.removedPath !== undefined) return false;
    const gen = this.b.generation(session);
    if (dir.listedAt === gen) return false;
    try {
      const entries = await this.fs.readdirEntries?.(this.inodes.pathOf(dir), { ahead: true });
      if (!entries || dir.removedPath !== undefined) return false;
      const { names, attrs } = this.entryArrays(dir, entries);
      const parent = dir.parent?.ino ?? ROOT_INO;
      if (!this.b.prefill(session, dir.ino, parent, names, attrs, CACHE_SECONDS, CACHE_SECONDS, gen))
        return false;
      dir.listedAt = gen;
      return true;
    } catch {
      // Gone or unreadable: the kernel's own readdir will say so.
      return false;
    }
  }

  private async setattr(req: Req, node: Node, a: number[]): Promise<void> {
    const [fh, toSet, mode, uid, gid, size, atime, mtime] = a;
    const path = this.inodes.pathOf(node);
    if (toSet & SET_SIZE) this.uncommit(node);
    const w = this.fs.writes;
    if (toSet & SET_MODE) await w.chmod(path, mode & 0o7777);
    if (toSet & (SET_UID | SET_GID))
      await w.chown(path, toSet & SET_UID ? uid : -1, toSet & SET_GID ? gid : -1);
    // ftruncate without an open the daemon saw (handle 0) goes through the inode's shared handle.
    const handle = fh === 0 ? node.shared?.num : fh > 0 ? fh : undefined;
    if (toSet & SET_SIZE)
      await (handle !== undefined ? w.ftruncate(path, handle, size) : w.truncate(path, size));
    if (toSet & (SET_ATIME | SET_MTIME | SET_ATIME_NOW | SET_MTIME_NOW)) {
      const now = new Date();
      const at = toSet & SET_ATIME_NOW ? now : toSet & SET_ATIME ? new Date(atime) : undefined;
      const mt = toSet & SET_MTIME_NOW ? now : toSet & SET_MTIME ? new Date(mtime) : undefined;
      await w.utimens(path, at, mt);
    }
    this.replyAttr(req, node, await this.statOf(node, fh));
  }

  private async create(req: Req, parent: Node, a: unknown[]): Promise<void> {
    const [name, mode, flags, uid, gid] = a as [string, number, number, number, number];
    const path = this.newPath(parent, name);
    const fh = await this.fs.writes.create(path, mode, { uid, gid });
    const s = await this.fs.getattr(path);
    const node = this.inodes.child(parent, name, s.mode & S_IFMT);
    this.inodes.hold(node);
    this.opened(node, fh);
    const bits = OPEN_KEEP_CACHE | (wantsWrite(flags) ? 0 : OPEN_NOFLUSH);
    this.b.replyCreate(req, ...attrOf(node.ino, s), CACHE_SECONDS, CACHE_SECONDS, fh, bits);
  }

  private async mknod(req: Req, parent: Node, a: unknown[]): Promise<void> {
    const [name, mode, rdev, uid, gid] = a as [string, number, number, number, number];
    const path = this.newPath(parent, name);
    const caller: Caller = { uid, gid };
    const w = this.fs.writes;
    if ((mode & S_IFMT) === S_IFREG) {
      // mknod(2) of a regular file: create it and let go of the handle.
      const fh = await w.create(path, mode, caller);
      await this.fs.release(path, fh);
    } else if (w.mknod) {
      await w.mknod(path, mode, rdev, caller);
    } else {
      throw new FsError("EPERM");
    }
    return this.replyNewEntry(req, parent, name);
  }

  private async rename(req: Req, parent: Node, a: unknown[]): Promise<void> {
    const [name, newParentIno, newName, flags] = a as [string, number, string, number];
    const newParent = this.inodes.get(newParentIno);
    const from = this.inodes.childPath(parent, name);
    const to = this.newPath(newParent, newName);
    if (flags & RENAME_EXCHANGE) throw new FsError("EINVAL");
    if (flags & RENAME_NOREPLACE) {
      const exists = await this.fs.getattr(to).then(
        () => true,
        () => false,
      );
      if (exists) throw new FsError("EEXIST");
    }
    await this.beforeRemoval(this.inodes.peek(newParent, newName));
    await this.fs.writes.rename(from, to);
    const moved = this.inodes.peek(parent, name);
    if (moved) this.inodes.move(moved, newParent, newName);
    else {
      const replaced = this.inodes.peek(newParent, newName);
      if (replaced) this.inodes.detach(replaced);
    }
    this.b.replyErr(req, 0);
  }
}

function opName(op: number): string {
  for (const [k, v] of Object.entries(Op)) if (v === op) return k.toLowerCase();
  return `op${op}`;
}
