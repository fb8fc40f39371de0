/**
 * Committed content kept in memory, for tests of the workspace filesystem without a server:
 * `blob(text)` stores a blob and returns its id, `content` serves it, `sizes()` maps every id
 * stored so far to its size (a snapshot's `sizes`).
 */
import { hashObject } from "../../src/vcs/objects.js";
import type { ContentProvider } from "../../src/workspace/content.js";

export function memoryBlobs() {
  const blobs = new Map<string, Buffer>();
  const content: ContentProvider = {
    async read(_s, oid, offset, length) {
      const b = blobs.get(oid);
      if (!b) throw new Error("no blob");
      return b.subarray(offset, offset + length);
    },
    pin() {},
    unpin() {},
  };
  return {
    content,
    blob(text: string): string {
      const b = Buffer.from(text);
      const oid = hashObject("blob", b);
      blobs.set(oid, b);
      return oid;
    },
    sizes: () => new Map([...blobs].map(([o, b]) => [o, b.length])),
  };
}
