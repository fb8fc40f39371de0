/**
 * Background prefetch of file contents when a directory is listed. Shallow files first,
 * in batches bounded by count and bytes, at most `maxConcurrency` requests in flight, paused
 * while the store's memory pressure is above `pressureLimit` of its budget, backing off after
 * failures. Foreground reads use their own requests, so a queue here never delays them.
 */
import type { Logger } from "../log.js";
import type { BlobFetcher, BlobStore } from "./blob-store.js";

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
  private readonly queues = new Map<BlobFetcher, DepthQueue>();
  /** Queued or in flight: each oid is asked for once. */
  private readonly pending = new Set<string>();
  private readonly abort = new AbortController();
  private inFlight = 0;
  private inFlightBytes = 0;
  private timer?: NodeJS.Timeout;
  private stopped = false;
  private paused = false;
  private backoffMs = 0;
  private backoffUntil = 0;
  private readonly c = { requests: 0, blobs: 0, errors: 0, skippedLocal: 0, skippedTooBig: 0, pauses: 0 };

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
  }

  /** Queues the files of a listed directory (the caller walks the tree to maxDepth). */
  onDirectoryListed(source: BlobFetcher, files: PrefetchFile[]): void {
    if (!this.enabled || this.stopped) return;
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
    };
  }

  /** Drops the queue and cancels requests in flight. */
  stop(): void {
    this.stopped = true;
    this.abort.abort();
    clearTimeout(this.timer);
    this.queues.clear();
    this.pending.clear();
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
      while (items.length < this.maxBatch) {
        const head = q.peek();
        if (!head) break;
        if (items.length > 0 && bytes + head.size > this.maxBatchBytes) break;
        q.shift();
        if (this.store.hasLocal(head.oid)) {
          this.c.skippedLocal++;
          this.pending.delete(head.oid);
          continue;
        }
        items.push(head);
        bytes += head.size;
      }
      if (q.length > 0) this.queues.set(source, q);
      if (items.length > 0) return { source, items };
    }
    return undefined;
  }

  private send(source: BlobFetcher, items: Item[]): void {
    const bytes = items.reduce((n, i) => n + i.size, 0);
    this.inFlight++;
    this.inFlightBytes += bytes;
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
        for (const i of items) this.pending.delete(i.oid);
        this.pump();
      });
  }
}
