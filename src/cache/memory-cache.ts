/**
 * In-memory LRU of blob contents, bounded by bytes. A Map keeps insertion order, so
 * re-inserting on access makes the first key the least recently used one.
 */
export class MemoryCache {
  private readonly entries = new Map<string, Buffer>();
  private bytes = 0;
  evictions = 0;

  /**
   * @param maxBytes the budget; entries for which `isPinned` is true are kept even above it
   *   (used only when there is no disk cache, so open files are not refetched on every read).
   */
  constructor(
    readonly maxBytes: number,
    private readonly isPinned: (oid: string) => boolean = () => false,
  ) {}

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
    if (data.length > this.maxBytes && !opts.force) return false;
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
