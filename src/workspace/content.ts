/**
 * Committed file content and sizes for the filesystem: bounded reads through the daemon's
 * cache (a server that never answers gives EIO, not a hang), sizes loaded one directory at a
 * time when the snapshot lacks them (a Git server without object-info), and the prefetcher
 * told about every directory listed.
 */
import { type BlobLocation, FsError } from "./fs-api.js";
import { entryKind, type RepoSnapshot } from "./snapshot.js";

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
  /** Where blob `oid` is held locally (verified), if it is now. */
  localBlob?(oid: string): BlobLocation | undefined;
  /** Subscribes to blobs becoming local; returns the unsubscribe function. */
  onLocal?(listener: (oids: string[]) => void): () => void;
  /** A directory was listed: its files may be fetched in the background. */
  onDirectoryListed?(snap: RepoSnapshot, files: PrefetchFile[]): void;
  /** A listing or lookup is being answered: background fetching may give way. */
  onListing?(): void;
  /** A snapshot is mounted (or replaced): its content may be fetched in the background. */
  onSnapshotReady?(snap: RepoSnapshot): void;
  /**
   * Sizes of blobs the snapshot lacks (a Git server without object-info): one call per
   * directory, which may fetch their content. Without it, missing sizes are EIO.
   */
  sizes?(snap: RepoSnapshot, oids: string[]): Promise<Map<string, number>>;
}

export interface ContentOptions {
  /** Bounded wait for content; past it a read fails with EIO. */
  readTimeoutMs: number;
  /** Depth of prefetch below a listed directory: null = whole subtree, 0 = off. */
  prefetchDepth: number | null;
  log?: {
    warn(obj: object, msg: string): void;
    info(obj: object, msg: string): void;
  };
  /** Counts every failed content or size load. */
  onError(): void;
}

export class CommittedContent {
  private readonly prefetched = new WeakMap<RepoSnapshot, Set<string>>();
  /** Size loads in progress, per snapshot sizes map and directory tree. */
  private readonly sizeLoads = new WeakMap<Map<string, number>, Map<string, Promise<void>>>();
  private failing = false;

  constructor(
    readonly provider: ContentProvider,
    private readonly opts: ContentOptions,
  ) {}

  pin(oid: string): void {
    this.provider.pin(oid);
  }

  unpin(oid: string): void {
    this.provider.unpin(oid);
  }

  /** `length` bytes at `offset` of blob `oid`, or EIO once the read timeout passes. */
  async read(snap: RepoSnapshot, oid: string, offset: number, length: number): Promise<Buffer> {
    let timer: NodeJS.Timeout | undefined;
    const ms = this.opts.readTimeoutMs;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no content after ${ms} ms`)), ms);
    });
    try {
      const data = await Promise.race([this.provider.read(snap, oid, offset, length), timeout]);
      if (this.failing) {
        this.failing = false;
        this.opts.log?.info({ oid }, "content reads work again");
      }
      return data;
    } catch (err) {
      this.opts.onError();
      // Log the first failure of an outage, not every read of it.
      if (!this.failing) {
        this.failing = true;
        this.opts.log?.warn(
          { org: snap.org, repo: snap.repo, oid, err: (err as Error).message },
          "reading file content failed; reads of uncached files return EIO until the server answers",
        );
      }
      throw new FsError("EIO", (err as Error).message);
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * The size of blob `oid` of `snap`, loading the sizes of every file of directory `tree` in
   * one call when the snapshot lacks it (a server without object-info).
   */
  async sizeOf(snap: RepoSnapshot, oid: string, tree?: string): Promise<number> {
    const known = snap.sizes.get(oid);
    if (known !== undefined) return known;
    if (!this.provider.sizes) throw new FsError("EIO", `size of ${oid} missing from snapshot`);
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
      p = this.provider
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
      this.opts.onError();
      throw new FsError("EIO", `size of ${oid}: ${(err as Error).message}`);
    }
    const size = snap.sizes.get(oid);
    if (size === undefined) throw new FsError("EIO", `size of ${oid} missing from snapshot`);
    return size;
  }

  /** Hands the files below a listed committed directory to the prefetcher, each subtree once. */
  listed(snap: RepoSnapshot, tree: string, dirPath: string): void {
    const depth = this.opts.prefetchDepth;
    if (!this.provider.onDirectoryListed || depth === 0) return;
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
    if (files.length > 0) this.provider.onDirectoryListed(snap, files);
  }

  /** A snapshot is shown (or replaced): its content may be fetched in the background. */
  ready(snap: RepoSnapshot): void {
    this.provider.onSnapshotReady?.(snap);
  }
}
