/**
 * Background prefetch of file contents. Whole-tree mode (no depth limit) streams a mounted
 * commit's content as one pack, as `git clone --depth 1` would, right after the mount is ready;
 * whatever the stream did not bring (it failed, or a delta's base had to be dropped) falls
 * back to batches. Depth-limited mode fetches the files below a listed directory in batches:
 * shallow files first, bounded by count and bytes, at most `maxConcurrency` requests in
 * flight, paused while the store's memory pressure is above `pressureLimit` of its budget,
 * backing off after failures. Nothing is fetched that the cache cannot keep without evicting
 * (a stream stops when the cache is full). Foreground reads use their own requests, so
 * nothing here delays them.
 */
import { MesaError } from "../errors.js";
import type { Logger } from "../log.js";
import type { InflaterSink } from "../vcs/pack-inflater.js";
import type { BlobFetcher, BlobStore } from "./blob-store.js";

/** A source that can send a whole commit as one pack stream (GitRemote.streamCommit). */
export interface StreamSource extends BlobFetcher {
  streamCommit(
    commit: string,
    onObject: (oid: string, type: string, data: Buffer) => void | Promise<void>,
    opts?: {
      types?: Array<"blob">;
      signal?: AbortSignal;
      maxQueuedBytes?: number;
      sink?: InflaterSink;
      yieldTo?: () => Promise<void>;
    },
  ): Promise<{ objects: number; unresolved: number; bytes: number }>;
}

export interface PrefetchFile {
  oid: string;
  size: number;
  /** 1 = a direct child of the listed directory. */
  depth: number;
}

export interface PrefetcherOptions {
  store: BlobStore;
  enabled: boolean;
  /** Deepest level to fetch (1 = children); null = the whole tree. */
  maxDepth: number | null;
  maxConcurrency: number;
  /** 0..1 of the store's memory budget. */
  pressureLimit: number;
  logger?: Logger;
  /** Oids per request (default 256). */
  maxBatch?: number;
  /** Bytes per request (default budget / (4 × maxConcurrency), within 256 KiB..16 MiB). */
  maxBatchBytes?: number;
  /** Awaited before each piece of a whole-tree stream: lets foreground work go first. */
  yieldTo?: () => Promise<void>;
  /** Awaited before a whole-tree stream starts (see `ForegroundActivity.beforeStream`). */
  beforeStream?: () => Promise<void>;
}

export interface PrefetcherStats {
  enabled: boolean;
  queued: number;
  inFlight: number;
  requests: number;
  blobs: number;
  errors: number;
  skippedLocal: number;
  /** Files larger than the cache could keep: fetched only when read. */
  skippedTooBig: number;
  paused: boolean;
  pauses: number;
  /** Whole-tree streams: started, finished, failed (then batches), stopped because the cache was full. */
  streams: number;
  streamsDone: number;
  streamErrors: number;
  streamsFull: number;
  /** A stream is running now. */
  streaming: boolean;
  /** Blob bytes that arrived in streams, and how many of them were stored. */
  streamedBytes: number;
  streamedBlobs: number;
  /** Files not prefetched because the cache had no free room for them. */
  skippedNoRoom: number;
}

interface Item {
  oid: string;
  size: number;
}

/** FIFO per depth, so shallow files go first while deep ones wait. */
class DepthQueue {
  private readonly levels = new Map<number, { items: Item[]; head: number }>();
  length = 0;

  push(depth: number, item: Item): void {
    let lvl = this.levels.get(depth);
    if (!lvl) {
      lvl = { items: [], head: 0 };
      this.levels.set(depth, lvl);
    }
    lvl.items.push(item);
    this.length++;
  }

  shift(): Item | undefined {
    if (this.length === 0) return undefined;
    const depth = Math.min(...this.levels.keys());
    const lvl = this.levels.get(depth)!;
    const item = lvl.items[lvl.head++]!;
    this.length--;
    if (lvl.head === lvl.items.length) this.levels.delete(depth);
    return item;
  }

  peek(): Item | undefined {
    if (this.length === 0) return undefined;
    const lvl = this.levels.get(Math.min(...this.levels.keys()))!;
    return lvl.items[lvl.head];
  }
}

const PAUSE_POLL_MS = 20;
/** A streamed file whose size the snapshot lacks (a server without object-info). */
const UNKNOWN_SIZE = -1;
const BACKOFF_MIN_MS = 500;
const BACKOFF_MAX_MS = 30_000;

export class Prefetcher {
  private readonly store: BlobStore;
  private readonly enabled: boolean;
  private readonly maxDepth: number | null;
  private readonly maxConcurrency: number;
  private readonly pressureLimit: number;
  private readonly maxBatch: number;
  private readonly maxBatchBytes: number;
  private readonly logger?: Logger;
  private readonly yieldTo?: () => Promise<void>;
  private readonly beforeStream?: () => Promise<void>;
  private readonly queues = new Map<BlobFetcher, DepthQueue>();
  /** Queued or in flight: each oid is asked for once. */
  private readonly pending = new Set<string>();
  private readonly abort = new AbortController();
  private inFlight = 0;
  private inFlightBytes = 0;
  /** What the batches in flight will take of the cache's free room. */
  private inFlightCost = 0;
  private timer?: NodeJS.Timeout;
  private stopped = false;
  private paused = false;
  private backoffMs = 0;
  private backoffUntil = 0;
  private readonly c = {
    requests: 0,
    blobs: 0,
    errors: 0,
    skippedLocal: 0,
    skippedTooBig: 0,
    pauses: 0,
    streams: 0,
    streamsDone: 0,
    streamErrors: 0,
    streamsFull: 0,
    streamedBytes: 0,
    streamedBlobs: 0,
    skippedNoRoom: 0,
  };
  /** Oids a stream brings (or tried to): listings do not queue them again. */
  private readonly streamed = new Set<string>();
  /** Streams run one after another. */
  private streamChain: Promise<void> = Promise.resolve();
  private activeStreams = 0;

  constructor(opts: PrefetcherOptions) {
    this.store = opts.store;
    this.enabled = opts.enabled;
    this.maxDepth = opts.maxDepth;
    this.maxConcurrency = Math.max(1, opts.maxConcurrency);
    this.pressureLimit = Math.min(1, Math.max(0, opts.pressureLimit));
    this.maxBatch = Math.max(1, opts.maxBatch ?? 256);
    this.maxBatchBytes =
      opts.maxBatchBytes ??
      Math.min(
        16 << 20,
        Math.max(256 << 10, Math.floor(opts.store.maxMemoryBytes / (4 * this.maxConcurrency))),
      );
    this.logger = opts.logger;
    this.yieldTo = opts.yieldTo;
    this.beforeStream = opts.beforeStream;
  }

  /** Whether whole-tree streams are used (enabled, no depth limit). */
  get streams(): boolean {
    return this.enabled && this.maxDepth === null;
  }

  /**
   * Whole-tree mode: streams the content of `commit` (its files are `files`; a size is
   * missing when the server lacks object-info) in the background. Streams of several repos
   * run one after another. Resolves when this one ended.
   */
  streamCommit(
    source: StreamSource,
    commit: string,
    files: Array<{ oid: string; size?: number }>,
  ): Promise<void> {
    if (!this.streams || this.stopped) return Promise.resolve();
    const wanted = new Map<string, number>();
    for (const f of files) {
      if (this.streamed.has(f.oid) || this.pending.has(f.oid) || wanted.has(f.oid)) continue;
      if (f.size !== undefined && !this.store.canStore(f.size)) {
        this.c.skippedTooBig++;
        continue;
      }
      if (this.store.hasLocal(f.oid)) {
        this.c.skippedLocal++;
        continue;
      }
      wanted.set(f.oid, f.size ?? UNKNOWN_SIZE);
    }
    if (wanted.size === 0) return Promise.resolve();
    // A commit mostly cached already (a new commit of a mounted repo) costs less in batches.
    if (wanted.size * 2 < files.length) {
      this.queueFiles(
        source,
        [...wanted].map(([oid, size]) => ({ oid, size: Math.max(0, size), depth: 1 })),
      );
      return Promise.resolve();
    }
    for (const oid of wanted.keys()) this.streamed.add(oid);
    const run = () => this.runStream(source, commit, wanted);
    this.activeStreams++;
    const p = this.streamChain.then(run, run).finally(() => {
      this.activeStreams--;
    });
    this.streamChain = p;
    return p;
  }

  private async runStream(source: StreamSource, commit: string, wanted: Map<string, number>): Promise<void> {
    await this.beforeStream?.();
    if (this.stopped) return;
    const room = this.store.prefetchRoom(this.pressureLimit);
    if (room <= 0) {
      this.c.streamsFull++;
      this.c.skippedNoRoom += wanted.size;
      return;
    }
    this.c.streams++;
    const full = new AbortController();
    const signal = AbortSignal.any([this.abort.signal, full.signal]);
    const started = Date.now();
    const stopFull = () => {
      if (full.signal.aborted) return;
      this.logger?.info({ commit }, "prefetch stream stopped: the cache is full");
      full.abort(new MesaError("ABORTED", "the cache is full"));
    };
    // With a disk cache the pack's worker writes the blobs there itself, into room reserved for
    // them: all free room when some sizes are not known.
    let want = 0;
    for (const size of wanted.values())
      want = size === UNKNOWN_SIZE ? Number.POSITIVE_INFINITY : want + this.store.storageCost(size);
    const reservation = this.store.beginStream(want);
    const sink: InflaterSink | undefined = reservation && {
      objects: reservation.objects,
      segments: reservation.segments,
      blockSize: reservation.blockSize,
      budget: reservation.budget,
      oids: [...wanted.keys()],
      onStored: (blobs) => {
        this.c.streamedBlobs += this.store.adoptStreamed(reservation, blobs);
        for (const b of blobs) this.c.streamedBytes += b.size;
      },
      onFull: stopFull,
    };
    try {
      const r = await source.streamCommit(
        commit,
        async (oid, _type, data) => {
          this.c.streamedBytes += data.length;
          if (!wanted.has(oid) || full.signal.aborted) return;
          const stored = await this.store.storePrefetched(oid, data, this.pressureLimit);
          if (stored === "stored") this.c.streamedBlobs++;
          else if (stored === "full") stopFull();
        },
        // Little room left: read little ahead, so stopping at the cap wastes little.
        {
          types: ["blob"],
          signal,
          maxQueuedBytes: Math.max(64 << 10, Math.min(2 << 20, room / 16)),
          sink,
          yieldTo: this.yieldTo,
        },
      );
      this.c.streamsDone++;
      this.logger?.debug(
        { commit, ms: Date.now() - started, objects: r.objects, bytes: r.bytes, unresolved: r.unresolved },
        "prefetch stream done",
      );
      if (r.unresolved > 0) this.fallBack(source, wanted);
    } catch (err) {
      if (this.stopped) return;
      if (full.signal.aborted) {
        this.c.streamsFull++;
        return;
      }
      this.c.streamErrors++;
      this.logger?.warn(
        { commit, err: err instanceof Error ? err.message : String(err) },
        "prefetch stream failed; fetching the rest in batches",
      );
      this.fallBack(source, wanted);
    } finally {
      if (reservation) await this.store.endStream(reservation);
    }
  }

  /** What a stream did not bring goes to the batch queue. */
  private fallBack(source: BlobFetcher, wanted: Map<string, number>): void {
    const rest: PrefetchFile[] = [];
    for (const [oid, size] of wanted) {
      this.streamed.delete(oid);
      if (!this.store.hasLocal(oid)) rest.push({ oid, size: Math.max(0, size), depth: 1 });
    }
    this.queueFiles(source, rest);
  }

  /** Queues the files of a listed directory (the caller walks the tree to maxDepth). */
  onDirectoryListed(source: BlobFetcher, files: PrefetchFile[]): void {
    if (!this.enabled || this.stopped) return;
    this.queueFiles(
      source,
      files.filter((f) => !this.streamed.has(f.oid)),
    );
  }

  private queueFiles(source: BlobFetcher, files: PrefetchFile[]): void {
    let q = this.queues.get(source);
    for (const f of files) {
      if (this.maxDepth !== null && f.depth > this.maxDepth) continue;
      if (this.pending.has(f.oid)) continue;
      if (!this.store.canStore(f.size)) {
        this.c.skippedTooBig++;
        continue;
      }
      if (this.store.hasLocal(f.oid)) {
        this.c.skippedLocal++;
        continue;
      }
      if (!q) {
        q = new DepthQueue();
        this.queues.set(source, q);
      }
      this.pending.add(f.oid);
      q.push(f.depth, { oid: f.oid, size: f.size });
    }
    this.pump();
  }

  stats(): PrefetcherStats {
    let queued = 0;
    for (const q of this.queues.values()) queued += q.length;
    return {
      enabled: this.enabled,
      queued,
      inFlight: this.inFlight,
      ...this.c,
      paused: this.paused,
      streaming: this.activeStreams > 0,
    };
  }

  /**
   * Drops the queue and cancels requests in flight; resolves once a running stream ended. Its
   * worker writes blobs straight to their final names: a process that exits before the worker
   * stopped can leave one torn there (found again, hashed and fetched anew, by the next start).
   */
  stop(): Promise<void> {
    this.stopped = true;
    this.abort.abort();
    clearTimeout(this.timer);
    this.queues.clear();
    this.pending.clear();
    return this.streamChain.catch(() => undefined);
  }

  private underPressure(): boolean {
    const budget = this.store.maxMemoryBytes;
    return this.store.pressureBytes() + this.inFlightBytes > this.pressureLimit * budget;
  }

  private pump(): void {
    if (this.stopped) return;
    while (this.inFlight < this.maxConcurrency && this.queues.size > 0) {
      const wait = this.backoffUntil - Date.now();
      if (wait > 0) {
        this.retryIn(wait);
        return;
      }
      if (this.underPressure()) {
        if (!this.paused) {
          this.paused = true;
          this.c.pauses++;
          this.logger?.debug("prefetch paused: memory pressure");
        }
        this.retryIn(PAUSE_POLL_MS);
        return;
      }
      this.paused = false;
      const next = this.takeBatch();
      if (!next) return;
      this.send(next.source, next.items);
    }
  }

  private retryIn(ms: number): void {
    if (this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.pump();
    }, ms);
    this.timer.unref();
  }

  /** Next batch from the next source (round robin), skipping what became local meanwhile. */
  private takeBatch(): { source: BlobFetcher; items: Item[] } | undefined {
    for (const [source, q] of this.queues) {
      // Rotate: move this source to the end so sources take turns.
      this.queues.delete(source);
      const items: Item[] = [];
      let bytes = 0;
      let cost = 0;
      // Never fetch what the disk cache could not keep without evicting (it would be fetched
      // twice). Without one, the memory pressure pause above bounds what is fetched.
      const room = this.store.hasDisk
        ? this.store.prefetchRoom() - this.inFlightCost
        : Number.POSITIVE_INFINITY;
      while (items.length < this.maxBatch) {
        const head = q.peek();
        if (!head) break;
        if (items.length > 0 && bytes + head.size > this.maxBatchBytes) break;
        if (cost + this.store.storageCost(head.size) > room) {
          if (items.length > 0) break;
          // Nothing more fits: drop this source's queue.
          this.c.skippedNoRoom += q.length;
          for (let it = q.shift(); it; it = q.shift()) this.pending.delete(it.oid);
          break;
        }
        q.shift();
        if (this.store.hasLocal(head.oid)) {
          this.c.skippedLocal++;
          this.pending.delete(head.oid);
          continue;
        }
        items.push(head);
        bytes += head.size;
        cost += this.store.storageCost(head.size);
      }
      if (q.length > 0) this.queues.set(source, q);
      if (items.length > 0) return { source, items };
    }
    return undefined;
  }

  private send(source: BlobFetcher, items: Item[]): void {
    const bytes = items.reduce((n, i) => n + i.size, 0);
    const cost = items.reduce((n, i) => n + this.store.storageCost(i.size), 0);
    this.inFlight++;
    this.inFlightBytes += bytes;
    this.inFlightCost += cost;
    this.c.requests++;
    this.c.blobs += items.length;
    this.store
      .prefetch(
        items.map((i) => i.oid),
        source,
        { signal: this.abort.signal },
      )
      .then(
        () => {
          this.backoffMs = 0;
        },
        (err: unknown) => {
          if (this.stopped) return;
          this.c.errors++;
          this.backoffMs = Math.min(BACKOFF_MAX_MS, Math.max(BACKOFF_MIN_MS, this.backoffMs * 2));
          this.backoffUntil = Date.now() + this.backoffMs;
          this.logger?.debug(
            { err: err instanceof Error ? err.message : String(err), backoffMs: this.backoffMs },
            "prefetch request failed",
          );
        },
      )
      .finally(() => {
        this.inFlight--;
        this.inFlightBytes -= bytes;
        this.inFlightCost -= cost;
        for (const i of items) this.pending.delete(i.oid);
        this.pump();
      });
  }
}
