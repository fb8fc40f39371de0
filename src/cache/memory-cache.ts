/**
 * In-memory LRU of blob contents, bounded by bytes. A Map keeps insertion order, so
 * re-inserting on access makes the first key the least recently used one.
 */
export class MemoryCache {
  private readonly entries = new Map<string, Buffer>();
  private bytes = 0;
  evictions = 0;

  readonly maxEntryBytes: number;
  private readonly isPinned: (oid: string) => boolean;

  /**
   * @param maxBytes the budget. `maxEntryBytes` (default: the budget) is the largest blob
   *   admitted; entries for which `isPinned` is true are never evicted (open files that are
   *   nowhere else), and `set(…, { force })` admits one regardless of size.
   */
  constructor(
    readonly maxBytes: number,
    opts: { maxEntryBytes?: number; isPinned?: (oid: string) => boolean } = {},
  ) {
    this.maxEntryBytes = opts.maxEntryBytes ?? maxBytes;
    this.isPinned = opts.isPinned ?? (() => false);
  }

  get size(): number {
    return this.bytes;
  }

  get count(): number {
    return this.entries.size;
  }

  has(oid: string): boolean {
    return this.entries.has(oid);
  }

  get(oid: string): Buffer | undefined {
    const buf = this.entries.get(oid);
    if (buf === undefined) return undefined;
    this.entries.delete(oid);
    this.entries.set(oid, buf);
    return buf;
  }

  /** Stores `data` unless it could never fit; returns whether it was stored. */
  set(oid: string, data: Buffer, opts: { force?: boolean } = {}): boolean {
    if (this.entries.has(oid)) {
      this.get(oid);
      return true;
    }
    if (data.length > this.maxEntryBytes && !opts.force) return false;
    const own = detach(data);
    this.entries.set(oid, own);
    this.bytes += own.length;
    this.shrink();
    return this.entries.has(oid);
  }

  delete(oid: string): void {
    const buf = this.entries.get(oid);
    if (buf === undefined) return;
    this.entries.delete(oid);
    this.bytes -= buf.length;
  }

  /** Evicts least recently used unpinned entries until the budget holds. */
  shrink(): void {
    if (this.bytes <= this.maxBytes) return;
    for (const [oid, buf] of this.entries) {
      if (this.bytes <= this.maxBytes) break;
      if (this.isPinned(oid)) continue;
      this.entries.delete(oid);
      this.bytes -= buf.length;
      this.evictions++;
    }
  }

  clear(): void {
    this.entries.clear();
    this.bytes = 0;
  }
}

/**
 * A blob parsed out of a pack is often a view into the whole response; keeping the view
 * would keep the whole response alive and make the byte budget a lie. Copy those.
 */
export function detach(data: Buffer): Buffer {
  const backing = data.buffer.byteLength;
  if (backing > 64 * 1024 && backing > data.length * 2) return Buffer.from(data);
  return data;
}
