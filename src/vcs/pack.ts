/**
 * Pack files (gitformat-pack): a streaming reader that verifies everything, and a writer for
 * the packs we push. The reader is fed chunks as they arrive from the network, inflates each
 * object with zlib as soon as its compressed bytes are complete, resolves OFS_DELTA/REF_DELTA,
 * hashes every object and checks the pack's SHA-1 trailer. Any inconsistency is CORRUPT_DATA.
 */
import { createHash, type Hash } from "node:crypto";
import { deflateSync, inflateSync } from "node:zlib";
import { MesaError } from "../errors.js";
import { BaseRing } from "./base-ring.js";
import { applyDelta } from "./delta.js";
import { hashObject, type ObjectType, type Oid } from "./objects.js";

export interface GitObject {
  type: ObjectType;
  data: Buffer;
}

const TYPE_BY_CODE: Record<number, ObjectType> = { 1: "commit", 2: "tree", 3: "blob", 4: "tag" };
const CODE_BY_TYPE: Record<ObjectType, number> = { commit: 1, tree: 2, blob: 3, tag: 4 };
const OFS_DELTA = 6;
const REF_DELTA = 7;
/** Upper bound for one object; beyond this a size header is treated as corrupt. */
const MAX_OBJECT_SIZE = 2 ** 31;
/** Compressed bytes waited for before a first inflate of a large object (then doubling). */
const FIRST_INFLATE_MAX = 1 << 20;

/**
 * The most bytes zlib's deflate makes of `size` bytes (deflateBound, with room to spare; stored
 * blocks cost 5 bytes per 64 KiB). Inflating before that many arrived may fail for want of
 * input, and that work is lost: a 33 MB pack stream re-inflated 9 MB of it in vain.
 */
function compressedBound(size: number): number {
  return size + Math.ceil(size / 4096) + Math.ceil(size / 16384) + 64;
}

function corrupt(why: string): MesaError {
  return new MesaError("CORRUPT_DATA", `corrupt pack from server: ${why}`);
}

/** Thrown internally when the buffered bytes end before the current item does. */
const NEED_MORE = Symbol("need-more");

export interface PackParserOptions {
  /**
   * Streaming mode: every resolved object is handed over here as soon as it is complete and
   * not collected in `objects`. A delta whose base is no longer held is counted in
   * `unresolved` and skipped instead of failing the pack.
   */
  onObject?: (oid: Oid, type: ObjectType, data: Buffer) => void;
  /** Streaming mode: bytes of resolved objects kept as possible delta bases (default 8 MiB). */
  baseCacheBytes?: number;
}

export class PackParser {
  /** Objects resolved so far, by their computed oid (not filled in streaming mode). */
  readonly objects = new Map<Oid, GitObject>();
  /** Streaming mode: deltas skipped because their base was no longer held. */
  unresolved = 0;
  /** Objects by pack offset (OFS_DELTA bases), when not streaming. */
  private readonly byOffset = new Map<number, GitObject>();
  private readonly onObject?: PackParserOptions["onObject"];
  /** Streaming mode: the bases still held. */
  private readonly bases?: BaseRing;
  private readonly pendingRef: Array<{ base: Oid; delta: Buffer; size: number }> = [];
  private readonly hash: Hash = createHash("sha1");
  private buf: Buffer = Buffer.alloc(0);
  private off = 0;
  /** Absolute pack offset of buf[0]. */
  private base = 0;
  private chunks: Buffer[] = [];
  private chunkBytes = 0;
  /** Don't retry parsing until this many bytes are buffered (keeps big objects linear). */
  private need = 12;
  /** Bytes from `off` the current object surely needs (set with NEED_MORE; 0: unknown). */
  private needAtLeast = 0;
  private state: "header" | "objects" | "trailer" | "done" = "header";
  private count = 0;
  private seen = 0;

  constructor(opts: PackParserOptions = {}) {
    this.onObject = opts.onObject;
    if (opts.onObject) this.bases = new BaseRing(opts.baseCacheBytes ?? 8 << 20);
  }

  get objectsParsed(): number {
    return this.seen;
  }

  /** Objects the pack header announced (0 until the header arrived). */
  get objectCount(): number {
    return this.count;
  }

  push(chunk: Uint8Array): void {
    if (chunk.length === 0) return;
    if (this.state === "done") throw corrupt("data after the pack trailer");
    this.chunks.push(Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength));
    this.chunkBytes += chunk.length;
    if (this.buf.length - this.off + this.chunkBytes >= this.need) this.parse(false);
  }

  /** Call when the stream ended; returns all objects or throws CORRUPT_DATA. */
  end(): Map<Oid, GitObject> {
    if (this.state !== "done") this.parse(true);
    if (this.state !== "done") throw corrupt("truncated pack");
    this.resolvePendingRefDeltas();
    return this.objects;
  }

  private compact(): void {
    if (this.chunkBytes === 0 && this.off === 0) return;
    this.base += this.off;
    this.buf = Buffer.concat([this.buf.subarray(this.off), ...this.chunks]);
    this.off = 0;
    this.chunks = [];
    this.chunkBytes = 0;
  }

  private parse(final: boolean): void {
    this.compact();
    try {
      while (this.state !== "done") {
        if (this.state === "header") this.readHeader();
        else if (this.state === "objects") {
          if (this.seen === this.count) this.state = "trailer";
          else this.readObject(final);
        } else this.readTrailer();
      }
      if (this.off !== this.buf.length) throw corrupt("data after the pack trailer");
    } catch (err) {
      if (err !== NEED_MORE) throw err;
      if (final) throw corrupt("truncated pack");
      // Retry once what the object surely needs arrived, else once the buffer has doubled (or at
      // least 64 KiB more arrived).
      const have = this.buf.length - this.off;
      this.need = this.needAtLeast || Math.max(have * 2, have + 65536, 12);
      this.needAtLeast = 0;
    }
  }

  private consume(to: number): void {
    this.hash.update(this.buf.subarray(this.off, to));
    this.off = to;
  }

  private readHeader(): void {
    if (this.buf.length - this.off < 12) throw NEED_MORE;
    const b = this.buf;
    if (b.toString("latin1", this.off, this.off + 4) !== "PACK") throw corrupt("missing PACK signature");
    const version = b.readUInt32BE(this.off + 4);
    if (version !== 2 && version !== 3) throw corrupt(`unsupported pack version ${version}`);
    this.count = b.readUInt32BE(this.off + 8);
    this.consume(this.off + 12);
    this.state = "objects";
  }

  private readTrailer(): void {
    if (this.buf.length - this.off < 20) throw NEED_MORE;
    const expected = this.hash.digest();
    if (!expected.equals(this.buf.subarray(this.off, this.off + 20))) throw corrupt("pack checksum mismatch");
    this.off += 20;
    this.state = "done";
  }

  private readObject(final: boolean): void {
    const b = this.buf;
    const start = this.off;
    let p = start;
    const byte = (): number => {
      if (p >= b.length) throw NEED_MORE;
      return b[p++]!;
    };
    let c = byte();
    const code = (c >> 4) & 7;
    let size = c & 15;
    let shift = 4;
    while (c & 0x80) {
      c = byte();
      size += (c & 0x7f) * 2 ** shift;
      shift += 7;
      if (shift > 35) throw corrupt("object size header too long");
    }
    if (size > MAX_OBJECT_SIZE) throw corrupt("object too large");
    let baseOffset = -1;
    let baseOid = "";
    if (code === OFS_DELTA) {
      c = byte();
      let ofs = c & 0x7f;
      while (c & 0x80) {
        c = byte();
        ofs = (ofs + 1) * 128 + (c & 0x7f);
      }
      baseOffset = this.base + start - ofs;
      if (ofs === 0 || baseOffset < 12) throw corrupt("delta base offset out of range");
    } else if (code === REF_DELTA) {
      if (p + 20 > b.length) throw NEED_MORE;
      baseOid = b.toString("hex", p, p + 20);
      p += 20;
    } else if (!TYPE_BY_CODE[code]) {
      throw corrupt(`unknown object type ${code}`);
    }
    // Wait for all the compressed bytes this object can take (up to 1 MiB; past that, the
    // doubling in `parse`), so zlib runs once.
    const first = Math.min(compressedBound(size), FIRST_INFLATE_MAX);
    if (!final && b.length - p < first) {
      this.needAtLeast = p - this.off + first;
      throw NEED_MORE;
    }
    let data: Buffer;
    let used: number;
    try {
      // chunkSize = the object size: the result is then its own exact buffer, not a view into a
      // 16 KiB zlib chunk (thousands of small objects would otherwise pin 16 KiB each).
      const r = inflateSync(b.subarray(p), {
        info: true,
        maxOutputLength: Math.max(size, 1),
        chunkSize: Math.min(Math.max(size + 1, 64), 1 << 24),
      }) as unknown as {
        buffer: Buffer;
        engine: { bytesWritten: number };
      };
      data = r.buffer;
      used = r.engine.bytesWritten;
    } catch (err) {
      if ((err as { code?: string }).code === "Z_BUF_ERROR" && !final) throw NEED_MORE;
      throw corrupt(`zlib: ${(err as Error).message}`);
    }
    if (data.length !== size) throw corrupt(`object inflated to ${data.length} bytes, header says ${size}`);
    this.consume(p + used);
    const absolute = this.base + start;
    this.seen++;
    if (code === OFS_DELTA) {
      const baseObj = this.baseAt(baseOffset);
      if (!baseObj) {
        if (!this.onObject) throw corrupt("OFS_DELTA base is not an object of this pack");
        this.unresolved++;
        return;
      }
      this.store(absolute, baseObj.type, applyDelta(baseObj.data, data));
    } else if (code === REF_DELTA) {
      const baseObj = this.baseByOid(baseOid);
      if (baseObj) this.store(absolute, baseObj.type, applyDelta(baseObj.data, data));
      else this.pendingRef.push({ base: baseOid, delta: data, size });
    } else {
      this.store(absolute, TYPE_BY_CODE[code]!, data);
    }
  }

  private baseAt(offset: number): GitObject | undefined {
    return this.bases ? this.bases.at(offset) : this.byOffset.get(offset);
  }

  private baseByOid(oid: Oid): GitObject | undefined {
    return this.bases ? this.bases.byOid(oid) : this.objects.get(oid);
  }

  private store(offset: number, type: ObjectType, data: Buffer): void {
    const oid = hashObject(type, data);
    if (!this.onObject) {
      const obj = { type, data };
      this.byOffset.set(offset, obj);
      this.objects.set(oid, obj);
      return;
    }
    this.bases!.put(offset, type, oid, data);
    this.onObject(oid, type, data);
  }

  /** REF_DELTA bases may come later in the pack; resolve until nothing changes. */
  private resolvePendingRefDeltas(): void {
    let pending = this.pendingRef;
    while (pending.length > 0) {
      const next: typeof pending = [];
      for (const d of pending) {
        const baseObj = this.baseByOid(d.base);
        if (!baseObj) next.push(d);
        else {
          const data = applyDelta(baseObj.data, d.delta);
          if (this.onObject) this.onObject(hashObject(baseObj.type, data), baseObj.type, data);
          else this.objects.set(hashObject(baseObj.type, data), { type: baseObj.type, data });
        }
      }
      if (next.length === pending.length) {
        if (!this.onObject) throw corrupt(`REF_DELTA base ${next[0]!.base} is not in the pack`);
        this.unresolved += next.length;
        return;
      }
      pending = next;
    }
  }
}

/** A self-contained (non-delta) pack of the given objects, as receive-pack expects it. */
export function writePack(objects: GitObject[]): Buffer {
  const parts: Buffer[] = [];
  const header = Buffer.alloc(12);
  header.write("PACK", 0, "latin1");
  header.writeUInt32BE(2, 4);
  header.writeUInt32BE(objects.length, 8);
  parts.push(header);
  for (const o of objects) {
    let size = o.data.length;
    const head: number[] = [];
    let c = (CODE_BY_TYPE[o.type] << 4) | (size & 15);
    size = Math.floor(size / 16);
    while (size > 0) {
      head.push(c | 0x80);
      c = size & 0x7f;
      size = Math.floor(size / 128);
    }
    head.push(c);
    parts.push(Buffer.from(head), deflateSync(o.data, { level: 1 }));
  }
  const hash = createHash("sha1");
  for (const p of parts) hash.update(p);
  parts.push(hash.digest());
  return Buffer.concat(parts);
}
