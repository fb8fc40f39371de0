/**
 * Segments: small blobs of a prefetch stream packed into a few large files of the disk cache
 * instead of one file each. Creating 40,000 files took about a second of kernel time of the
 * stream's worker (inode and directory entry for each: `openat` was 42% of the worker's
 * samples); appending them to a few files costs a fraction of that, and reads of such a blob
 * go to its range of the segment.
 *
 * `segments/<name>.blobs` holds the contents back to back; `segments/<name>.index` one line
 * per blob, `<oid> <offset> <size>\n`, appended after its content was written, so a line
 * never names bytes that were not written (a torn last line is ignored). A segment is written
 * once, by one stream, and never changed after; the disk cache frees it as a whole once none of
 * its blobs is wanted any more.
 */

import { randomBytes } from "node:crypto";
import { closeSync, mkdirSync, openSync, writeSync } from "node:fs";

/** Blobs up to this size go into segments; larger ones keep a file each. */
export const SEGMENT_BLOB_MAX = 256 << 10;
/** A segment takes blobs until it holds this much (the unit the cache frees). */
export const SEGMENT_BYTES = 8 << 20;
/** Bytes of one index line at most (a SHA-256 id and two 15-digit numbers). */
const INDEX_LINE_MAX = 64 + 2 * 16 + 1;

export const SEGMENTS_DIR = "segments";

const DATA_SUFFIX = ".blobs";
const INDEX_SUFFIX = ".index";

export function segmentData(dir: string, name: string): string {
  return `${dir}/${name}${DATA_SUFFIX}`;
}

export function segmentIndex(dir: string, name: string): string {
  return `${dir}/${name}${INDEX_SUFFIX}`;
}

/** Which segment a file name of the segment directory belongs to, and whether it is its index. */
export function segmentOf(file: string): { name: string; index: boolean } | undefined {
  for (const [suffix, index] of [
    [DATA_SUFFIX, false],
    [INDEX_SUFFIX, true],
  ] as const)
    if (file.endsWith(suffix)) return { name: file.slice(0, -suffix.length), index };
  return undefined;
}

/** What storing a blob of `size` bytes in a segment reserves under the cap. */
export function segmentCost(size: number): number {
  return size + INDEX_LINE_MAX;
}

/**
 * What a new segment reserves beyond its blobs: the partial last block of its two files, an
 * extent block should its blobs file be fragmented, and the directory's growth by two entries.
 * (Booked only while the stream runs; then the cache counts what the files take.)
 */
export function segmentOverhead(blockSize: number): number {
  return 4 * blockSize;
}

export interface SegmentLine {
  oid: string;
  offset: number;
  size: number;
}

const LINE_RE = /^([0-9a-f]{40}|[0-9a-f]{64}) (\d{1,15}) (\d{1,15})$/;

/** The whole lines of an index (a torn or foreign line is skipped). */
export function parseSegmentIndex(text: string): SegmentLine[] {
  const out: SegmentLine[] = [];
  const lines = text.split("\n");
  // The part after the last newline is a line whose writing was cut short.
  lines.pop();
  for (const line of lines) {
    const m = LINE_RE.exec(line);
    if (m) out.push({ oid: m[1] as string, offset: Number(m[2]), size: Number(m[3]) });
  }
  return out;
}

/**
 * Appends blobs to segments in `dir`, starting a new one past `SEGMENT_BYTES`; synchronous
 * (it runs in the stream's worker thread). `flush` writes the index lines of what was
 * appended since the last flush; call it before reporting those blobs, and `close` at the end.
 */
export class SegmentWriter {
  private name?: string;
  private data = -1;
  private index = -1;
  private offset = 0;
  private lines = "";
  /** Segments begun, for the reservation's per-segment overhead. */
  started = 0;

  constructor(private readonly dir: string) {}

  /** Where `data` now is. */
  append(oid: string, data: Uint8Array): { segment: string; offset: number; newSegment: boolean } {
    let newSegment = false;
    if (this.name === undefined || this.offset >= SEGMENT_BYTES) {
      this.close();
      this.open();
      newSegment = true;
    }
    const at = this.offset;
    for (let off = 0; off < data.length; ) off += writeSync(this.data, data, off, data.length - off);
    this.offset += data.length;
    this.lines += `${oid} ${at} ${data.length}\n`;
    return { segment: this.name as string, offset: at, newSegment };
  }

  flush(): void {
    if (this.lines.length === 0 || this.index < 0) return;
    const buf = Buffer.from(this.lines);
    for (let off = 0; off < buf.length; ) off += writeSync(this.index, buf, off, buf.length - off);
    this.lines = "";
  }

  close(): void {
    if (this.name === undefined) return;
    try {
      this.flush();
    } finally {
      closeSync(this.data);
      closeSync(this.index);
      this.name = undefined;
      this.data = this.index = -1;
    }
  }

  private open(): void {
    mkdirSync(this.dir, { recursive: true });
    // Names sort by creation, and never repeat (a segment is never written to again).
    const name = `${Date.now().toString(36)}-${randomBytes(6).toString("hex")}`;
    this.data = openSync(segmentData(this.dir, name), "wx");
    try {
      this.index = openSync(segmentIndex(this.dir, name), "wx");
    } catch (err) {
      closeSync(this.data);
      this.data = -1;
      throw err;
    }
    this.name = name;
    this.offset = 0;
    this.started++;
  }
}
