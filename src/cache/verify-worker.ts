/**
 * Worker thread of `DiskCache.verifyInBackground`: hashes cached blob files against their
 * names off the main thread, in 1 MB reads (a file's size never matters), and posts which
 * matched and which did not, in batches.
 */
import { closeSync, openSync, readSync } from "node:fs";
import { parentPort, workerData } from "node:worker_threads";
import { blobFile } from "./blob-files.js";
import { blobHash } from "./verify.js";

export interface VerifyJob {
  /** The cache's blob directory. */
  objects: string;
  /** oid, size as indexed. */
  files: Array<[string, number]>;
}

export type FromVerifier = { t: "batch"; good: string[]; bad: string[] } | { t: "done" };

/** Whether `file` holds blob `oid` of `size` bytes. */
function matches(oid: string, file: string, size: number, buf: Buffer): boolean {
  let fd: number;
  try {
    fd = openSync(file, "r");
  } catch {
    return false;
  }
  try {
    const h = blobHash(oid, size);
    let total = 0;
    for (let n = readSync(fd, buf); n > 0; n = readSync(fd, buf)) {
      total += n;
      if (total > size) return false;
      h.update(buf.subarray(0, n));
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
  for (const [oid, size] of files) {
    (matches(oid, blobFile(objects, oid), size, buf) ? good : bad).push(oid);
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
