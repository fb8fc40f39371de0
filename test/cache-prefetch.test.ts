import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type TestContext, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { BlobStore, type BlobStoreOptions } from "../src/cache/blob-store.js";
import { Prefetcher, type PrefetcherOptions } from "../src/cache/prefetcher.js";
import { CatFileFetcher, type Fixture, makeRepo, randomFiles } from "./helpers/cache-fixture.js";

async function setup(
  t: TestContext,
  fx: Fixture,
  storeOpts: Partial<BlobStoreOptions>,
  pfOpts: Partial<PrefetcherOptions>,
  delayMs = 0,
) {
  const dir = mkdtempSync(join(tmpdir(), "mesa-prefetch-"));
  const store = new BlobStore({
    disk: { path: dir, maxBytes: 256 << 20 },
    maxMemoryBytes: 64 << 20,
    ...storeOpts,
  });
  await store.open();
  const pf = new Prefetcher({
    store,
    enabled: true,
    maxDepth: null,
    maxConcurrency: 2,
    pressureLimit: 0.8,
    ...pfOpts,
  });
  t.after(async () => {
    pf.stop();
    await store.close();
    rmSync(dir, { recursive: true, force: true });
    fx.cleanup();
  });
  const fetcher = new CatFileFetcher(fx.bare, { delayMs });
  const files = [...fx.files.values()].map((f, i) => ({
    oid: f.oid,
    size: f.data.length,
    depth: 1 + (i % 3),
  }));
  return { store, pf, fetcher, files };
}

/** Polls until `done()` or the time limit; returns whether it became true. */
async function waitFor(done: () => boolean, ms: number): Promise<boolean> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (done()) return true;
    await sleep(10);
  }
  return done();
}

test("prefetch: fetches everything in batches with at most maxConcurrency requests in flight", async (t) => {
  const fx = makeRepo(randomFiles(400, (i) => 200 + i));
  const { store, pf, fetcher, files } = await setup(t, fx, {}, { maxConcurrency: 3, maxBatch: 16 }, 15);
  pf.onDirectoryListed(fetcher, files);
  assert.ok(await waitFor(() => files.every((f) => store.hasLocal(f.oid)), 20_000), "all prefetched");
  assert.ok(await waitFor(() => pf.stats().inFlight === 0, 5000));
  assert.ok(fetcher.maxInFlight <= 3, `max in flight ${fetcher.maxInFlight}`);
  assert.ok(fetcher.maxInFlight >= 2, "requests did run concurrently");
  assert.equal(fetcher.requests, Math.ceil(400 / 16));
  assert.equal(fetcher.blobs, 400);
  // Shallow files went first: the first request holds only depth-1 files.
  const depth1 = new Set(files.filter((f) => f.depth === 1).map((f) => f.oid));
  assert.ok(fetcher.log[0]!.every((oid) => depth1.has(oid)));
  // Prefetched data went to disk, not into the memory working set.
  assert.equal(store.stats().memoryBytes, 0);
  // Reads are now local: no more requests.
  for (const f of files.slice(0, 50)) await store.get(f.oid, fetcher);
  assert.equal(fetcher.requests, Math.ceil(400 / 16));
});

test("prefetch: a foreground read is not delayed by a long prefetch queue", async (t) => {
  const fx = makeRepo(randomFiles(800, () => 100));
  const delay = 250;
  const { store, pf, fetcher, files } = await setup(t, fx, {}, { maxConcurrency: 2, maxBatch: 8 }, delay);
  pf.onDirectoryListed(fetcher, files);
  // The queue would take ~ 800/8/2 × 250 ms = 12 s; the last file is at its very end.
  await sleep(delay / 2);
  const last = files[files.length - 1]!;
  assert.equal(store.hasLocal(last.oid), false);
  const t0 = Date.now();
  const data = await store.get(last.oid, fetcher);
  const took = Date.now() - t0;
  assert.ok(data.equals(fx.files.get([...fx.files.keys()][files.length - 1]!)!.data));
  // One request's latency (plus a loaded machine's slack), not the queue's.
  assert.ok(took < 4 * delay, `foreground read took ${took} ms behind the prefetch queue`);
  assert.ok(pf.stats().queued > 500, "prefetch was still busy");
  assert.ok(fetcher.maxInFlight <= 3, "2 prefetch + 1 foreground");
  // And the prefetcher later skips it rather than fetching it again.
  pf.stop();
});

test("prefetch: disabled does nothing", async (t) => {
  const fx = makeRepo(randomFiles(20, () => 100));
  const { store, pf, fetcher, files } = await setup(t, fx, {}, { enabled: false });
  pf.onDirectoryListed(fetcher, files);
  await sleep(100);
  assert.equal(fetcher.requests, 0);
  assert.equal(pf.stats().queued, 0);
  assert.equal(store.stats().prefetchRequests, 0);
});

test("prefetch: maxDepth limits levels; local and duplicate files are not requested", async (t) => {
  const fx = makeRepo(randomFiles(60, () => 300));
  const { store, pf, fetcher, files } = await setup(t, fx, {}, { maxDepth: 2 });
  const local = files[0]!;
  await store.get(local.oid, fetcher);
  const before = fetcher.blobs;
  pf.onDirectoryListed(fetcher, files);
  pf.onDirectoryListed(fetcher, files);
  const wanted = files.filter((f) => f.depth <= 2 && f.oid !== local.oid);
  assert.ok(await waitFor(() => wanted.every((f) => store.hasLocal(f.oid)), 10_000));
  assert.ok(await waitFor(() => pf.stats().inFlight === 0, 5000));
  assert.equal(fetcher.blobs - before, wanted.length, "each wanted blob requested once");
  for (const f of files.filter((f) => f.depth === 3)) assert.equal(store.hasLocal(f.oid), false);
  assert.ok(pf.stats().skippedLocal >= 1);
});

test("prefetch: pauses above the memory pressure limit", async (t) => {
  // No disk cache: prefetched data lands in memory, so pressure is real.
  const fx = makeRepo(randomFiles(64, () => 64 * 1024));
  const budget = 1 << 20;
  const { store, pf, fetcher, files } = await setup(
    t,
    fx,
    { disk: undefined, maxMemoryBytes: budget },
    { pressureLimit: 0.5, maxConcurrency: 1, maxBatchBytes: 128 * 1024 },
  );
  pf.onDirectoryListed(fetcher, files);
  assert.ok(await waitFor(() => pf.stats().paused, 5000), "paused");
  await sleep(100);
  const s = store.stats();
  assert.ok(s.memoryBytes <= 0.5 * budget + 128 * 1024, `memory ${s.memoryBytes}`);
  assert.ok(fetcher.blobs < 20, `fetched ${fetcher.blobs} of 64 before pausing`);
  assert.ok(pf.stats().queued > 40);
});

test("prefetch: stop() drops the queue and cancels what is in flight", async (t) => {
  const fx = makeRepo(randomFiles(100, () => 100));
  const { store, pf, fetcher, files } = await setup(t, fx, {}, { maxConcurrency: 1, maxBatch: 10 }, 200);
  pf.onDirectoryListed(fetcher, files);
  await sleep(20);
  pf.stop();
  await sleep(300);
  assert.equal(fetcher.requests, 1);
  assert.equal(pf.stats().queued, 0);
  assert.equal(files.filter((f) => store.hasLocal(f.oid)).length, 0);
  // The store still works for foreground reads.
  assert.ok((await store.get(files[0]!.oid, fetcher)).length === 100);
});

test("prefetch: files the cache could never keep are left for foreground reads", async (t) => {
  const fx = makeRepo(
    new Map([
      ["big.bin", Buffer.alloc(200 * 1024, 9)],
      ["small.txt", Buffer.from("hi\n")],
    ]),
  );
  const { store, pf, fetcher, files } = await setup(
    t,
    fx,
    { disk: undefined, maxMemoryBytes: 64 * 1024 },
    {},
  );
  pf.onDirectoryListed(fetcher, files);
  const small = files.find((f) => f.size === 3)!;
  assert.ok(await waitFor(() => store.hasLocal(small.oid), 5000));
  assert.ok(await waitFor(() => pf.stats().inFlight === 0, 5000));
  assert.equal(pf.stats().skippedTooBig, 1);
  assert.equal(fetcher.blobs, 1);
});
