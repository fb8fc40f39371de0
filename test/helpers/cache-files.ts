/**
 * What a disk cache directory holds, read from disk as the tests' ground truth: blobs in
 * files of their own (`objects/ab/cdef…`) and blobs in segments (`segments/<name>.blobs`, with
 * `<offset> <size>` per oid in `<name>.index`).
 */
import { createHash } from "node:crypto";
import {
  closeSync,
  existsSync,
  openSync,
  readdirSync,
  readFileSync,
  readSync,
  statSync,
  writeSync,
} from "node:fs";
import { join } from "node:path";

export interface CachedBlob {
  oid: string;
  file: string;
  offset: number;
  size: number;
  inSegment: boolean;
}

export function cachedBlobs(cacheDir: string): CachedBlob[] {
  const out: CachedBlob[] = [];
  const objects = join(cacheDir, "objects");
  for (const sub of existsSync(objects) ? readdirSync(objects) : []) {
    if (!/^[0-9a-f]{2}$/.test(sub)) continue;
    for (const name of readdirSync(join(objects, sub))) {
      if (name.startsWith(".tmp-")) continue;
      const file = join(objects, sub, name);
      out.push({ oid: sub + name, file, offset: 0, size: statSync(file).size, inSegment: false });
    }
  }
  const segments = join(cacheDir, "segments");
  for (const name of existsSync(segments) ? readdirSync(segments) : []) {
    if (!name.endsWith(".index")) continue;
    const file = join(segments, `${name.slice(0, -".index".length)}.blobs`);
    for (const line of readFileSync(join(segments, name), "latin1").split("\n")) {
      const [oid, offset, size] = line.split(" ");
      if (oid && offset && size)
        out.push({ oid, file, offset: Number(offset), size: Number(size), inSegment: true });
    }
  }
  return out;
}

export function readCached(b: CachedBlob): Buffer {
  const fd = openSync(b.file, "r");
  try {
    const buf = Buffer.alloc(b.size);
    const n = b.size > 0 ? readSync(fd, buf, 0, b.size, b.offset) : 0;
    return buf.subarray(0, n);
  } finally {
    closeSync(fd);
  }
}

/** Git's blob id of `data`. */
export function blobId(data: Buffer): string {
  return createHash("sha1").update(`blob ${data.length}\0`).update(data).digest("hex");
}

/** Overwrites a cached blob's bytes in place, its size kept (only its hash can tell). */
export function damageCached(b: CachedBlob): void {
  const fd = openSync(b.file, "r+");
  try {
    writeSync(fd, Buffer.alloc(b.size, 0x5a), 0, b.size, b.offset);
  } finally {
    closeSync(fd);
  }
}
