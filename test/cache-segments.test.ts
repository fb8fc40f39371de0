/**
 * The disk cache's segments (src/cache/segments.ts): small blobs of a stream packed into a few
 * files. Written here as the stream's worker writes them (a `SegmentWriter` into the room the
 * cache reserved, then booked with `adoptStreamed`); checked against the bytes on disk.
 */
import assert from "node:assert/strict";
import {
  appendFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type TestContext, test } from "node:test";
import { DiskCache, type StreamedBlob } from "../src/cache/disk-cache.js";
import { SegmentWriter, segmentCost, segmentOverhead } from "../src/cache/segments.js";
import { blobId, cachedBlobs, damageCached } from "./helpers/cache-files.js";
import { du } from "./helpers/cache-fixture.js";

function tempDir(t: TestContext): string {
  const d = mkdtempSync(join(tmpdir(), "mesa-cache-seg-"));
  t.after(() => rmSync(d, { recursive: true, force: true }));
  return d;
}

function someBlobs(n: number, size: (i: number) => number, seed = 0): Array<{ oid: string; data: Buffer }> {
  return Array.from({ length: n }, (_, i) => {
    const data = Buffer.alloc(size(i), `blob ${seed}-${i} `);
    return { oid: blobId(data), data };
  });
}

async function openCache(dir: string, maxBytes = 1 << 30): Promise<DiskCache> {
  const c = new DiskCache({ path: dir, maxBytes });
  await c.open();
  return c;
}

/** Streams `blobs` into segments as the pack worker does; returns the segments' files. */
async function stream(cache: DiskCache, blobs: Array<{ oid: string; data: Buffer }>): Promise<Set<string>> {
  const res = cache.beginStream(1 << 30);
  const writer = new SegmentWriter(res.segments);
  const stored: StreamedBlob[] = blobs.map(({ oid, data }) => {
    const at = writer.append(oid, data);
    const cost = segmentCost(data.length) + (at.newSegment ? segmentOverhead(res.blockSize) : 0);
    return { oid, size: data.length, bytes: cost, cost, segment: at.segment, offset: at.offset };
  });
  writer.close();
  assert.equal(cache.adoptStreamed(res, stored), blobs.length);
  await cache.endStream(res);
  return new Set(stored.map((b) => join(res.segments, `${b.segment}.blobs`)));
}

test("segments: a reopened cache indexes each segment's whole lines and hashes them before use; what no index names is removed", async (t) => {
  const dir = tempDir(t);
  const all = someBlobs(300, (i) => 100 + i * 37);
  const first = await openCache(dir);
  const files = await stream(first, all);
  assert.equal(files.size, 1);
  for (const b of all) assert.ok((await first.read(b.oid))?.equals(b.data));
  assert.equal(first.usedBytes, du(dir).blocks, "booked what du sees");

  // A writer cut short: content of a blob without its line, a torn line, a line past the end,
  // and a segment whose index was never written.
  const segments = join(dir, "segments");
  const index = readdirSync(segments).find((n) => n.endsWith(".index"))!;
  const [extra] = someBlobs(1, () => 500, 1);
  appendFileSync(join(segments, index.replace(".index", ".blobs")), extra!.data);
  appendFileSync(join(segments, index), `${extra!.oid} 99999999 500\n${extra!.oid.slice(0, 20)}`);
  writeFileSync(join(segments, "orphan.blobs"), "no index names this");

  const again = await openCache(dir);
  assert.equal(again.count, all.length);
  assert.ok(!again.has(extra!.oid));
  assert.ok(!existsSync(join(segments, "orphan.blobs")));
  for (const b of all.slice(0, 20)) {
    assert.equal(again.isVerified(b.oid), false, "a restart trusts nothing it has not hashed");
    assert.equal(await again.verify(b.oid), true);
    assert.ok((await again.readRange(b.oid, 10, 50))?.equals(b.data.subarray(10, 60)));
  }
  assert.deepEqual(again.location(all[5]!.oid), {
    file: [...files][0],
    offset: all.slice(0, 5).reduce((n, b) => n + b.data.length, 0),
    size: all[5]!.data.length,
  });
  assert.equal(again.usedBytes, du(dir).blocks);
});

test("segments: a cache holding a quarter of a million blobs in segments opens and indexes them all", async (t) => {
  const dir = tempDir(t);
  const segments = join(dir, "segments");
  mkdirSync(segments, { recursive: true });
  // One-byte blobs as an index names them (opening hashes nothing; reads would).
  const n = 250_000;
  writeFileSync(join(segments, "big.blobs"), Buffer.alloc(n, 0x61));
  const lines = Array.from({ length: n }, (_, i) => `${i.toString(16).padStart(40, "0")} ${i} 1\n`);
  writeFileSync(join(segments, "big.index"), lines.join(""));
  const cache = await openCache(dir);
  assert.equal(cache.count, n);
  assert.deepEqual(cache.location((n - 1).toString(16).padStart(40, "0")), {
    file: join(segments, "big.blobs"),
    offset: n - 1,
    size: 1,
  });
});

test("segments: a damaged blob in a segment is caught in the background and on read; the others stay", async (t) => {
  const dir = tempDir(t);
  const all = someBlobs(200, (i) => 200 + i * 11);
  await stream(await openCache(dir), all);
  const held = cachedBlobs(dir);
  const bad = held.find((b) => b.oid === all[50]!.oid)!;
  const alsoBad = held.find((b) => b.oid === all[120]!.oid)!;
  damageCached(bad);
  damageCached(alsoBad);

  const cache = await openCache(dir);
  const verified: string[] = [];
  const damaged: string[] = [];
  await cache.verifyInBackground(
    (oids) => verified.push(...oids),
    (oid) => damaged.push(oid),
    new AbortController().signal,
  );
  // Hashing found both; `verify` (which deletes) runs once each, after the batch.
  for (let i = 0; i < 100 && damaged.length < 2; i++) await new Promise((r) => setTimeout(r, 20));
  assert.deepEqual(damaged.sort(), [bad.oid, alsoBad.oid].sort());
  assert.equal(verified.length, all.length - 2);
  assert.ok(!cache.has(bad.oid) && !cache.has(alsoBad.oid));
  for (const b of all.filter((b) => b.oid !== bad.oid && b.oid !== alsoBad.oid))
    assert.ok((await cache.read(b.oid))?.equals(b.data));
  // The segment stays for the others.
  assert.equal(readdirSync(join(dir, "segments")).length, 2);

  // On read, without the background pass: a damaged range fails `verify` and only it goes.
  const dir2 = tempDir(t);
  await stream(await openCache(dir2), all);
  damageCached(cachedBlobs(dir2).find((b) => b.oid === all[7]!.oid)!);
  const cache2 = await openCache(dir2);
  assert.equal(await cache2.verify(all[7]!.oid), false);
  assert.equal(await cache2.verify(all[8]!.oid), true);
  assert.equal(cache2.count, all.length - 1);
});

test("segments: making room evicts a read segment whole, never unread prefetches; du stays within the cap", async (t) => {
  const dir = tempDir(t);
  const cap = 3 << 20;
  const cache = await openCache(dir, cap);
  // Two segments' worth of small blobs, about 2 MB.
  const old = someBlobs(500, () => 4000, 2);
  const files = await stream(cache, old);
  assert.equal(files.size, 1);
  // Unread prefetched content is not thrown away to make room.
  const [big] = someBlobs(1, () => 1_500_000, 3);
  assert.equal(await cache.put(big!.oid, big!.data), false);
  assert.equal(cache.count, old.length);

  // Once read, the segment is evicted whole (at its least recently used entry), and frees its bytes.
  for (const b of old) await cache.read(b.oid);
  assert.equal(await cache.put(big!.oid, big!.data), true);
  assert.ok(!existsSync([...files][0]!), "the segment's file is removed");
  for (const b of old) assert.ok(!cache.has(b.oid));
  assert.ok(cache.has(big!.oid));
  const seen = du(dir).blocks;
  assert.ok(seen <= cap, `du ${seen} > cap ${cap}`);
  assert.equal(cache.usedBytes, seen);
  assert.equal(cache.evictions, old.length);
});
