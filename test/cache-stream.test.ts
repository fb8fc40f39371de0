/**
 * The whole-tree prefetch as one pack stream, against the real `git http-backend`: one
 * request, every blob verified, a broken stream stores nothing wrong and falls back to
 * batches, a foreground read does not wait for the stream, and the disk cap holds (and
 * nothing is fetched twice) when the tree is larger than the cap.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type TestContext, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { BlobStore } from "../src/cache/blob-store.js";
import { Prefetcher } from "../src/cache/prefetcher.js";
import { SEGMENT_BLOB_MAX } from "../src/cache/segments.js";
import { GitRemote } from "../src/vcs/remote.js";
import { blobId, cachedBlobs, readCached } from "./helpers/cache-files.js";
import { du, duAsync, type Fixture, makeRepo, randomFiles } from "./helpers/cache-fixture.js";
import { type CapsProxy, capsProxy } from "./helpers/caps-proxy.js";
import { type FaultProxy, faultProxy, type GitServer, serveGit } from "./helpers/git-http.js";

/** Random files plus near-copies of one text (the server stores those as deltas). */
function mixedFiles(random: number, similar: number): Map<string, Buffer> {
  // Every 50th file is past the size that goes into segments.
  const files = randomFiles(random, (i) => (i % 50 === 7 ? 300_000 : 512 + ((i * 977) % 6000)));
  const text = Array.from({ length: 200 }, (_, i) => `line ${i} of a shared document\n`).join("");
  for (let i = 0; i < similar; i++)
    files.set(`docs/${i % 7}/page-${i}.md`, Buffer.from(`${text}page ${i}\n`));
  return files;
}

interface Setup {
  fx: Fixture;
  server: GitServer;
  counter: CapsProxy;
  proxy: FaultProxy;
  remote: GitRemote;
  store: BlobStore;
  pf: Prefetcher;
  cacheDir: string;
  files: Array<{ oid: string; size: number }>;
}

async function setup(t: TestContext, files: Map<string, Buffer>, capBytes = 256 << 20): Promise<Setup> {
  const fx = makeRepo(files);
  const server = await serveGit(fx.root);
  const counter = await capsProxy(server.url);
  const proxy = await faultProxy(counter.url);
  const remote = new GitRemote({ url: `${proxy.url}/repo.git`, retries: 0 });
  const cacheDir = mkdtempSync(join(tmpdir(), "mesa-stream-"));
  const store = new BlobStore({ disk: { path: cacheDir, maxBytes: capBytes }, maxMemoryBytes: 8 << 20 });
  await store.open();
  const pf = new Prefetcher({ store, enabled: true, maxDepth: null, maxConcurrency: 2, pressureLimit: 0.8 });
  t.after(async () => {
    pf.stop();
    await store.close();
    await remote.close();
    await proxy.close();
    await counter.close();
    await server.close();
    rmSync(cacheDir, { recursive: true, force: true });
    fx.cleanup();
  });
  const list = [...fx.files.values()].map((f) => ({ oid: f.oid, size: f.data.length }));
  return { fx, server, counter, proxy, remote, store, pf, cacheDir, files: list };
}

/** Every blob in the cache directory (own files and segments) hashes to its id; how many there are. */
function assertCacheVerified(dir: string): number {
  const all = cachedBlobs(dir);
  const damaged = all.filter((b) => blobId(readCached(b)) !== b.oid).map((b) => b.oid);
  assert.deepEqual(damaged, [], "cached blobs that do not match their id");
  return new Set(all.map((b) => b.oid)).size;
}

/** One read pass over every file, 32 at a time as a parallel reader would; returns bytes read. */
async function readAll(s: Setup): Promise<number> {
  const all = [...s.fx.files.values()];
  let read = 0;
  for (let i = 0; i < all.length; i += 32) {
    const got = await Promise.all(
      all.slice(i, i + 32).map((f) => s.store.readRange(f.oid, 0, f.data.length, s.remote)),
    );
    got.forEach((g, j) => {
      assert.ok(g.equals(all[i + j]!.data));
      read += g.length;
    });
  }
  return read;
}

async function waitUntil(done: () => boolean, ms: number): Promise<boolean> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (done()) return true;
    await sleep(20);
  }
  return done();
}

test("stream: the whole tree arrives in one fetch request, every blob verified", async (t) => {
  const s = await setup(t, mixedFiles(300, 150));
  await s.pf.streamCommit(s.remote, s.fx.commit, s.files);
  const blobFetches = s.counter.blobFetches();
  assert.equal(blobFetches.length, 1, JSON.stringify(blobFetches));
  assert.deepEqual(blobFetches[0], { command: "fetch", wants: 1, filter: undefined, deepen: true });
  for (const f of s.files) assert.ok(s.store.hasLocal(f.oid), `${f.oid} not cached`);
  await s.store.flush();
  assert.equal(assertCacheVerified(s.cacheDir), s.files.length);
  // Small blobs in a few segments, large ones in files of their own.
  const held = cachedBlobs(s.cacheDir);
  const large = s.files.filter((f) => f.size > SEGMENT_BLOB_MAX).map((f) => f.oid);
  assert.ok(large.length >= 5);
  assert.deepEqual(
    held
      .filter((b) => !b.inSegment)
      .map((b) => b.oid)
      .sort(),
    large.sort(),
  );
  assert.ok(
    new Set(held.filter((b) => b.inSegment).map((b) => b.file)).size <= 2,
    "small blobs in one or two segments",
  );
  // The worker wrote them; the cache booked every byte du sees (and little more).
  const booked = s.store.stats().diskBytes;
  const seen = du(s.cacheDir).blocks;
  assert.ok(booked >= seen && booked <= seen + 16 * 4096, `booked ${booked} bytes, du ${seen}`);
  const st = s.pf.stats();
  assert.equal(st.streamsDone, 1);
  assert.equal(st.streamErrors, 0);
  assert.equal(st.requests, 0, "no batches");
  // Reads are local now.
  const before = s.counter.commands.length;
  for (const [, f] of [...s.fx.files].slice(0, 40))
    assert.ok((await s.store.get(f.oid, s.remote)).equals(f.data));
  assert.equal(s.counter.commands.length, before);
});

test("stream: without sizes (a server without object-info) the whole tree is still stored", async (t) => {
  const s = await setup(t, mixedFiles(300, 150));
  await s.pf.streamCommit(
    s.remote,
    s.fx.commit,
    s.files.map((f) => ({ oid: f.oid })),
  );
  const st = s.pf.stats();
  assert.equal(st.streamsFull, 0, JSON.stringify(st));
  for (const f of s.files) assert.ok(s.store.hasLocal(f.oid), `${f.oid} not cached`);
  assert.equal(s.counter.blobFetches().length, 1, "one stream, no batches");
});

for (const fault of [
  { name: "corrupt", f: { kind: "corrupt", offsetFromEnd: 3000 } },
  { name: "truncated", f: { kind: "truncate", keepBytes: -5000 } },
] as const) {
  test(`stream: a ${fault.name} stream stores nothing wrong and falls back to batches`, async (t) => {
    const s = await setup(t, mixedFiles(200, 100));
    s.proxy.inject("/git-upload-pack", fault.f);
    await s.pf.streamCommit(s.remote, s.fx.commit, s.files);
    assert.equal(s.pf.stats().streamErrors, 1);
    assert.ok(
      await waitUntil(
        () => s.files.every((f) => s.store.hasLocal(f.oid)) && s.pf.stats().inFlight === 0,
        30_000,
      ),
      "the batches did not bring the rest",
    );
    assert.ok(s.pf.stats().requests >= 1, "fell back to batches");
    await s.store.flush();
    assert.equal(assertCacheVerified(s.cacheDir), s.files.length);
    for (const [, f] of s.fx.files) assert.ok((await s.store.get(f.oid, s.remote)).equals(f.data));
  });
}

test("stream: a foreground read of a file not arrived yet gets its own request at once", async (t) => {
  const s = await setup(t, mixedFiles(200, 50));
  // The stream's answer is held back for 4 s.
  s.proxy.inject("/git-upload-pack", { kind: "delay", ms: 4000 });
  const streaming = s.pf.streamCommit(s.remote, s.fx.commit, s.files);
  await waitUntil(() => s.counter.blobFetches().length === 1, 5000);
  const [, wanted] = [...s.fx.files][123]!;
  const started = Date.now();
  const data = await s.store.get(wanted.oid, s.remote);
  const ms = Date.now() - started;
  assert.ok(data.equals(wanted.data));
  assert.ok(ms < 2000, `the read waited ${ms} ms`);
  assert.equal(s.counter.blobFetches().length, 2);
  assert.equal(s.counter.blobFetches()[1]!.wants, 1);
  await streaming;
  assert.equal(s.pf.stats().streamsDone, 1);
});

test("stream: a tree larger than the disk cap stops when the cap is reached; one read pass fetches ≤ 1.1× what it reads", async (t) => {
  // ≈ 2.4 MB of incompressible content against a 1 MB cap.
  const files = randomFiles(300, () => 8000);
  const cap = 1 << 20;
  const s = await setup(t, files, cap);
  let maxDu = 0;
  let sampling = true;
  const sampler = (async () => {
    while (sampling) {
      maxDu = Math.max(maxDu, (await duAsync(s.cacheDir)).blocks);
      await sleep(20);
    }
  })();
  t.after(() => {
    sampling = false;
  });
  await s.pf.streamCommit(s.remote, s.fx.commit, s.files);
  await s.store.flush();
  const st = s.pf.stats();
  assert.equal(st.streamsFull, 1, JSON.stringify(st));
  assert.ok(st.streamedBlobs > 50, `stored ${st.streamedBlobs}`);
  assert.ok(du(s.cacheDir).blocks <= cap, "over the cap after the stream");
  assert.ok(s.store.stats().diskBytes >= du(s.cacheDir).blocks, "the cache booked what the stream wrote");
  // One full read pass, as a reader of every file would.
  const read = await readAll(s);
  await s.store.flush();
  sampling = false;
  await sampler;
  assert.ok(maxDu <= cap, `du reached ${maxDu} > ${cap}`);
  const fetched = s.remote.stats.bytes;
  assert.ok(
    fetched <= 1.1 * read,
    `fetched ${fetched} bytes for ${read} read (${(fetched / read).toFixed(2)}×)`,
  );
});

test("batches: with a cap smaller than the tree, one read pass fetches ≤ 1.1× what it reads", async (t) => {
  const files = randomFiles(300, () => 8000);
  const cap = 1 << 20;
  const s = await setup(t, files, cap);
  const pf = new Prefetcher({
    store: s.store,
    enabled: true,
    maxDepth: 3,
    maxConcurrency: 2,
    pressureLimit: 0.8,
  });
  t.after(() => pf.stop());
  pf.onDirectoryListed(
    s.remote,
    s.files.map((f) => ({ ...f, depth: 1 })),
  );
  assert.ok(await waitUntil(() => pf.stats().inFlight === 0 && pf.stats().queued === 0, 20_000));
  await s.store.flush();
  assert.ok(pf.stats().skippedNoRoom > 0, JSON.stringify(pf.stats()));
  assert.ok(du(s.cacheDir).blocks <= cap);
  const read = await readAll(s);
  const fetched = s.remote.stats.bytes;
  assert.ok(
    fetched <= 1.1 * read,
    `fetched ${fetched} bytes for ${read} read (${(fetched / read).toFixed(2)}×)`,
  );
});

test("pack stream: near-copies of large blobs (deltas) come through the worker whole", async (t) => {
  // The server sends these as deltas against one another; the worker resolves them all.
  const big = randomBytes(300_000);
  const files = new Map<string, Buffer>();
  for (let i = 0; i < 12; i++) files.set(`v/${i}.bin`, Buffer.concat([big, Buffer.from(`version ${i}\n`)]));
  const s = await setup(t, files);
  const got = new Map<string, Buffer>();
  const r = await s.remote.streamCommit(
    s.fx.commit,
    (oid, _type, data) => {
      got.set(oid, Buffer.from(data));
    },
    { types: ["blob"] },
  );
  assert.equal(r.unresolved, 0);
  for (const [, f] of s.fx.files) assert.ok(got.get(f.oid)?.equals(f.data), `blob ${f.oid}`);
});
