/**
 * Packs for pushes that hold large files: written to a spool file with bounded memory. Blobs
 * given by path are read, hashed and deflated in 1 MiB chunks; a blob whose bytes no longer
 * match its oid (the file changed after it was hashed) aborts the pack with CONTENT_CHANGED,
 * so a push never sends a blob under the wrong name.
 */
import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { open } from "node:fs/promises";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { createDeflate, deflateSync } from "node:zlib";
import { MesaError } from "../errors.js";
import type { Oid } from "./objects.js";
import type { GitObject } from "./pack.js";

/** A blob whose bytes are in a file: `size` bytes hashing to `oid`. */
export interface FileBlob {
  type: "blob";
  file: string;
  size: number;
  oid: Oid;
}

export type PackObject = GitObject | FileBlob;

export function isFileBlob(o: PackObject): o is FileBlob {
  return "file" in o;
}

const CODE_BY_TYPE = { commit: 1, tree: 2, blob: 3, tag: 4 } as const;
const CHUNK = 1 << 20;

/** Thrown when a file blob's bytes changed after it was hashed; the caller re-collects and retries. */
export function contentChanged(file: string): MesaError {
  return new MesaError("ABORTED", `${file} changed while its pack was written`, {
    details: { contentChanged: true },
  });
}

function objectHeader(type: GitObject["type"], size: number): Buffer {
  const head: number[] = [];
  let c = (CODE_BY_TYPE[type] << 4) | (size & 15);
  let rest = Math.floor(size / 16);
  while (rest > 0) {
    head.push(c | 0x80);
    c = rest & 0x7f;
    rest = Math.floor(rest / 128);
  }
  head.push(c);
  return Buffer.from(head);
}

/** Writes a self-contained pack of `objects` to `out`; returns its length in bytes. */
export async function writePackFile(objects: PackObject[], out: string): Promise<number> {
  const fh = await open(out, "wx", 0o600);
  const packHash = createHash("sha1");
  let length = 0;
  const emit = async (b: Buffer) => {
    packHash.update(b);
    length += b.length;
    await fh.write(b);
  };
  try {
    const header = Buffer.alloc(12);
    header.write("PACK", 0, "latin1");
    header.writeUInt32BE(2, 4);
    header.writeUInt32BE(objects.length, 8);
    await emit(header);
    for (const o of objects) {
      if (!isFileBlob(o)) {
        await emit(objectHeader(o.type, o.data.length));
        await emit(deflateSync(o.data, { level: 1 }));
        continue;
      }
      await emit(objectHeader("blob", o.size));
      const blobHash = createHash("sha1").update(`blob ${o.size}\0`);
      let seen = 0;
      await pipeline(
        o.size === 0
          ? Readable.from([])
          : createReadStream(o.file, { highWaterMark: CHUNK, start: 0, end: o.size - 1 }),
        async function* (source: AsyncIterable<Buffer>) {
          for await (const chunk of source) {
            seen += chunk.length;
            blobHash.update(chunk);
            yield chunk;
          }
        },
        createDeflate({ level: 1, chunkSize: 64 * 1024 }),
        async (source: AsyncIterable<Buffer>) => {
          for await (const chunk of source) await emit(chunk);
        },
      );
      if (seen !== o.size || blobHash.digest("hex") !== o.oid) throw contentChanged(o.file);
    }
    const trailer = packHash.digest();
    await fh.write(trailer);
    return length + trailer.length;
  } finally {
    await fh.close();
  }
}

/** Git blob oid and size of a file, read in 1 MiB chunks. */
export async function hashBlobFile(file: string): Promise<{ oid: Oid; size: number }> {
  for (let attempt = 0; attempt < 3; attempt++) {
    const fh = await open(file, "r");
    try {
      const { size } = await fh.stat();
      const hash = createHash("sha1").update(`blob ${size}\0`);
      const buf = Buffer.allocUnsafe(Math.min(CHUNK, Math.max(size, 1)));
      let pos = 0;
      while (pos < size) {
        const { bytesRead } = await fh.read(buf, 0, Math.min(buf.length, size - pos), pos);
        if (bytesRead === 0) break;
        hash.update(buf.subarray(0, bytesRead));
        pos += bytesRead;
      }
      // Shrunk while being read (a truncate): hash it again.
      if (pos === size) return { oid: hash.digest("hex"), size };
    } finally {
      await fh.close();
    }
  }
  throw contentChanged(file);
}
