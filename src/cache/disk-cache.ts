/**
 * Content-addressed blob files under `<path>/objects/ab/cdef…`, LRU by last access, with a
 * hard cap that counts real bytes on disk (allocated blocks of every file and directory).
 * Space is reserved (evicting first) before anything is written, so `du` of the directory
 * never exceeds the cap. Files are written to a temp name in their final directory and
 * renamed, so a crash leaves either a whole blob or a `.tmp-` file that `open` removes.
 * Contents are verified by the caller on read, so a torn file is detected and refetched.
 * A prefetch stream's worker writes blobs straight to their final names (never over an
 * existing one) into space reserved for it here; they join the index when it reports them. A
 * crash mid-write leaves a partial file there: the next `open` indexes it unverified, and the
 * first read hashes it (and deletes it when it does not match). A stream's small blobs go into
 * segments instead (segments.ts): a few large files holding many blobs each, freed whole.
 */
import { randomBytes } from "node:crypto";
import { createReadStream } from "node:fs";
import {
  mkdir,
  open,
  readdir,
  readFile,
  rename,
  rmdir,
  stat,
  unlink,
  utimes,
  writeFile,
} from "node:fs/promises";
import { join } from "node:path";
import { Worker } from "node:worker_threads";
import type { Logger } from "../log.js";
import type { BlobLocation } from "../workspace/fs-api.js";
import { blobDir, blobFile, diskCost, onDisk } from "./blob-files.js";
import { parseSegmentIndex, SEGMENTS_DIR, segmentData, segmentIndex, segmentOf } from "./segments.js";
import { blobHash } from "./verify.js";
import type { FromVerifier, VerifyJob } from "./verify-worker.js";

const VERIFY_WORKER_URL = new URL("./verify-worker.js", import.meta.url);

/** Space a prefetch stream's worker writes blobs into (see `beginStream`). */
export interface StreamReservation {
  objects: string;
  blockSize: number;
  /** Bytes granted, and how many of them were booked so far. */
  budget: number;
  used: number;
  /** Directories that got entries. */
  dirs: Set<string>;
  /** The cache's segment directory, and the segments the stream wrote. */
  segments: string;
  wroteSegments: Set<Segment>;
  ended?: boolean;
}

/** One blob a stream's worker wrote at its final name. */
export interface StreamedBlob {
  oid: string;
  size: number;
  /** Bytes on disk, and what was counted against the reservation for it. */
  bytes: number;
  cost: number;
  /** Written into this segment at this offset (see segments.ts), not to a file of its own. */
  segment?: string;
  offset?: number;
}

/** A segment file of blobs (segments.ts); freed as a whole. */
interface Segment {
  name: string;
  /** Its blobs file. */
  file: string;
  /** Its entries in the index. */
  oids: Set<string>;
  /** Bytes on disk charged for it (both files). */
  bytes: number;
  /** A stream still writes it: it stays until the stream ends. */
  writing: boolean;
  /** Last persisted access (its file's mtime). */
  atime: number;
}

interface Entry {
  size: number;
  /** Bytes the file occupies on disk. */
  bytes: number;
  /** Last access (ms); persisted as the file's mtime so LRU order survives restarts. */
  atime: number;
  /** Content hashed since this process indexed it (written by us, or checked once). */
  verified: boolean;
  /**
   * Prefetched and not read since: only restoring the cap evicts it, so making room for other
   * content never throws away what was fetched ahead for a reader (that would be fetched twice).
   */
  unread?: boolean;
  /** In a segment, at `offset` (then `bytes` is only its share: the segment is charged). */
  seg?: Segment;
  offset?: number;
}

export interface DiskCacheOptions {
  path: string;
  maxBytes: number;
  logger?: Logger;
  /** Entries for which this is true are never evicted. */
  isPinned?: (oid: string) => boolean;
}

const NAME_RE = /^(?:[0-9a-f]{38}|[0-9a-f]{62})$/;
const SUBDIR_RE = /^[0-9a-f]{2}$/;
/** Re-persist an entry's access time at most this often (one utimes per hot file per minute). */
const TOUCH_INTERVAL_MS = 60_000;
const WRITE_CONCURRENCY = 4;

function isNotFound(err: unknown): boolean {
  return (err as NodeJS.ErrnoException)?.code === "ENOENT";
}

/** unlink, where a file already gone is fine (cheaper than rm's recursive machinery). */
async function removeFile(file: string): Promise<void> {
  try {
    await unlink(file);
  } catch (err) {
    if (!isNotFound(err)) throw err;
  }
}

export class DiskCache {
  readonly path: string;
  readonly maxBytes: number;
  private readonly objects: string;
  private readonly segmentDir: string;
  private readonly segments = new Map<string, Segment>();
  private readonly blobDirs: string[] = [];
  private readonly logger?: Logger;
  private readonly isPinned: (oid: string) => boolean;
  /** Insertion order is LRU order: the first key is the least recently used. */
  private readonly index = new Map<string, Entry>();
  /** Accounted size of each directory we own (root, objects, objects/xx). */
  private readonly dirBytes = new Map<string, number>();
  /** Entries (and writes in progress) per objects/xx directory; an empty one is removed. */
  private readonly dirCount = new Map<string, number>();
  private readonly writing = new Map<string, Promise<boolean>>();
  private readonly verifying = new Map<string, Promise<boolean>>();
  private used = 0;
  private reserved = 0;
  private blockSize = 4096;
  private lock: Promise<unknown> = Promise.resolve();
  private waiters: Array<() => void> = [];
  private activeWrites = 0;
  private readonly writeQueue: Array<() => void> = [];
  evictions = 0;
  /** Writes skipped because the blob could not fit under the cap. */
  skipped = 0;

  constructor(opts: DiskCacheOptions) {
    this.path = opts.path;
    this.maxBytes = opts.maxBytes;
    this.objects = join(opts.path, "objects");
    this.segmentDir = join(opts.path, SEGMENTS_DIR);
    this.logger = opts.logger;
    this.isPinned = opts.isPinned ?? (() => false);
  }

  /** Whether a blob of `size` bytes could ever be stored under the cap. */
  canHold(size: number): boolean {
    const blk = this.blockSize;
    return Math.ceil(size / blk) * blk + 4 * blk <= this.maxBytes;
  }

  /** Bytes that can be written without evicting anything. */
  get freeBytes(): number {
    return Math.max(0, this.maxBytes - this.used - this.reserved);
  }

  /** Bytes on disk now (files and directories). */
  get usedBytes(): number {
    return this.used;
  }

  get count(): number {
    return this.index.size;
  }

  has(oid: string): boolean {
    return this.index.has(oid);
  }

  sizeOf(oid: string): number | undefined {
    return this.index.get(oid)?.size;
  }

  /** Builds the index from the files on disk (LRU order from mtimes) and enforces the cap. */
  async open(): Promise<void> {
    await mkdir(this.objects, { recursive: true });
    const rootSt = await stat(this.path);
    this.blockSize = rootSt.blksize > 0 ? rootSt.blksize : 4096;
    await this.accountDir(this.path);
    await this.accountDir(this.objects);
    const found: Array<[string, Entry]> = [];
    for (const sub of await readdir(this.objects)) {
      const dir = join(this.objects, sub);
      if (!SUBDIR_RE.test(sub)) continue;
      await this.accountDir(dir);
      const names = await readdir(dir);
      for (let i = 0; i < names.length; i += 64) {
        await Promise.all(
          names.slice(i, i + 64).map(async (name) => {
            const file = join(dir, name);
            if (name.startsWith(".tmp-")) {
              await removeFile(file);
              return;
            }
            const st = await stat(file).catch(() => undefined);
            if (!st?.isFile()) return;
            if (!NAME_RE.test(name)) {
              // Not ours; it still takes space under the cap.
              this.used += onDisk(st);
              return;
            }
            found.push([
              sub + name,
              { size: st.size, bytes: onDisk(st), atime: st.mtimeMs, verified: false },
            ]);
          }),
        );
      }
      // Removing temp files does not shrink a directory, but re-measure anyway.
      await this.accountDir(dir);
    }
    await this.openSegments(found);
    found.sort((a, b) => a[1].atime - b[1].atime);
    for (const [oid, e] of found) {
      this.index.set(oid, e);
      if (e.seg) continue;
      this.used += e.bytes;
      this.countIn(this.dirOf(oid), 1);
    }
    for (const dir of [...this.dirBytes.keys()])
      if (dir !== this.path && dir !== this.objects && !this.dirCount.has(dir))
        await this.removeDirIfEmpty(dir);
    // A lowered cap applies at once.
    if (this.used > this.maxBytes) await this.reserve(0);
    this.logger?.debug({ path: this.path, entries: this.index.size, bytes: this.used }, "disk cache opened");
  }

  /**
   * Adds the segments' entries (unverified) to `found`, but none whose range lies beyond its file
   * (the writer stopped there) or that `found` has already; segments without entries are
   * removed. (Appended one by one: spreading a few hundred thousand into `push` overflows the
   * stack.)
   */
  private async openSegments(found: Array<[string, Entry]>): Promise<void> {
    const names = await readdir(this.segmentDir).catch((err) => {
      if (isNotFound(err)) return undefined;
      throw err;
    });
    if (!names) return;
    await this.accountDir(this.segmentDir);
    const have = new Set(found.map(([oid]) => oid));
    const files = names.map((n) => [n, segmentOf(n)] as const);
    const indexed = new Set(files.flatMap(([, of]) => (of?.index ? [of.name] : [])));
    for (const [n, of] of files) {
      const file = join(this.segmentDir, n);
      if (of && !of.index && !indexed.has(of.name)) await removeFile(file);
      else if (!of) {
        // Not ours; it still takes space under the cap.
        const st = await stat(file).catch(() => undefined);
        if (st) this.used += onDisk(st);
      }
    }
    for (const name of indexed) {
      const data = segmentData(this.segmentDir, name);
      const index = segmentIndex(this.segmentDir, name);
      const [dataSt, indexSt] = await Promise.all([data, index].map((f) => stat(f).catch(() => undefined)));
      if (!indexSt) continue; // gone since the listing
      const seg: Segment = {
        name,
        file: data,
        oids: new Set(),
        bytes: onDisk(indexSt) + (dataSt ? onDisk(dataSt) : 0),
        writing: false,
        atime: dataSt?.mtimeMs ?? 0,
      };
      // Without its blobs file, no line names bytes that are there.
      const written = dataSt?.size ?? 0;
      const lines = dataSt ? await readFile(index, "latin1").catch(() => "") : "";
      for (const l of parseSegmentIndex(lines)) {
        if (l.offset + l.size > written || have.has(l.oid)) continue;
        have.add(l.oid);
        seg.oids.add(l.oid);
        found.push([
          l.oid,
          { size: l.size, bytes: l.size, atime: seg.atime, verified: false, seg, offset: l.offset },
        ]);
      }
      if (seg.oids.size === 0) {
        await Promise.all([removeFile(data), removeFile(index)]);
        continue;
      }
      this.segments.set(name, seg);
      this.used += seg.bytes;
    }
  }

  isVerified(oid: string): boolean {
    return this.index.get(oid)?.verified ?? false;
  }

  /** A reader took this entry's content: it is no longer an unread prefetch. */
  markRead(oid: string): void {
    const e = this.index.get(oid);
    if (e) e.unread = undefined;
  }

  markVerified(oid: string): void {
    const e = this.index.get(oid);
    if (e) e.verified = true;
  }

  /**
   * Hashes the file (streaming, so a large blob costs no memory) and compares it with its
   * name; a mismatching file is deleted. Returns whether the entry is good.
   */
  verify(oid: string): Promise<boolean> {
    const e = this.index.get(oid);
    if (e === undefined) return Promise.resolve(false);
    if (e.verified) return Promise.resolve(true);
    // Concurrent first reads of one large file hash it once.
    let p = this.verifying.get(oid);
    if (!p) {
      p = this.hashCheck(oid, e).finally(() => this.verifying.delete(oid));
      this.verifying.set(oid, p);
    }
    return p;
  }

  private async hashCheck(oid: string, e: Entry): Promise<boolean> {
    const h = blobHash(oid, e.size);
    // A segment's range is read exactly; a file of its own whole (a longer one must not match).
    const range = e.seg ? { start: e.offset, end: (e.offset as number) + e.size - 1 } : {};
    try {
      if (!e.seg || e.size > 0)
        for await (const chunk of createReadStream(this.fileHolding(oid, e), range))
          h.update(chunk as Buffer);
    } catch (err) {
      if (!isNotFound(err)) throw err;
      this.forget(oid);
      return false;
    }
    if (h.digest("hex") === oid) {
      e.verified = true;
      return true;
    }
    this.logger?.warn({ oid }, "cached blob failed verification; deleted");
    await this.delete(oid);
    return false;
  }

  /**
   * Hashes every entry not verified yet (after a restart: all of them) in a worker thread, so
   * that reads find their files verified instead of each first hashing its file on the main
   * thread (40,000 first reads through the mount took 10.5 s that way against 4 s on a fresh
   * cache). Entries that match are marked and passed to `onVerified` in batches; the others go
   * through `verify`, which deletes a file that does not match (`onDamaged` then hears of it).
   * Resolves when done or aborted.
   */
  async verifyInBackground(
    onVerified: (oids: string[]) => void,
    onDamaged: (oid: string) => void,
    signal: AbortSignal,
  ): Promise<void> {
    const files: VerifyJob["files"] = [];
    for (const [oid, e] of this.index)
      if (!e.verified) files.push(e.seg ? [oid, e.size, e.seg.file, e.offset as number] : [oid, e.size]);
    if (files.length === 0 || signal.aborted) return;
    const worker = new Worker(VERIFY_WORKER_URL, {
      workerData: { objects: this.objects, files } satisfies VerifyJob,
      resourceLimits: { maxYoungGenerationSizeMb: 1, maxOldGenerationSizeMb: 64 },
    });
    const stop = () => void worker.terminate();
    signal.addEventListener("abort", stop, { once: true });
    try {
      await new Promise<void>((resolve, reject) => {
        worker.on("message", (m: FromVerifier) => {
          if (m.t === "done") return resolve();
          const ok: string[] = [];
          for (const oid of m.good) {
            // Only `open` indexes entries unverified: one written since is verified already.
            const e = this.index.get(oid);
            if (e && !e.verified) {
              e.verified = true;
              ok.push(oid);
            }
          }
          if (ok.length > 0) onVerified(ok);
          for (const oid of m.bad)
            void this.verify(oid).then(
              (ok) => ok || onDamaged(oid),
              () => undefined,
            );
        });
        worker.on("error", reject);
        worker.on("exit", () => resolve());
      });
    } finally {
      signal.removeEventListener("abort", stop);
      await worker.terminate();
    }
  }

  /** Whole content, or undefined when not cached (or vanished underneath us). */
  async read(oid: string): Promise<Buffer | undefined> {
    const e = this.index.get(oid);
    if (e === undefined) return undefined;
    if (e.seg) return this.readRange(oid, 0, e.size);
    this.touch(oid);
    try {
      return await readFile(this.fileOf(oid));
    } catch (err) {
      if (!isNotFound(err)) throw err;
      this.forget(oid);
      return undefined;
    }
  }

  /** `length` bytes at `offset` (fewer at the end of the blob), or undefined when not cached. */
  async readRange(oid: string, offset: number, length: number): Promise<Buffer | undefined> {
    const e = this.index.get(oid);
    if (e === undefined) return undefined;
    this.touch(oid);
    const n = Math.max(0, Math.min(length, e.size - offset));
    if (n === 0) return Buffer.alloc(0);
    let fh: Awaited<ReturnType<typeof open>>;
    const base = e.offset ?? 0;
    try {
      fh = await open(this.fileHolding(oid, e), "r");
    } catch (err) {
      if (!isNotFound(err)) throw err;
      this.forget(oid);
      return undefined;
    }
    try {
      const buf = Buffer.allocUnsafe(n);
      let got = 0;
      while (got < n) {
        const { bytesRead } = await fh.read(buf, got, n - got, base + offset + got);
        if (bytesRead === 0) break;
        got += bytesRead;
      }
      return got === n ? buf : buf.subarray(0, got);
    } finally {
      await fh.close();
    }
  }

  /**
   * Stores a blob unless it is already there. Returns false (and stores nothing) when it
   * cannot fit under the cap without evicting pinned or unread prefetched entries, or when
   * the write fails. A `prefetched` blob evicts nothing: it is stored only into free space.
   */
  put(oid: string, data: Buffer, opts: { prefetched?: boolean } = {}): Promise<boolean> {
    if (this.index.has(oid)) return Promise.resolve(true);
    const pending = this.writing.get(oid);
    if (pending) return pending;
    const p = this.limited(() => this.write(oid, data, opts.prefetched === true)).finally(() =>
      this.writing.delete(oid),
    );
    this.writing.set(oid, p);
    return p;
  }

  /** Removes an entry (for example one whose content failed verification). */
  async delete(oid: string): Promise<void> {
    const e = this.index.get(oid);
    if (e === undefined) return;
    this.index.delete(oid);
    if (e.seg) return this.leaveSegment(oid, e.seg);
    await removeFile(this.fileOf(oid));
    this.used -= e.bytes;
    this.countIn(this.dirOf(oid), -1);
  }

  /** `oid` is no longer indexed in `seg`: the segment goes with its last entry (once written). */
  private async leaveSegment(oid: string, seg: Segment): Promise<void> {
    seg.oids.delete(oid);
    if (seg.oids.size === 0 && !seg.writing) await this.removeSegment(seg);
  }

  private async removeSegment(seg: Segment): Promise<void> {
    if (this.segments.get(seg.name) !== seg) return;
    this.segments.delete(seg.name);
    await Promise.all([removeFile(seg.file), removeFile(segmentIndex(this.segmentDir, seg.name))]);
    this.used -= seg.bytes;
  }

  /** Where blob `oid`'s content is, when cached. */
  location(oid: string): BlobLocation | undefined {
    const e = this.index.get(oid);
    if (e === undefined) return undefined;
    return { file: this.fileHolding(oid, e), offset: e.offset ?? 0, size: e.size };
  }

  /**
   * Reserves up to `want` bytes of free space (never evicting) for a stream's worker to write
   * blobs into directly; `adoptStreamed` books what it wrote, `endStream` frees the rest.
   */
  beginStream(want: number): StreamReservation {
    const granted = Math.min(want, this.freeBytes);
    this.reserved += granted;
    return {
      objects: this.objects,
      blockSize: this.blockSize,
      budget: granted,
      used: 0,
      dirs: new Set(),
      segments: this.segmentDir,
      wroteSegments: new Set(),
    };
  }

  /** Blobs a stream's worker wrote (verified: it hashed them), now readable. */
  adoptStreamed(res: StreamReservation, blobs: StreamedBlob[]): number {
    let added = 0;
    for (const b of blobs) {
      // Reported after the stream ended: its reservation was freed already.
      if (!res.ended) {
        res.used += b.cost;
        this.reserved -= b.cost;
      }
      if (b.segment !== undefined) {
        added += this.adoptInSegment(res, b) ? 1 : 0;
        continue;
      }
      // A read that fetched the same blob meanwhile already booked it (same content).
      if (this.index.has(b.oid)) continue;
      this.index.set(b.oid, {
        size: b.size,
        bytes: b.bytes,
        atime: Date.now(),
        verified: true,
        unread: true,
      });
      this.used += b.bytes;
      const dir = this.dirOf(b.oid);
      this.countIn(dir, 1);
      res.dirs.add(dir);
      added++;
    }
    return added;
  }

  /** A streamed blob in a segment: its bytes are charged to the segment, indexed or not. */
  private adoptInSegment(res: StreamReservation, b: StreamedBlob): boolean {
    let seg = this.segments.get(b.segment as string);
    if (!seg) {
      // Until the stream ends, it is charged what the worker counted (more than it takes).
      seg = {
        name: b.segment as string,
        file: segmentData(this.segmentDir, b.segment as string),
        oids: new Set(),
        bytes: 0,
        writing: true,
        atime: Date.now(),
      };
      this.segments.set(seg.name, seg);
    }
    seg.bytes += b.bytes;
    this.used += b.bytes;
    res.wroteSegments.add(seg);
    if (this.index.has(b.oid)) return false;
    this.index.set(b.oid, {
      size: b.size,
      bytes: b.size,
      atime: Date.now(),
      verified: true,
      unread: true,
      seg,
      offset: b.offset,
    });
    seg.oids.add(b.oid);
    return true;
  }

  /** The stream ended: its unused reservation is freed and what it wrote measured. */
  async endStream(res: StreamReservation): Promise<void> {
    this.reserved -= res.budget - res.used;
    res.ended = true;
    for (const dir of res.dirs) await this.accountDir(dir);
    await this.accountDir(this.objects);
    for (const seg of res.wroteSegments) {
      seg.writing = false;
      const sizes = await Promise.all(
        [seg.file, segmentIndex(this.segmentDir, seg.name)].map((f) => stat(f).then(onDisk, () => 0)),
      );
      const now = sizes[0]! + sizes[1]!;
      this.used += now - seg.bytes;
      seg.bytes = now;
      if (seg.oids.size === 0) await this.removeSegment(seg);
    }
    if (res.wroteSegments.size > 0) await this.accountDir(this.segmentDir);
    this.wakeWaiters();
    if (this.used + this.reserved > this.maxBytes) await this.reserve(0);
  }

  /** Waits for writes in progress. */
  async flush(): Promise<void> {
    await Promise.allSettled([...this.writing.values()]);
  }

  /**
   * Runs at most WRITE_CONCURRENCY writes at once: a burst of thousands of small writes would
   * otherwise fill libuv's thread pool and queue every other file operation (reads of cached
   * blobs, the filesystem's own I/O) behind it.
   */
  private async limited<T>(fn: () => Promise<T>): Promise<T> {
    if (this.activeWrites >= WRITE_CONCURRENCY)
      await new Promise<void>((resolve) => this.writeQueue.push(resolve));
    else this.activeWrites++;
    try {
      return await fn();
    } finally {
      const next = this.writeQueue.shift();
      if (next) next();
      else this.activeWrites--;
    }
  }

  /** Space a write of `size` bytes reserves under the cap. */
  costOf(size: number): number {
    return diskCost(size, this.blockSize);
  }

  private async write(oid: string, data: Buffer, prefetched: boolean): Promise<boolean> {
    const dir = this.dirOf(oid);
    const r = await this.reserve(this.costOf(data.length), dir, !prefetched);
    if (!r.ok) {
      this.skipped++;
      return false;
    }
    const tmp = join(dir, `.tmp-${oid.slice(2)}-${randomBytes(4).toString("hex")}`);
    let stored = false;
    try {
      if (r.newDir) await mkdir(dir, { recursive: true });
      await writeFile(tmp, data, { flag: "wx" });
      const final = this.fileOf(oid);
      await rename(tmp, final);
      const st = await stat(final);
      // A stream's worker stored the same blob meanwhile and it was booked then.
      if (this.index.has(oid)) return true;
      this.index.set(oid, {
        size: data.length,
        bytes: onDisk(st),
        atime: Date.now(),
        verified: true,
        ...(prefetched ? { unread: true } : {}),
      });
      this.used += onDisk(st);
      stored = true;
      await this.accountDir(dir);
      if (r.newDir) await this.accountDir(this.objects);
      return true;
    } catch (err) {
      await removeFile(tmp).catch(() => {});
      this.logger?.warn({ err, oid }, "disk cache write failed; serving from memory");
      return false;
    } finally {
      if (!stored) this.countIn(dir, -1);
      this.reserved -= r.need;
      this.wakeWaiters();
      // Should the estimate ever have been short, restore the cap right away.
      if (this.used + this.reserved > this.maxBytes) await this.reserve(0);
    }
  }

  /**
   * Evicts least recently used unpinned entries until `need` more bytes fit, then reserves
   * them (plus a block when `dir` must be created) and counts a pending entry in `dir`.
   * Serialized so concurrent writers never count the same free space twice, and so a
   * directory is never removed while a write into it is pending.
   */
  private reserve(
    need: number,
    dir?: string,
    evict = true,
  ): Promise<{ ok: boolean; need: number; newDir: boolean }> {
    const run = async () => {
      const newDir = dir !== undefined && !this.dirBytes.has(dir);
      if (newDir) need += this.blockSize;
      const over = () => this.used + this.reserved + need - this.maxBytes;
      if (!evict && over() > 0) return { ok: false, need, newDir };
      // Restoring the cap (need = 0) may evict anything unpinned; making room spares unread prefetches.
      const spare = (e: Entry) => need > 0 && e.unread === true;
      const victims: Array<[string, Entry]> = [];
      // Space held by other writes in progress comes back when they finish: wait for that
      // rather than give up (bounded by the number of writes in progress).
      while (need > 0 && this.reserved > 0 && !this.fitsAfterEviction(need)) {
        await new Promise<void>((resolve) => this.waiters.push(resolve));
      }
      const segs = new Set<Segment>();
      if (over() > 0) {
        const left = new Map<string, number>();
        const seen = new Set<Segment>();
        let freed = 0;
        for (const [oid, e] of this.index) {
          if (over() - freed <= 0) break;
          if (e.seg) {
            // A segment goes whole, at its least recently used entry, unless one of its
            // entries must stay (or a stream still writes it).
            const seg = e.seg;
            if (seen.has(seg)) continue;
            seen.add(seg);
            if (seg.writing || [...seg.oids].some((o) => this.isPinned(o) || spare(this.index.get(o)!)))
              continue;
            segs.add(seg);
            freed += seg.bytes;
            continue;
          }
          if (this.isPinned(oid) || spare(e)) continue;
          victims.push([oid, e]);
          freed += e.bytes;
          const d = this.dirOf(oid);
          const n = (left.get(d) ?? this.dirCount.get(d) ?? 1) - 1;
          left.set(d, n);
          if (n === 0 && d !== dir) freed += this.dirBytes.get(d) ?? 0;
        }
        // Without room for `need`, evict only to restore the cap (need = 0) or not at all.
        if (over() - freed > 0 && need > 0) return { ok: false, need, newDir };
      }
      for (const [oid] of victims) this.index.delete(oid);
      for (const seg of segs) {
        for (const oid of seg.oids) this.index.delete(oid);
        this.evictions += seg.oids.size;
        seg.oids.clear();
      }
      await Promise.all([
        ...victims.map(async ([oid, e]) => {
          await removeFile(this.fileOf(oid));
          this.used -= e.bytes;
          this.evictions++;
        }),
        ...[...segs].map((seg) => this.removeSegment(seg)),
      ]);
      const emptied = new Set<string>();
      for (const [oid] of victims) {
        const d = this.dirOf(oid);
        if (this.countIn(d, -1) === 0 && d !== dir) emptied.add(d);
      }
      for (const d of emptied) await this.removeDirIfEmpty(d);
      if (dir !== undefined) this.countIn(dir, 1);
      this.reserved += need;
      return { ok: true, need, newDir };
    };
    const p = this.lock.then(run, run);
    this.lock = p.catch(() => {});
    return p;
  }

  /** Whether `need` bytes would fit if every unpinned entry were evicted. */
  private fitsAfterEviction(need: number): boolean {
    let evictable = 0;
    for (const [oid, e] of this.index) {
      if (this.used + this.reserved + need - evictable <= this.maxBytes) return true;
      if (!this.isPinned(oid) && !e.unread) evictable += e.bytes;
    }
    return this.used + this.reserved + need - evictable <= this.maxBytes;
  }

  private wakeWaiters(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const resolve of w) resolve();
  }

  private countIn(dir: string, delta: number): number {
    const n = (this.dirCount.get(dir) ?? 0) + delta;
    if (n > 0) this.dirCount.set(dir, n);
    else this.dirCount.delete(dir);
    return Math.max(0, n);
  }

  /** Only called under the lock with no entries or pending writes in `dir`. */
  private async removeDirIfEmpty(dir: string): Promise<void> {
    try {
      await rmdir(dir);
    } catch {
      // Something else lives there; keep it and its size on the books.
      return;
    }
    this.used -= this.dirBytes.get(dir) ?? 0;
    this.dirBytes.delete(dir);
    await this.accountDir(this.objects);
  }

  private async accountDir(dir: string): Promise<void> {
    const st = await stat(dir).catch(() => undefined);
    const now = st ? onDisk(st) : 0;
    this.used += now - (this.dirBytes.get(dir) ?? 0);
    this.dirBytes.set(dir, now);
  }

  private touch(oid: string): void {
    const e = this.index.get(oid);
    if (e === undefined) return;
    e.unread = undefined;
    this.index.delete(oid);
    this.index.set(oid, e);
    const now = Date.now();
    // A segment's file keeps the latest access of its entries.
    const at = e.seg ?? e;
    if (now - at.atime < TOUCH_INTERVAL_MS) return;
    at.atime = now;
    const t = new Date(now);
    utimes(this.fileHolding(oid, e), t, t).catch(() => {});
  }

  /** Its file was gone. */
  private forget(oid: string): void {
    const e = this.index.get(oid);
    if (e === undefined) return;
    this.index.delete(oid);
    if (e.seg) {
      void this.leaveSegment(oid, e.seg).catch(() => undefined);
      return;
    }
    this.used -= e.bytes;
    this.countIn(this.dirOf(oid), -1);
  }

  /** The same string for every blob of a directory: it keys `dirCount`. */
  private dirOf(oid: string): string {
    const i = Number.parseInt(oid.slice(0, 2), 16);
    this.blobDirs[i] ??= blobDir(this.objects, oid);
    return this.blobDirs[i];
  }

  /** Where blob `oid` is (or would be) stored in a file of its own. */
  private fileOf(oid: string): string {
    return blobFile(this.objects, oid);
  }

  /** The file holding entry `e` of blob `oid`: its segment's, or its own. */
  private fileHolding(oid: string, e: Entry): string {
    return e.seg ? e.seg.file : this.fileOf(oid);
  }
}
