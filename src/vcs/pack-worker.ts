/**
 * Worker thread of `PackInflater`: parses a pack stream (inflation, delta resolution, SHA-1 of
 * every object, the pack's trailer) off the main thread and posts the objects back in batches,
 * or, given a blob directory, writes the wanted blobs there itself and posts only what it
 * stored (the main thread then never holds their content).
 */
import { closeSync, fstatSync, mkdirSync, openSync, rmSync, writeSync } from "node:fs";
import { getHeapStatistics } from "node:v8";
import { parentPort, workerData } from "node:worker_threads";
import { blobDir, blobFile, diskCost, onDisk } from "../cache/blob-files.js";
import type { StreamedBlob } from "../cache/disk-cache.js";
import { SEGMENT_BLOB_MAX, SegmentWriter, segmentCost, segmentOverhead } from "../cache/segments.js";
import type { ObjectType, Oid } from "./objects.js";
import { PackParser } from "./pack.js";

/** `stop`: the stream is abandoned; the worker answers `stopped` once all it stored was posted. */
export type ToWorker = { t: "chunk"; data: Uint8Array } | { t: "end" } | { t: "stop" };

/** A blob directory (the disk cache's layout) the worker writes wanted blobs into. */
export interface BlobSink {
  objects: string;
  blockSize: number;
  /** Bytes it may fill (blocks, as `diskCost` counts them); past them it reports full. */
  budget: number;
  oids: string[];
  /** The cache's segment directory: small blobs go there (see segments.ts). */
  segments?: string;
}

export interface WorkerOptions {
  /** Object types to post back (default: all). */
  types?: string[];
  /** Bytes of objects kept as delta bases. */
  baseCacheBytes?: number;
  sink?: BlobSink;
}

export interface WorkerObject {
  oid: Oid;
  type: ObjectType;
  data: Uint8Array;
}

export type FromWorker =
  | { t: "objects"; objects: WorkerObject[]; stored: StreamedBlob[]; full: boolean; bytes: number }
  | { t: "done"; objects: number; unresolved: number }
  | { t: "stopped" }
  | { t: "error"; message: string; code?: string };

/** Writes one blob at its final name, never over an existing file (a reader may hold it). */
function writeBlob(sink: BlobSink, oid: string, data: Uint8Array): StreamedBlob | "exists" {
  const file = blobFile(sink.objects, oid);
  let fd: number;
  try {
    fd = openSync(file, "wx");
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === "EEXIST") return "exists";
    if (code !== "ENOENT") throw err;
    // Its directory was removed when it emptied, or never made.
    mkdirSync(blobDir(sink.objects, oid), { recursive: true });
    fd = openSync(file, "wx");
  }
  let written = false;
  try {
    for (let off = 0; off < data.length; ) off += writeSync(fd, data, off, data.length - off);
    const bytes = onDisk(fstatSync(fd));
    written = true;
    return { oid, size: data.length, bytes, cost: diskCost(data.length, sink.blockSize) };
  } finally {
    closeSync(fd);
    // A partial file (no space) must not stay under the blob's name.
    if (!written) rmSync(file, { force: true });
  }
}

const port = parentPort;
if (port) {
  let batch: WorkerObject[] = [];
  let stored: StreamedBlob[] = [];
  const opts = (workerData ?? {}) as WorkerOptions;
  const wantTypes = opts.types ? new Set(opts.types) : undefined;
  const sink = opts.sink;
  const sinkOids = new Set(sink?.oids);
  const segments = sink?.segments ? new SegmentWriter(sink.segments) : undefined;
  let sinkUsed = 0;
  let full = false;
  const sinkBlob = (to: BlobSink, oid: string, data: Uint8Array) => {
    if (full || !sinkOids.has(oid)) return;
    sinkOids.delete(oid);
    const inSegment = segments !== undefined && data.length <= SEGMENT_BLOB_MAX;
    const cost = inSegment
      ? segmentCost(data.length) + segmentOverhead(to.blockSize)
      : diskCost(data.length, to.blockSize);
    if (sinkUsed + cost > to.budget) {
      full = true;
      return;
    }
    try {
      if (inSegment) {
        const at = segments.append(oid, data);
        // A segment's overhead is counted with its first blob; the cache books that much until
        // the stream ends, then what the segment takes on disk.
        const c = segmentCost(data.length) + (at.newSegment ? segmentOverhead(to.blockSize) : 0);
        sinkUsed += c;
        stored.push({
          oid,
          size: data.length,
          bytes: c,
          cost: c,
          segment: at.segment,
          offset: at.offset,
        });
        return;
      }
      const r = writeBlob(to, oid, data);
      if (r === "exists") return;
      sinkUsed += r.cost;
      stored.push(r);
    } catch {
      // No space or no permission: stop storing, as the cap would.
      full = true;
    }
  };
  // Parsed chunks and inflated objects die at once, but their memory lies outside this
  // worker's heap, where nothing prompts a collection: 50 MB of them were waiting when a
  // stream started, measured. A young collection whenever they grew by 8 MB frees them (`gc`
  // is there when the daemon runs with --expose-gc, as `mount -d` starts it; delta bases are
  // held outside the heap too, hence growth rather than a level).
  const gc = (globalThis as { gc?: (o: { type: "minor" }) => void }).gc;
  let externalAfter = 0;
  const collectGarbage = () => {
    if (!gc || getHeapStatistics().external_memory < externalAfter + (8 << 20)) return;
    gc({ type: "minor" });
    externalAfter = getHeapStatistics().external_memory;
  };
  const parser = new PackParser({
    onObject: (oid, type, data) => {
      if (wantTypes && !wantTypes.has(type)) return;
      if (sink && type === "blob") sinkBlob(sink, oid, data);
      else batch.push({ oid, type, data });
    },
    baseCacheBytes: opts.baseCacheBytes,
  });
  // Its files are the process's: a worker that ends without closing them leaves them open.
  const closeSegments = () => {
    try {
      segments?.close();
    } catch {
      full = true;
    }
  };
  let failed = false;
  const fail = (err: unknown) => {
    failed = true;
    const e = err as { message?: string; code?: string };
    port.postMessage({ t: "error", message: e.message ?? String(err), code: e.code } satisfies FromWorker);
  };
  // The objects are copied into the message: the parser keeps its own as delta bases. Blobs
  // in a segment are reported once their index lines are written.
  const post = (bytes: number) => {
    try {
      segments?.flush();
    } catch {
      full = true;
      stored = stored.filter((b) => b.segment === undefined);
    }
    port.postMessage({ t: "objects", objects: batch, stored, full, bytes } satisfies FromWorker);
    batch = [];
    stored = [];
  };
  port.on("message", (msg: ToWorker) => {
    if (msg.t === "stop") {
      closeSegments();
      port.postMessage({ t: "stopped" } satisfies FromWorker);
      return;
    }
    if (failed) return;
    try {
      if (msg.t === "chunk") {
        parser.push(msg.data);
        post(msg.data.length);
        collectGarbage();
      } else {
        parser.end();
        if (batch.length > 0 || stored.length > 0) post(0);
        closeSegments();
        port.postMessage({
          t: "done",
          objects: parser.objectsParsed,
          unresolved: parser.unresolved,
        } satisfies FromWorker);
      }
    } catch (err) {
      // What was written before a corrupt object is whole and verified: book it.
      if (stored.length > 0) post(0);
      closeSegments();
      fail(err);
    }
  });
}
