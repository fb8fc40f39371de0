import assert from "node:assert/strict";
import {
  closeSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  rmSync,
  utimesSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type TestContext, test } from "node:test";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { BlobStore, type BlobStoreOptions } from "../src/cache/blob-store.js";
import { isMesaError } from "../src/errors.js";
import { createLogger } from "../src/log.js";
import { CatFileFetcher, du, duAsync, makeRepo, randomFiles } from "./helpers/cache-fixture.js";

const stores = new WeakMap<object, BlobStore[]>();

/** A store that is closed when the test ends, before its directory is removed. */
async function openStore(t: TestContext, opts: BlobStoreOptions): Promise<BlobStore> {
  const s = new BlobStore(opts);
  await s.open();
  const list = stores.get(t) ?? [];
  list.push(s);
  stores.set(t, list);
  t.after(() => s.close());
  return s;
}

function tempDir(t: TestContext): string {
  const d = mkdtempSync(join(tmpdir(), "mesa-cache-dir-"));
  t.after(async () => {
    for (const s of stores.get(t) ?? []) await s.close();
    rmSync(d, { recursive: true, force: true });
  });
  return d;
}

function blobs(fx: { files: Map<string, { oid: string; data: Buffer }> }) {
  return [...fx.files.values()];
}

function objectFiles(dir: string): string[] {
  const out: string[] = [];
  for (const sub of readdirSync(join(dir, "objects"))) {
    for (const name of readdirSync(join(dir, "objects", sub))) out.push(sub + name);
  }
  return out;
}

test("cache: concurrent misses are batched into few requests and content is exact", async (t) => {
  const fx = makeRepo(randomFiles(300, (i) => 100 + i * 7));
  t.after(fx.cleanup);
  const fetcher = new CatFileFetcher(fx.bare);
  const store = await openStore(t, {
    disk: { path: tempDir(t), maxBytes: 64 << 20 },
    maxMemoryBytes: 64 << 20,
  });
  const all = blobs(fx);
  const got = await Promise.all(all.map((b) => store.get(b.oid, fetcher)));
  for (let i = 0; i < all.length; i++) assert.ok(got[i]!.equals(all[i]!.data));
  // 300 misses at once: one full batch of 256 and one of the remaining 44.
  assert.equal(fetcher.requests, 2);
  assert.equal(fetcher.blobs, 300);
  const s = store.stats();
  assert.equal(s.misses, 300);
  assert.equal(s.fetchRequests, 2);
  // Second round: all local, no request.
  await Promise.all(all.map((b) => store.get(b.oid, fetcher)));
  assert.equal(fetcher.requests, 2);
  assert.equal(store.stats().hits, 300);
});

test("cache: concurrent gets of one oid share one fetch", async (t) => {
  const fx = makeRepo(randomFiles(3, () => 5000));
  t.after(fx.cleanup);
  const fetcher = new CatFileFetcher(fx.bare, { delayMs: 20 });
  const store = await openStore(t, { maxMemoryBytes: 1 << 20 });
  const [b] = blobs(fx);
  const got = await Promise.all(Array.from({ length: 10 }, () => store.get(b!.oid, fetcher)));
  for (const g of got) assert.ok(g.equals(b!.data));
  assert.equal(fetcher.requests, 1);
  assert.deepEqual(fetcher.log[0], [b!.oid]);
  assert.equal(store.stats().coalesced, 9);
});

test("cache: data that does not match its oid is rejected and nothing is stored", async (t) => {
  const fx = makeRepo(randomFiles(4, () => 3000));
  t.after(fx.cleanup);
  const [bad, ...good] = blobs(fx);
  const fetcher = new CatFileFetcher(fx.bare, { tamper: new Set([bad!.oid]) });
  const dir = tempDir(t);
  const store = await openStore(t, { disk: { path: dir, maxBytes: 1 << 20 }, maxMemoryBytes: 1 << 20 });
  const results = await Promise.allSettled([bad, ...good].map((b) => store.get(b!.oid, fetcher)));
  assert.equal(fetcher.requests, 1, "one batch for all four");
  const r0 = results[0]!;
  assert.equal(r0.status, "rejected");
  assert.ok(isMesaError((r0 as PromiseRejectedResult).reason, "CORRUPT_DATA"));
  for (let i = 1; i < results.length; i++) {
    const r = results[i]!;
    assert.equal(r.status, "fulfilled");
    assert.ok((r as PromiseFulfilledResult<Buffer>).value.equals(good[i - 1]!.data));
  }
  assert.equal(store.hasLocal(bad!.oid), false);
  await store.close();
  assert.ok(!objectFiles(dir).includes(bad!.oid));
  assert.equal(objectFiles(dir).length, 3);
  assert.equal(store.stats().corrupt, 1);
});

test("cache: bad oids are refused with a clear error and no request", async (t) => {
  const fetcher = new CatFileFetcher("/nonexistent");
  const store = await openStore(t, { maxMemoryBytes: 1024 });
  for (const bad of ["", "xyz", "A".repeat(40), "../../etc/passwd", "a".repeat(41)])
    await assert.rejects(store.get(bad, fetcher), (e) => isMesaError(e, "INVALID_ARGUMENT"));
  assert.equal(fetcher.requests, 0);
});

test("cache: disk cap is never exceeded (real du) while reading far more than the cap", async (t) => {
  const fx = makeRepo(randomFiles(240, (i) => (i % 3 === 0 ? 20_000 : 3000 + i * 11)));
  t.after(fx.cleanup);
  const fetcher = new CatFileFetcher(fx.bare);
  const dir = tempDir(t);
  const cap = 256 * 1024;
  const store = await openStore(t, { disk: { path: dir, maxBytes: cap }, maxMemoryBytes: 0, maxBatch: 16 });
  const all = blobs(fx);
  const total = all.reduce((n, b) => n + b.data.length, 0);
  assert.ok(total > 8 * cap, `fixture reads ${total} bytes, cap ${cap}`);
  let maxSeen = 0;
  // Sample du continuously while reads and writes are in progress, not only between them.
  let sampling = true;
  let samples = 0;
  let maxSampled = 0;
  const sampler = (async () => {
    while (sampling && samples < 5000) {
      const d = await duAsync(dir);
      maxSampled = Math.max(maxSampled, d.blocks, d.apparent);
      samples++;
    }
  })();
  for (let i = 0; i < all.length; i += 16) {
    const group = all.slice(i, i + 16);
    const got = await Promise.all(group.map((b) => store.get(b.oid, fetcher)));
    for (let j = 0; j < got.length; j++) assert.ok(got[j]!.equals(group[j]!.data));
    // Let the background disk writes land, then measure what is really on disk.
    await store.flush();
    const d = du(dir);
    maxSeen = Math.max(maxSeen, d.blocks, d.apparent);
    assert.ok(d.blocks <= cap, `du ${d.blocks} > cap ${cap}`);
    assert.ok(d.apparent <= cap, `du -b ${d.apparent} > cap ${cap}`);
    assert.ok(store.stats().diskBytes <= cap);
    assert.ok(store.stats().diskBytes >= d.blocks, "accounting covers what du sees");
  }
  sampling = false;
  await sampler;
  assert.ok(samples > 5, `du sampled ${samples} times`);
  assert.ok(maxSampled <= cap, `du saw ${maxSampled} > cap ${cap} during writes`);
  const s = store.stats();
  assert.ok(s.evictions > 0);
  assert.ok(maxSeen > cap / 2, `cache was used (${maxSeen} bytes)`);
  // A blob bigger than the cap is served but not stored.
  const big = makeRepo(new Map([["big.bin", Buffer.alloc(cap + 1, 7)]]));
  t.after(big.cleanup);
  const bigBlob = blobs(big)[0]!;
  const data = await store.get(bigBlob.oid, new CatFileFetcher(big.bare));
  assert.ok(data.equals(bigBlob.data));
  await store.flush();
  assert.equal(store.hasLocal(bigBlob.oid), false);
  assert.ok(du(dir).blocks <= cap);
  assert.ok(store.stats().diskSkipped >= 1);
});

test("cache: pinned blobs are never evicted", async (t) => {
  const fx = makeRepo(randomFiles(120, () => 8000));
  t.after(fx.cleanup);
  const fetcher = new CatFileFetcher(fx.bare);
  const dir = tempDir(t);
  const cap = 128 * 1024;
  const store = await openStore(t, { disk: { path: dir, maxBytes: cap }, maxMemoryBytes: 0 });
  const [pinned, ...rest] = blobs(fx);
  store.pin(pinned!.oid);
  await store.get(pinned!.oid, fetcher);
  await store.flush();
  for (const b of rest) await store.get(b.oid, fetcher);
  await store.flush();
  assert.ok(store.stats().evictions > 50);
  assert.ok(objectFiles(dir).includes(pinned!.oid));
  const before = fetcher.requests;
  assert.ok((await store.get(pinned!.oid, fetcher)).equals(pinned!.data));
  assert.equal(fetcher.requests, before, "pinned blob read from disk");
  assert.ok(du(dir).blocks <= cap);
  // Unpinned, it ages out like anything else.
  store.unpin(pinned!.oid);
  for (const b of rest.slice(-40)) await store.get(b.oid, fetcher);
  await store.flush();
  assert.ok(!objectFiles(dir).includes(pinned!.oid));
});

test("cache: a second store on the same directory serves everything with zero fetches", async (t) => {
  const fx = makeRepo(randomFiles(60, (i) => i * 97));
  t.after(fx.cleanup);
  const dir = tempDir(t);
  const first = new CatFileFetcher(fx.bare);
  const a = new BlobStore({ disk: { path: dir, maxBytes: 16 << 20 }, maxMemoryBytes: 1 << 20 });
  await a.open();
  for (const b of blobs(fx)) await a.get(b.oid, first);
  await a.close();
  assert.ok(first.requests > 0);

  const second = new CatFileFetcher(fx.bare);
  const b2 = await openStore(t, { disk: { path: dir, maxBytes: 16 << 20 }, maxMemoryBytes: 1 << 20 });
  for (const b of blobs(fx)) {
    assert.equal(b2.hasLocal(b.oid), true);
    assert.ok((await b2.get(b.oid, second)).equals(b.data));
  }
  assert.equal(second.requests, 0);
  assert.equal(b2.stats().diskHits, 60);
});

test("cache: a damaged disk file is detected on read, removed and refetched", async (t) => {
  const fx = makeRepo(randomFiles(2, () => 4000));
  t.after(fx.cleanup);
  const dir = tempDir(t);
  const [b, c] = blobs(fx);
  const a = new BlobStore({ disk: { path: dir, maxBytes: 1 << 20 }, maxMemoryBytes: 0 });
  await a.open();
  await a.get(b!.oid, new CatFileFetcher(fx.bare));
  await a.get(c!.oid, new CatFileFetcher(fx.bare));
  await a.close();
  writeFileSync(join(dir, "objects", b!.oid.slice(0, 2), b!.oid.slice(2)), "torn");
  writeFileSync(join(dir, "objects", c!.oid.slice(0, 2), c!.oid.slice(2)), Buffer.alloc(4000, 1));
  const fetcher = new CatFileFetcher(fx.bare);
  const s = await openStore(t, { disk: { path: dir, maxBytes: 1 << 20 }, maxMemoryBytes: 0 });
  assert.ok((await s.get(b!.oid, fetcher)).equals(b!.data));
  assert.ok((await s.readRange(c!.oid, 10, 100, fetcher)).equals(c!.data.subarray(10, 110)));
  assert.equal(fetcher.requests, 2);
  assert.equal(s.stats().corrupt, 2);
});

test("cache: readRange serves slices of a large blob from disk", async (t) => {
  const size = 6 << 20;
  const fx = makeRepo(new Map([["large.bin", Buffer.alloc(size, 0).fill("mesa-")]]));
  t.after(fx.cleanup);
  const [b] = blobs(fx);
  const fetcher = new CatFileFetcher(fx.bare);
  const store = await openStore(t, {
    disk: { path: tempDir(t), maxBytes: 64 << 20 },
    maxMemoryBytes: 1 << 20,
  });
  store.pin(b!.oid);
  let off = 0;
  while (off < size + 10) {
    const part = await store.readRange(b!.oid, off, 128 * 1024, fetcher);
    assert.ok(part.equals(b!.data.subarray(off, off + 128 * 1024)), `at ${off}`);
    off += 128 * 1024;
  }
  assert.equal(fetcher.requests, 1);
  await store.flush();
  assert.equal(store.stats().memoryBytes, 0, "larger than the memory budget: not kept once on disk");
});

test("cache: memory stays within budget and RSS stays bounded reading 10x the budget", async (t) => {
  const budget = 4 << 20;
  const fx = makeRepo(randomFiles(160, () => 256 * 1024));
  t.after(fx.cleanup);
  const fetcher = new CatFileFetcher(fx.bare);
  const store = await openStore(t, { maxMemoryBytes: budget, maxBatch: 8 });
  setFlagsFromString("--expose-gc");
  const gc = runInNewContext("gc") as () => void;
  gc();
  const rss0 = process.memoryUsage().rss;
  let peak = 0;
  const all = blobs(fx);
  for (let i = 0; i < all.length; i += 8) {
    const got = await Promise.all(all.slice(i, i + 8).map((b) => store.get(b.oid, fetcher)));
    assert.equal(got.length, Math.min(8, all.length - i));
    assert.ok(store.stats().memoryBytes <= budget);
    gc();
    peak = Math.max(peak, process.memoryUsage().rss - rss0);
  }
  const total = all.length * 256 * 1024;
  assert.ok(total >= 10 * budget);
  assert.ok(store.stats().memoryEvictions > 0);
  assert.ok(peak < total / 2, `RSS grew ${peak} bytes reading ${total}`);
});

test("cache: without a disk cache an open (pinned) file stays in memory even above the budget", async (t) => {
  const fx = makeRepo(randomFiles(6, () => 300 * 1024));
  t.after(fx.cleanup);
  const fetcher = new CatFileFetcher(fx.bare);
  const store = await openStore(t, { maxMemoryBytes: 512 * 1024 });
  const [open, ...rest] = blobs(fx);
  store.pin(open!.oid);
  await store.get(open!.oid, fetcher);
  for (const b of rest) await store.get(b.oid, fetcher);
  assert.ok(store.hasLocal(open!.oid));
  store.unpin(open!.oid);
  assert.ok(store.stats().memoryBytes <= 512 * 1024);
});

test("cache: an aborted read stops waiting but the shared fetch still lands", async (t) => {
  const fx = makeRepo(randomFiles(1, () => 1000));
  t.after(fx.cleanup);
  const fetcher = new CatFileFetcher(fx.bare, { delayMs: 50 });
  const store = await openStore(t, { maxMemoryBytes: 1 << 20 });
  const [b] = blobs(fx);
  const ac = new AbortController();
  const first = store.get(b!.oid, fetcher, { signal: ac.signal });
  const second = store.get(b!.oid, fetcher);
  ac.abort();
  await assert.rejects(first, (e) => isMesaError(e, "ABORTED"));
  assert.ok((await second).equals(b!.data));
  assert.equal(fetcher.requests, 1);
});

test("cache: a failing server gives one clear error per read, one log line, and works again when it is back", async (t) => {
  const fx = makeRepo(randomFiles(2, () => 1000));
  t.after(fx.cleanup);
  const logFile = join(fx.root, "log.jsonl");
  const fd = openSync(logFile, "w");
  t.after(() => closeSync(fd));
  const logger = createLogger({ level: "info", destination: fd });
  const fetcher = new CatFileFetcher(join(fx.root, "gone.git"));
  const store = await openStore(t, { maxMemoryBytes: 1 << 20, fetchTimeoutMs: 5000, logger });
  const [b, c] = blobs(fx);
  for (let i = 0; i < 3; i++)
    await assert.rejects(store.get(b!.oid, fetcher), (e) => isMesaError(e, "NETWORK"));
  await assert.rejects(store.get(c!.oid, fetcher), (e) => isMesaError(e, "NETWORK"));
  assert.equal(store.hasLocal(b!.oid), false);
  fetcher.gitDir = fx.bare;
  assert.ok((await store.get(b!.oid, fetcher)).equals(b!.data));
  const lines = readFileSync(logFile, "utf8")
    .split("\n")
    .filter(Boolean)
    .map((l) => JSON.parse(l) as { level: number; msg: string });
  assert.equal(lines.filter((l) => l.level === 40).length, 1, "one warning while the server is down");
  assert.ok(lines.some((l) => l.msg === "blob fetches work again"));
});

test("cache: a slow server fails the read with TIMEOUT after the bounded wait", async (t) => {
  const fx = makeRepo(randomFiles(1, () => 1000));
  t.after(fx.cleanup);
  const fetcher = new CatFileFetcher(fx.bare, { delayMs: 5000 });
  const store = await openStore(t, { maxMemoryBytes: 1 << 20, fetchTimeoutMs: 100 });
  const t0 = Date.now();
  await assert.rejects(store.get(blobs(fx)[0]!.oid, fetcher), (e) => isMesaError(e, "TIMEOUT"));
  assert.ok(Date.now() - t0 < 2000);
});

test("cache: an open file bigger than the disk cap is fetched once and read in ranges from memory", async (t) => {
  const size = 2 << 20;
  const fx = makeRepo(new Map([["huge.bin", Buffer.alloc(size, 3).fill("0123456789", 1000)]]));
  t.after(fx.cleanup);
  const [b] = blobs(fx);
  const fetcher = new CatFileFetcher(fx.bare);
  const dir = tempDir(t);
  const store = await openStore(t, { disk: { path: dir, maxBytes: 1 << 20 }, maxMemoryBytes: 256 * 1024 });
  store.pin(b!.oid);
  for (let off = 0; off < size; off += 256 * 1024) {
    const part = await store.readRange(b!.oid, off, 256 * 1024, fetcher);
    assert.ok(part.equals(b!.data.subarray(off, off + 256 * 1024)));
  }
  assert.equal(fetcher.requests, 1);
  assert.ok(du(dir).blocks <= 1 << 20);
  // Closed: the copy beyond the memory budget is released.
  store.unpin(b!.oid);
  assert.ok(store.stats().memoryBytes <= 256 * 1024);
});

test("cache: eviction is least-recently-used, and the order survives a restart (file mtimes)", async (t) => {
  const fx = makeRepo(randomFiles(40, () => 6000));
  t.after(fx.cleanup);
  // Blobs in directories of their own: how much a write needs, and an eviction frees, then does
  // not depend on which random ids share a directory (a new blob landing in an existing one
  // needed a block less, fit without evicting, and failed the test about once in thirty runs).
  const byDir = new Map(blobs(fx).map((b) => [b.oid.slice(0, 2), b]));
  const all = [...byDir.values()].slice(0, 12);
  assert.equal(all.length, 12);
  const fetcher = new CatFileFetcher(fx.bare);
  const dir = tempDir(t);
  // Fill the cache with ten blobs, then make the cap exactly that full.
  const probe = await openStore(t, { disk: { path: dir, maxBytes: 64 << 20 }, maxMemoryBytes: 0 });
  for (const b of all.slice(0, 10)) {
    await probe.get(b.oid, fetcher);
    await probe.flush();
  }
  const cap = probe.stats().diskBytes + 4096;
  await probe.close();

  const a = await openStore(t, { disk: { path: dir, maxBytes: cap }, maxMemoryBytes: 0 });
  await a.get(all[0]!.oid, fetcher); // the oldest write, read again: now the most recent
  await a.get(all[10]!.oid, fetcher);
  await a.flush();
  assert.ok(a.stats().evictions >= 1);
  assert.ok(a.hasLocal(all[0]!.oid), "recently read: kept");
  assert.ok(!a.hasLocal(all[1]!.oid), "least recently used: evicted");
  await a.close();

  // Make blob 9 (the newest of the first ten) the oldest on disk, as if unread for a day.
  const old = new Date(Date.now() - 86_400_000);
  utimesSync(join(dir, "objects", all[9]!.oid.slice(0, 2), all[9]!.oid.slice(2)), old, old);
  const b = await openStore(t, { disk: { path: dir, maxBytes: cap }, maxMemoryBytes: 0 });
  await b.get(all[11]!.oid, fetcher);
  await b.flush();
  assert.ok(!b.hasLocal(all[9]!.oid), "oldest mtime evicted first after restart");
  assert.ok(b.hasLocal(all[10]!.oid), "newest kept");
  assert.ok(b.hasLocal(all[11]!.oid));
  assert.ok(du(dir).blocks <= cap);
});

test("cache: many concurrent writes under a small cap all land, none skipped, du within the cap", async (t) => {
  const fx = makeRepo(randomFiles(150, (i) => 1000 + ((i * 7919) % 60000)));
  t.after(fx.cleanup);
  const fetcher = new CatFileFetcher(fx.bare);
  const dir = tempDir(t);
  const cap = 512 * 1024;
  const store = await openStore(t, { disk: { path: dir, maxBytes: cap }, maxMemoryBytes: 0, maxBatch: 150 });
  let sampling = true;
  let maxSampled = 0;
  let samples = 0;
  const sampler = (async () => {
    while (sampling && samples < 5000) {
      const d = await duAsync(dir);
      maxSampled = Math.max(maxSampled, d.blocks, d.apparent);
      samples++;
    }
  })();
  const all = blobs(fx);
  const got = await Promise.all(all.map((b) => store.get(b.oid, fetcher)));
  for (let i = 0; i < all.length; i++) assert.ok(got[i]!.equals(all[i]!.data));
  await store.flush();
  sampling = false;
  await sampler;
  assert.equal(fetcher.requests, 1);
  assert.equal(store.stats().diskSkipped, 0);
  assert.ok(store.stats().evictions > 50);
  assert.ok(maxSampled <= cap, `du saw ${maxSampled} > ${cap}`);
  assert.ok(du(dir).blocks <= cap);
});
