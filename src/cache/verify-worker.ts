/**
 * Worker thread of `DiskCache.verifyInBackground`: hashes cached blobs (files of their own,
 * or ranges of segments) against their ids off the main thread, in 1 MB reads (a blob's size
 * never matters), and posts which matched and which did not, in batches.
 */
import { closeSync, openSync, readSync } from "node:fs";
import { parentPort, workerData } from "node:worker_threads";
import { blobFile } from "./blob-files.js";
import { blobHash } from "./verify.js";

export interface VerifyJob {
  /** The cache's blob directory. */
  objects: string;
  /** oid, size as indexed; for a blob in a segment, the segment's file and the blob's offset. */
  files: Array<[string, number] | [string, number, string, number]>;
}

export type FromVerifier = { t: "batch"; good: string[]; bad: string[] } | { t: "done" };

/**
 * Whether `file` holds blob `oid` of `size` bytes: the whole file, or from `offset` on when the
 * blob is in a segment (whatever follows it there belongs to other blobs).
 */
function matches(oid: string, file: string, size: number, buf: Buffer, offset?: number): boolean {
  let fd: number;
  try {
    fd = openSync(file, "r");
  } catch {
    return false;
  }
  try {
    const h = blobHash(oid, size);
    const at = offset ?? 0;
    // One byte past the blob's end, so a file of its own that is longer does not match.
    const end = offset === undefined ? size + 1 : size;
    let total = 0;
    for (let n = readSync(fd, buf, 0, Math.min(buf.length, end), at); n > 0; ) {
      total += n;
      if (total > size) return false;
      h.update(buf.subarray(0, n));
      n = total < end ? readSync(fd, buf, 0, Math.min(buf.length, end - total), at + total) : 0;
    }
    return total === size && h.digest("hex") === oid;
  } catch {
    return false;
  } finally {
    closeSync(fd);
  }
}

const port = parentPort;
if (port) {
  const { objects, files } = workerData as VerifyJob;
  const buf = Buffer.allocUnsafe(1 << 20);
  let good: string[] = [];
  let bad: string[] = [];
  let last = performance.now();
  for (const [oid, size, segment, offset] of files) {
    (matches(oid, segment ?? blobFile(objects, oid), size, buf, offset) ? good : bad).push(oid);
    // Batches: the main thread names verified files to the FUSE binding as they come.
    if (good.length + bad.length >= 512 || performance.now() - last > 50) {
      port.postMessage({ t: "batch", good, bad } satisfies FromVerifier);
      good = [];
      bad = [];
      last = performance.now();
    }
  }
  port.postMessage({ t: "batch", good, bad } satisfies FromVerifier);
  port.postMessage({ t: "done" } satisfies FromVerifier);
}
