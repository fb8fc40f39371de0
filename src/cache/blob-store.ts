/**
 * The blob store the filesystem reads through: memory cache → disk cache → network.
 * Foreground misses arriving within a short window are coalesced into one fetch per source,
 * concurrent requests for one oid share one load, every fetched blob is verified against its
 * oid before anything is stored, and background prefetches never sit in front of a read.
 */
import { isMesaError, MesaError } from "../errors.js";
import type { Logger } from "../log.js";
import type { BlobLocation } from "../workspace/fs-api.js";
import { DiskCache, type StreamedBlob, type StreamReservation } from "./disk-cache.js";
import { MemoryCache } from "./memory-cache.js";
import { assertOid, blobMatches } from "./verify.js";

/** Implemented by the Git client (GitRemote.fetchBlobs), one per repo. */
export interface BlobFetcher {
  fetchBlobs(oids: string[], opts?: { signal?: AbortSignal }): Promise<Map<string, Buffer>>;
}

export interface BlobStoreOptions {
  /** undefined = no disk cache (MESA_CACHE_ENABLED=false). */
  disk?: { path: string; maxBytes: number };
  maxMemoryBytes: number;
  /** Oids per fetch request (default 256). */
  maxBatch?: number;
  /** Coalesce foreground misses arriving within this window (default 2 ms). */
  batchWindowMs?: number;
  /** A fetch request that takes longer fails with TIMEOUT (default 120 s). */
  fetchTimeoutMs?: number;
  logger?: Logger;
}

export interface BlobStoreStats {
  memoryBytes: number;
  memoryEntries: number;
  memoryMaxBytes: number;
  diskBytes: number;
  diskEntries: number;
  diskMaxBytes: number;
  /** Reads served locally (memory + disk). */
  hits: number;
  memoryHits: number;
  diskHits: number;
  /** Reads that had to go to the network. */
  misses: number;
  /** Reads that joined a load already in progress for the same oid. */
  coalesced: number;
  fetchedBlobs: number;
  fetchedBytes: number;
  /** Foreground fetch requests. */
  fetchRequests: number;
  /** Background (prefetch) fetch requests. */
  prefetchRequests: number;
  prefetchedBlobs: number;
  /** Disk cache evictions. */
  evictions: number;
  memoryEvictions: number;
  /** Blobs not written to disk because they could not fit under the cap. */
  diskSkipped: number;
  /** Blobs rejected because their content did not match their oid. */
  corrupt: number;
  fetchErrors: number;
  /** Disk entries left from before this start that a background pass hashed and found whole. */
  verifiedInBackground: number;
  inflight: number;
  /** Fetched bytes held while being written to disk. */
  transientBytes: number;
  pinned: number;
}

interface Flight {
  promise: Promise<Buffer>;
  resolve: (data: Buffer) => void;
  reject: (err: Error) => void;
  background: boolean;
}

const DEFAULT_MAX_BATCH = 256;
const DEFAULT_BATCH_WINDOW_MS = 2;
const DEFAULT_FETCH_TIMEOUT_MS = 120_000;

export class BlobStore {
  private readonly memory: MemoryCache;
  private readonly disk?: DiskCache;
  private readonly maxBatch: number;
  private readonly batchWindowMs: number;
  private readonly fetchTimeoutMs: number;
  private readonly logger?: Logger;
  private readonly pins = new Map<string, number>();
  private readonly flights = new Map<string, Flight>();
  private readonly queues = new Map<
    BlobFetcher,
    { batch: Array<[string, Flight]>; timer?: NodeJS.Timeout }
  >();
  private readonly closing = new AbortController();
  private opened = false;
  private closed = false;
  private transientBytes = 0;
  /** The last fetch failed (log the next failures quietly until one succeeds). */
  private failing = false;
  private readonly deliveries = new Set<Promise<void>>();
  private readonly c = {
    memoryHits: 0,
    diskHits: 0,
    misses: 0,
    coalesced: 0,
    fetchedBlobs: 0,
    fetchedBytes: 0,
    fetchRequests: 0,
    prefetchRequests: 0,
    prefetchedBlobs: 0,
    corrupt: 0,
    fetchErrors: 0,
    verifiedInBackground: 0,
  };

  constructor(opts: BlobStoreOptions) {
    if (!(opts.maxMemoryBytes >= 0)) throw new MesaError("INVALID_ARGUMENT", "maxMemoryBytes must be ≥ 0");
    if (opts.disk && !(opts.disk.maxBytes >= 0))
      throw new MesaError("INVALID_ARGUMENT", "disk cache maxBytes must be ≥ 0");
    this.logger = opts.logger;
    this.maxBatch = Math.max(1, opts.maxBatch ?? DEFAULT_MAX_BATCH);
    this.batchWindowMs = Math.max(0, opts.batchWindowMs ?? DEFAULT_BATCH_WINDOW_MS);
    this.fetchTimeoutMs = opts.fetchTimeoutMs ?? DEFAULT_FETCH_TIMEOUT_MS;
    // An open file that is not on disk (no disk cache, or too big for it) stays in memory,
    // or every read of it would refetch it. With a disk cache, large blobs are read from disk
    // in ranges, so memory keeps only blobs up to an eighth of its budget.
    this.memory = new MemoryCache(opts.maxMemoryBytes, {
      maxEntryBytes: opts.disk ? Math.floor(opts.maxMemoryBytes / 8) : opts.maxMemoryBytes,
      isPinned: (oid) => this.isPinned(oid) && !(this.disk?.has(oid) ?? false),
    });
    if (opts.disk)
      this.disk = new DiskCache({
        path: opts.disk.path,
        maxBytes: opts.disk.maxBytes,
        logger: opts.logger,
        isPinned: (oid) => this.isPinned(oid),
      });
  }

  get maxMemoryBytes(): number {
    return this.memory.maxBytes;
  }

  get hasDisk(): boolean {
    return this.disk !== undefined;
  }

  /** Scans and indexes the disk cache (it survives restarts). */
  async open(): Promise<void> {
    if (this.opened) return;
    await this.disk?.open();
    this.opened = true;
  }

  /** The whole blob: memory → disk → network. */
  async get(oid: string, source: BlobFetcher, opts: { signal?: AbortSignal } = {}): Promise<Buffer> {
    assertOid(oid);
    this.assertUsable();
    return withSignal(this.load(oid, source), opts.signal);
  }

  /**
   * `length` bytes at `offset` (fewer at the end). Served from the disk file without loading
   * the whole blob when it is there, so reading a large file keeps memory flat.
   */
  async readRange(
    oid: string,
    offset: number,
    length: number,
    source: BlobFetcher,
    opts: { signal?: AbortSignal } = {},
  ): Promise<Buffer> {
    assertOid(oid);
    this.assertUsable();
    if (!Number.isSafeInteger(offset) || offset < 0 || !Number.isSafeInteger(length) || length < 0)
      throw new MesaError("INVALID_ARGUMENT", `bad range ${offset}+${length}`);
    const mem = this.memory.get(oid);
    if (mem) {
      this.c.memoryHits++;
      return mem.subarray(offset, offset + length);
    }
    if (this.disk?.has(oid) && !this.flights.has(oid)) {
      if (this.disk.isVerified(oid) || (await this.verifyDiskEntry(oid))) {
        const part = await this.disk.readRange(oid, offset, length);
        if (part) {
          this.c.diskHits++;
          return part;
        }
      }
    }
    const data = await this.get(oid, source, opts);
    return data.subarray(offset, offset + length);
  }

  hasLocal(oid: string): boolean {
    return this.memory.has(oid) || (this.disk?.has(oid) ?? false);
  }

  /**
   * Where blob `oid` is on disk, when it is there and verified; it counts as read from then on
   * (whoever asked will read it directly, unseen by the cache's recency order).
   */
  localBlob(oid: string): BlobLocation | undefined {
    if (!this.disk?.isVerified(oid) || this.flights.has(oid)) return undefined;
    this.disk.markRead(oid);
    return this.disk.location(oid);
  }

  private readonly localListeners = new Set<(oids: string[]) => void>();

  /** Tells `listener` about blobs stored on disk (`localBlob` names them from then on). */
  onLocal(listener: (oids: string[]) => void): () => void {
    this.localListeners.add(listener);
    return () => this.localListeners.delete(listener);
  }

  private storedLocally(oids: string[]): void {
    for (const l of this.localListeners) {
      try {
        l(oids);
      } catch (err) {
        this.logger?.warn({ err }, "a listener for stored blobs failed");
      }
    }
  }

  /** Size of a locally stored blob, without reading it. */
  localSize(oid: string): number | undefined {
    return this.memory.get(oid)?.length ?? this.disk?.sizeOf(oid);
  }

  /** Whether a blob of `size` bytes can be kept locally at all (prefetching it otherwise is waste). */
  canStore(size: number): boolean {
    return this.disk ? this.disk.canHold(size) : size <= this.memory.maxEntryBytes;
  }

  /** Pinned blobs (open files) are never evicted. Counted: pin twice, unpin twice. */
  pin(oid: string): void {
    this.pins.set(oid, (this.pins.get(oid) ?? 0) + 1);
  }

  unpin(oid: string): void {
    const n = this.pins.get(oid) ?? 0;
    if (n <= 1) {
      this.pins.delete(oid);
      if (n === 1) this.memory.shrink();
    } else this.pins.set(oid, n - 1);
  }

  isPinned(oid: string): boolean {
    return this.pins.has(oid);
  }

  /**
   * Background fetch of `oids` (one request per `maxBatch` of them, sequentially): skips
   * what is local or already loading, stores to disk (to memory only without a disk cache),
   * never touches the foreground queue. Rejects with the first request's error.
   */
  async prefetch(oids: string[], source: BlobFetcher, opts: { signal?: AbortSignal } = {}): Promise<void> {
    for (const oid of oids) assertOid(oid);
    this.assertUsable();
    const wanted: Array<[string, Flight]> = [];
    for (const oid of new Set(oids)) {
      if (this.hasLocal(oid) || this.flights.has(oid)) continue;
      wanted.push([oid, this.newFlight(oid, true)]);
    }
    for (let i = 0; i < wanted.length; i += this.maxBatch) {
      const chunk = wanted.slice(i, i + this.maxBatch);
      const err = opts.signal?.aborted
        ? new MesaError("ABORTED", "prefetch stopped")
        : await this.fetchBatch(source, chunk, true, opts.signal);
      if (err) {
        for (const [oid, f] of wanted.slice(i + (opts.signal?.aborted ? 0 : chunk.length)))
          this.fail(oid, f, err);
        throw err;
      }
    }
  }

  /**
   * Bytes that prefetching may still add without evicting anything: free space under the disk
   * cap (less data waiting for its disk write), or without a disk cache the memory budget left
   * under `pressureLimit`.
   */
  prefetchRoom(pressureLimit = 1): number {
    if (this.disk) return Math.max(0, this.disk.freeBytes - this.transientBytes);
    return Math.max(0, Math.floor(pressureLimit * this.memory.maxBytes) - this.memory.size);
  }

  /** What keeping a blob of `size` bytes costs of `prefetchRoom` (disk blocks, or bytes). */
  storageCost(size: number): number {
    return this.disk ? this.disk.costOf(size) : size;
  }

  /**
   * Keeps one blob that arrived from a prefetch stream, already verified by its producer (its
   * oid was computed from its content). Stored only into free space: "full" when it does not
   * fit, "skipped" when it is local already or a read is fetching it.
   */
  async storePrefetched(
    oid: string,
    data: Buffer,
    pressureLimit = 1,
  ): Promise<"stored" | "full" | "skipped"> {
    if (this.closed) return "skipped";
    if (this.hasLocal(oid) || this.flights.has(oid)) return "skipped";
    if (!this.disk) {
      if (this.memory.size + data.length > pressureLimit * this.memory.maxBytes) return "full";
      this.c.fetchedBlobs++;
      this.c.fetchedBytes += data.length;
      this.c.prefetchedBlobs++;
      return this.memory.set(oid, data) ? "stored" : "full";
    }
    if (this.prefetchRoom() < this.disk.costOf(data.length)) return "full";
    this.c.fetchedBlobs++;
    this.c.fetchedBytes += data.length;
    this.c.prefetchedBlobs++;
    const cost = this.disk.costOf(data.length);
    this.transientBytes += cost;
    let stored: boolean;
    try {
      stored = await this.disk.put(oid, data, { prefetched: true });
    } finally {
      this.transientBytes -= cost;
    }
    if (!stored) return "full";
    this.storedLocally([oid]);
    return "stored";
  }

  /**
   * Room for a prefetch stream to write blobs of `want` bytes (as `storageCost` counts them)
   * straight into the disk cache; undefined without one (the stream's blobs then come through
   * `storePrefetched`). Pair it with `endStream`.
   */
  beginStream(want: number): StreamReservation | undefined {
    if (!this.disk || this.closed) return undefined;
    return this.disk.beginStream(Math.min(want, this.prefetchRoom()));
  }

  /** Blobs a stream's worker stored; returns how many were new. */
  adoptStreamed(res: StreamReservation, blobs: StreamedBlob[]): number {
    if (!this.disk) return 0;
    const added = this.disk.adoptStreamed(res, blobs);
    for (const b of blobs) this.c.fetchedBytes += b.size;
    this.c.fetchedBlobs += blobs.length;
    this.c.prefetchedBlobs += blobs.length;
    this.storedLocally(blobs.map((b) => b.oid));
    return added;
  }

  async endStream(res: StreamReservation): Promise<void> {
    await this.disk?.endStream(res);
  }

  /**
   * How many bytes the store holds that prefetching adds to: fetched data waiting for its
   * disk write, plus, without a disk cache, the memory cache itself (prefetch fills it).
   */
  pressureBytes(): number {
    return this.transientBytes + (this.disk ? 0 : this.memory.size);
  }

  stats(): BlobStoreStats {
    return {
      memoryBytes: this.memory.size,
      memoryEntries: this.memory.count,
      memoryMaxBytes: this.memory.maxBytes,
      diskBytes: this.disk?.usedBytes ?? 0,
      diskEntries: this.disk?.count ?? 0,
      diskMaxBytes: this.disk?.maxBytes ?? 0,
      hits: this.c.memoryHits + this.c.diskHits,
      ...this.c,
      evictions: this.disk?.evictions ?? 0,
      memoryEvictions: this.memory.evictions,
      diskSkipped: this.disk?.skipped ?? 0,
      inflight: this.flights.size,
      transientBytes: this.transientBytes,
      pinned: this.pins.size,
    };
  }

  /** Waits until blobs already fetched are written to disk. */
  async flush(): Promise<void> {
    await Promise.allSettled([...this.deliveries]);
    await this.disk?.flush();
  }

  /** Aborts fetches in progress, fails queued reads with ABORTED, waits for disk writes. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.closing.abort();
    const err = new MesaError("ABORTED", "blob store closed");
    for (const q of this.queues.values()) {
      clearTimeout(q.timer);
      for (const [oid, f] of q.batch) this.fail(oid, f, err);
    }
    this.queues.clear();
    await this.disk?.flush();
    this.memory.clear();
  }

  private assertUsable(): void {
    if (this.closed) throw new MesaError("ABORTED", "blob store closed");
    if (!this.opened && this.disk) throw new MesaError("INTERNAL", "BlobStore.open() must be called first");
  }

  private load(oid: string, source: BlobFetcher): Promise<Buffer> {
    const mem = this.memory.get(oid);
    if (mem) {
      this.c.memoryHits++;
      return Promise.resolve(mem);
    }
    const flight = this.flights.get(oid);
    if (flight) {
      this.c.coalesced++;
      if (!flight.background) return flight.promise;
      // A prefetch already asked for it: take its result, or load it ourselves if it fails.
      return flight.promise.then(
        (data) => {
          this.disk?.markRead(oid);
          this.keepInMemory(oid, data);
          return data;
        },
        () => this.load(oid, source),
      );
    }
    const f = this.newFlight(oid, false);
    void this.loadFromDiskOrQueue(oid, f, source);
    return f.promise;
  }

  private async loadFromDiskOrQueue(oid: string, f: Flight, source: BlobFetcher): Promise<void> {
    if (this.disk?.has(oid)) {
      try {
        const data = await this.disk.read(oid);
        if (data && blobMatches(oid, data)) {
          this.disk.markVerified(oid);
          this.c.diskHits++;
          this.keepInMemory(oid, data);
          this.flights.delete(oid);
          f.resolve(data);
          return;
        }
        if (data) {
          this.c.corrupt++;
          this.logger?.warn({ oid }, "cached blob failed verification; refetching");
          await this.disk.delete(oid);
        }
      } catch (err) {
        this.logger?.warn({ err, oid }, "disk cache read failed; refetching");
      }
    }
    if (this.closed) {
      this.fail(oid, f, new MesaError("ABORTED", "blob store closed"));
      return;
    }
    this.c.misses++;
    this.enqueue(oid, f, source);
  }

  private enqueue(oid: string, f: Flight, source: BlobFetcher): void {
    let q = this.queues.get(source);
    if (!q) {
      q = { batch: [] };
      this.queues.set(source, q);
    }
    q.batch.push([oid, f]);
    if (q.batch.length >= this.maxBatch) this.flushQueue(source);
    else q.timer ??= setTimeout(() => this.flushQueue(source), this.batchWindowMs);
  }

  private flushQueue(source: BlobFetcher): void {
    const q = this.queues.get(source);
    if (!q) return;
    this.queues.delete(source);
    clearTimeout(q.timer);
    void this.fetchBatch(source, q.batch, false);
  }

  /** One request for `batch`; settles every flight in it. Returns the request's error, if any. */
  private async fetchBatch(
    source: BlobFetcher,
    batch: Array<[string, Flight]>,
    background: boolean,
    signal?: AbortSignal,
  ): Promise<MesaError | undefined> {
    if (background) this.c.prefetchRequests++;
    else this.c.fetchRequests++;
    const timeout = AbortSignal.timeout(this.fetchTimeoutMs);
    const signals = [this.closing.signal, timeout];
    if (signal) signals.push(signal);
    const oids = batch.map(([oid]) => oid);
    let got: Map<string, Buffer>;
    try {
      got = await source.fetchBlobs(oids, { signal: AbortSignal.any(signals) });
    } catch (cause) {
      const err = fetchError(
        cause,
        oids.length,
        timeout.aborted,
        this.closing.signal.aborted || !!signal?.aborted,
      );
      this.c.fetchErrors++;
      if (err.code !== "ABORTED") {
        // While the server stays down every read fails: say so once, not once per read.
        const line = { err: err.message, code: err.code, blobs: oids.length, background };
        if (this.failing) this.logger?.debug(line, "blob fetch failed");
        else
          this.logger?.warn(line, "blob fetch failed; reads of uncached content fail until it works again");
        this.failing = true;
      }
      for (const [oid, f] of batch) this.fail(oid, f, err);
      return err;
    }
    if (this.failing) {
      this.failing = false;
      this.logger?.info("blob fetches work again");
    }
    const writes: Promise<void>[] = [];
    for (const [oid, f] of batch) {
      const data = got.get(oid);
      if (data === undefined) {
        this.fail(oid, f, new MesaError("PROTOCOL", `the server did not send blob ${oid}`));
      } else if (!blobMatches(oid, data)) {
        this.c.corrupt++;
        this.logger?.warn({ oid, size: data.length }, "fetched blob does not match its id; discarded");
        this.fail(
          oid,
          f,
          new MesaError("CORRUPT_DATA", `blob ${oid} received from the server does not match its id`, {
            hint: "the server or a proxy sent bad data; nothing was stored",
          }),
        );
      } else {
        this.c.fetchedBlobs++;
        this.c.fetchedBytes += data.length;
        if (background) this.c.prefetchedBlobs++;
        const d = this.deliver(oid, data, f, background);
        this.deliveries.add(d);
        const done = () => this.deliveries.delete(d);
        d.then(done, done);
        writes.push(d);
      }
    }
    await Promise.all(writes);
    return undefined;
  }

  /** Stores a verified blob, hands it to waiters, and ends its flight once it is local. */
  private async deliver(oid: string, data: Buffer, f: Flight, background: boolean): Promise<void> {
    // Prefetched data goes to disk only, so it never pushes the working set out of memory.
    if (!this.disk || !background) this.keepInMemory(oid, data);
    // When the disk falls behind, readers wait for the write: fetched data waiting for the
    // disk must not grow past the memory budget.
    if (this.transientBytes <= this.memory.maxBytes) f.resolve(data);
    let stored = false;
    if (this.disk && !this.closed) {
      // The flight stays registered until the write lands, so a read meanwhile joins it.
      this.transientBytes += data.length;
      try {
        stored = await this.disk.put(oid, data, { prefetched: background });
        // Too big for the disk cap but open: keep it in memory while it is open.
        if (!stored && this.isPinned(oid)) this.keepInMemory(oid, data);
        // On disk now: reads take ranges from the disk file (and the kernel's page cache), so
        // the memory copy would only double what the daemon holds.
        else if (stored) this.memory.delete(oid);
      } finally {
        this.transientBytes -= data.length;
      }
    }
    f.resolve(data);
    if (this.flights.get(oid) === f) this.flights.delete(oid);
    if (stored) this.storedLocally([oid]);
  }

  /** Memory copy when it fits the budget, or regardless of it for an open file not on disk. */
  private keepInMemory(oid: string, data: Buffer): void {
    this.memory.set(oid, data, { force: this.isPinned(oid) && !(this.disk?.has(oid) ?? false) });
  }

  private newFlight(oid: string, background: boolean): Flight {
    let resolve!: (data: Buffer) => void;
    let reject!: (err: Error) => void;
    const promise = new Promise<Buffer>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    // Waiters may all have gone (aborted reads, prefetch); an unobserved failure is not a crash.
    promise.catch(() => {});
    const f: Flight = { promise, resolve, reject, background };
    this.flights.set(oid, f);
    return f;
  }

  private fail(oid: string, f: Flight, err: Error): void {
    if (this.flights.get(oid) === f) this.flights.delete(oid);
    f.reject(err);
  }

  /**
   * Hashes the disk cache's files not verified since startup in the background (see
   * `DiskCache.verifyInBackground`); each is announced as local once verified. Stops on close.
   */
  async verifyInBackground(): Promise<void> {
    if (!this.disk || this.closed) return;
    await this.disk.verifyInBackground(
      (oids) => {
        this.c.verifiedInBackground += oids.length;
        this.storedLocally(oids);
      },
      () => this.c.corrupt++,
      this.closing.signal,
    );
  }

  /** First read of a disk entry since startup: hash the file once (torn writes, bit rot). */
  private async verifyDiskEntry(oid: string): Promise<boolean> {
    const ok = (await this.disk?.verify(oid)) ?? false;
    if (!ok) this.c.corrupt++;
    return ok;
  }
}

function fetchError(cause: unknown, count: number, timedOut: boolean, aborted: boolean): MesaError {
  if (timedOut) return new MesaError("TIMEOUT", `fetching ${count} blob(s) timed out`, { cause });
  if (aborted) return new MesaError("ABORTED", `fetching ${count} blob(s) was cancelled`, { cause });
  if (isMesaError(cause)) return cause;
  const msg = cause instanceof Error ? cause.message : String(cause);
  return new MesaError("NETWORK", `fetching ${count} blob(s) failed: ${msg}`, { cause });
}

/** Lets one caller stop waiting without cancelling the shared load others may wait on. */
function withSignal<T>(p: Promise<T>, signal?: AbortSignal): Promise<T> {
  if (!signal) return p;
  if (signal.aborted) return Promise.reject(new MesaError("ABORTED", "read cancelled"));
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(new MesaError("ABORTED", "read cancelled"));
    signal.addEventListener("abort", onAbort, { once: true });
    p.then(
      (v) => {
        signal.removeEventListener("abort", onAbort);
        resolve(v);
      },
      (e) => {
        signal.removeEventListener("abort", onAbort);
        reject(e);
      },
    );
  });
}
