/**
 * Where the disk cache keeps a blob and what keeping it costs. Shared by the cache and by the
 * pack worker, which writes streamed blobs straight into the cache's directory.
 */

// `objects` is a normalized path (as `join` makes it) and oids are hex, so concatenating gives
// what `join` would: without the ~600 bytes of garbage `join` leaves per call, 40,000 times
// in a repo's stream.

/** `objects/ab` for blob `ab…`. */
export function blobDir(objects: string, oid: string): string {
  return `${objects}/${oid.slice(0, 2)}`;
}

/** `objects/ab/cdef…` for blob `abcdef…`. */
export function blobFile(objects: string, oid: string): string {
  return `${objects}/${oid.slice(0, 2)}/${oid.slice(2)}`;
}

/** Bytes a file or directory costs: allocated blocks, or its apparent size if larger. */
export function onDisk(st: { blocks: number; size: number }): number {
  return Math.max(st.blocks * 512, st.size);
}

/** What storing a blob of `size` bytes reserves under the cap, with `blk`-byte blocks. */
export function diskCost(size: number, blk: number): number {
  // Big files may need an extent/indirect block beyond their data blocks, and a directory
  // can grow by up to two blocks when an entry is added (ext4 htree split).
  return Math.ceil(size / blk) * blk + (size > 1 << 20 ? 2 * blk : 0) + 2 * blk;
}
