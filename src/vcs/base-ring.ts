/**
 * The delta bases a streaming pack parser keeps: copies of recent objects in one buffer used
 * as a ring, found by their pack offset or their id. Holding the inflated buffers themselves
 * instead kept nearly every object alive across several young collections of the worker's small
 * young generation, so it was promoted and its memory outside the heap was freed only at the
 * worker's next full collection; copied here, the inflated buffers die young and their memory
 * is reused at once. The C-shaped stream took 850-960 ms instead of 970-1,250 (see
 * docs/performance.md).
 *
 * Positions are virtual (they only grow; the buffer holds `v % size`), so the entries, kept in
 * the order they were written, are overwritten oldest first: an entry is live while it starts
 * less than `size` bytes before the write position.
 */
import type { ObjectType, Oid } from "./objects.js";

interface Entry {
  type: ObjectType;
  oid: Oid;
  /** Virtual position of its first byte. */
  at: number;
  size: number;
}

export interface Base {
  type: ObjectType;
  /** A view into the ring: valid until the next `put`. */
  data: Buffer;
}

export class BaseRing {
  private ring?: Buffer;
  /** Entries by pack offset, oldest written first. */
  private readonly byOffset = new Map<number, Entry>();
  /** Offsets by object id, made at the first REF_DELTA (see `byOid`). */
  private offsetById?: Map<Oid, number>;
  /** Virtual position of the next write. */
  private head = 0;

  constructor(private readonly size: number) {}

  /** Keeps a copy of `data` as the object at pack `offset` (unless it is larger than the ring). */
  put(offset: number, type: ObjectType, oid: Oid, data: Uint8Array): void {
    if (data.length > this.size) return;
    const at = this.reserve(data.length);
    this.ring ??= Buffer.allocUnsafeSlow(this.size);
    this.ring.set(data, at % this.size);
    this.add(offset, { type, oid, at, size: data.length });
  }

  /** The object at pack `offset`, if still held. */
  at(offset: number): Base | undefined {
    let e = this.byOffset.get(offset);
    if (!e) return undefined;
    // A base used again is likely used once more (a delta chain): one in the older half of the
    // ring moves to the front instead of being overwritten soon.
    if (e.at < this.head - this.size / 2) e = this.renew(offset, e);
    return { type: e.type, data: this.view(e) };
  }

  /**
   * The object with id `oid`, if still held: a REF_DELTA's base. The index by id is made when
   * first needed: a server that was offered `ofs-delta` names bases in the pack by offset, and
   * keeping that index for every object took about 6% of the parse of a 40,000-object pack.
   */
  byOid(oid: Oid): Base | undefined {
    if (!this.offsetById) {
      this.offsetById = new Map();
      for (const [offset, e] of this.byOffset) this.offsetById.set(e.oid, offset);
    }
    const offset = this.offsetById.get(oid);
    return offset === undefined ? undefined : this.at(offset);
  }

  private view(e: Entry): Buffer {
    const start = e.at % this.size;
    return this.ring!.subarray(start, start + e.size);
  }

  /** Room for `n` bytes at the write position (next lap if they would cross the end); evicts what it overwrites. */
  private reserve(n: number): number {
    let at = this.head;
    if ((at % this.size) + n > this.size) at += this.size - (at % this.size);
    this.head = at + n;
    for (const [off, e] of this.byOffset) {
      if (e.at >= this.head - this.size) break;
      this.remove(off, e);
    }
    return at;
  }

  private renew(offset: number, e: Entry): Entry {
    const from = e.at % this.size;
    const at = this.reserve(e.size);
    // Removed if the new place overlaps the old one; copyWithin copies overlapping ranges right.
    this.ring!.copyWithin(at % this.size, from, from + e.size);
    this.remove(offset, e);
    const moved = { ...e, at };
    this.add(offset, moved);
    return moved;
  }

  private add(offset: number, e: Entry): void {
    this.byOffset.set(offset, e);
    this.offsetById?.set(e.oid, offset);
  }

  private remove(offset: number, e: Entry): void {
    if (this.byOffset.get(offset) !== e) return;
    this.byOffset.delete(offset);
    if (this.offsetById?.get(e.oid) === offset) this.offsetById.delete(e.oid);
  }
}
