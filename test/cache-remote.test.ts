/**
 * The cache layer over the real Git client: GitRemote against the real `git http-backend`,
 * counting the requests the server sees.
 */
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, readdirSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { BlobStore } from "../src/cache/blob-store.js";
import { Prefetcher } from "../src/cache/prefetcher.js";
import { TreeStore } from "../src/cache/tree-store.js";
import { GitRemote } from "../src/vcs/remote.js";
import { du, git, makeRepo, randomFiles } from "./helpers/cache-fixture.js";
import { serveGit } from "./helpers/git-http.js";

async function served(files: Map<string, Buffer>) {
  const fx = makeRepo(files);
  const projectRoot = join(fx.root, "srv");
  mkdirSync(join(projectRoot, "org"), { recursive: true });
  git(fx.root, ["clone", "-q", "--bare", fx.bare, join(projectRoot, "org", "repo.git")]);
  const server = await serveGit(projectRoot);
  const remotes: GitRemote[] = [];
  const remote = () => {
    const r = new GitRemote({ url: `${server.url}/org/repo.git` });
    remotes.push(r);
    return r;
  };
  const fetches = () => server.requests.filter((r) => r.method === "POST").length;
  const cleanup = async () => {
    for (const r of remotes) await r.close();
    await server.close();
    fx.cleanup();
  };
  return { fx, server, remote, fetches, cleanup };
}

test("cache over GitRemote: batched fetch, disk cap, and a restart that needs zero blob requests", async (t) => {
  const s = await served(randomFiles(300, (i) => 500 + ((i * 37) % 9000)));
  const dir = mkdtempSync(join(tmpdir(), "mesa-cache-remote-"));
  t.after(async () => {
    await s.cleanup();
    rmSync(dir, { recursive: true, force: true });
  });
  const blobs = [...s.fx.files.values()];
  const total = blobs.reduce((n, b) => n + b.data.length, 0);

  const a = new BlobStore({ disk: { path: dir, maxBytes: 8 << 20 }, maxMemoryBytes: 1 << 20 });
  await a.open();
  const r1 = s.remote();
  await r1.capabilities();
  const before = s.fetches();
  const got = await Promise.all(blobs.map((b) => a.get(b.oid, r1)));
  got.forEach((g, i) => {
    assert.ok(g.equals(blobs[i]!.data));
  });
  assert.equal(s.fetches() - before, 2, "300 concurrent misses → 2 upload-pack requests");
  await a.close();
  assert.ok(du(dir).blocks <= 8 << 20);

  // Remount: a new store and a new client on the same cache dir.
  const b = new BlobStore({ disk: { path: dir, maxBytes: 8 << 20 }, maxMemoryBytes: 1 << 20 });
  await b.open();
  t.after(() => b.close());
  const r2 = s.remote();
  const requestsBefore = s.server.requests.length;
  for (const blob of blobs) assert.ok((await b.get(blob.oid, r2)).equals(blob.data));
  assert.equal(s.server.requests.length - requestsBefore, 0, "no request at all reached the server");
  assert.ok(total < 8 << 20);
});

test("cache over GitRemote: prefetching a listed tree, then reads are local", async (t) => {
  const s = await served(randomFiles(200, () => 2000));
  const dir = mkdtempSync(join(tmpdir(), "mesa-cache-remote-"));
  const store = new BlobStore({ disk: { path: dir, maxBytes: 64 << 20 }, maxMemoryBytes: 8 << 20 });
  await store.open();
  const pf = new Prefetcher({ store, enabled: true, maxDepth: null, maxConcurrency: 4, pressureLimit: 0.8 });
  t.after(async () => {
    pf.stop();
    await store.close();
    await s.cleanup();
    rmSync(dir, { recursive: true, force: true });
  });
  const remote = s.remote();
  const files = [...s.fx.files.values()].map((f) => ({ oid: f.oid, size: f.data.length, depth: 1 }));
  pf.onDirectoryListed(remote, files);
  const end = Date.now() + 20_000;
  while (!files.every((f) => store.hasLocal(f.oid)) && Date.now() < end) await sleep(20);
  assert.ok(files.every((f) => store.hasLocal(f.oid)));
  const after = s.fetches();
  for (const f of [...s.fx.files.values()]) assert.ok((await store.get(f.oid, remote)).equals(f.data));
  assert.equal(s.fetches(), after);
  assert.ok(pf.stats().requests >= 1 && pf.stats().requests <= 4);
});

test("tree store: a commit's trees and sizes from the server survive a restart", async (t) => {
  const s = await served(randomFiles(120, (i) => i * 13));
  const dir = mkdtempSync(join(tmpdir(), "mesa-trees-"));
  t.after(async () => {
    await s.cleanup();
    rmSync(dir, { recursive: true, force: true });
  });
  const remote = s.remote();
  const { commit, trees } = await remote.fetchCommitTrees(s.fx.commit);
  const blobOids = [...trees.values()]
    .flat()
    .filter((e) => e.mode !== "40000")
    .map((e) => e.oid);
  const sizes = await remote.objectSizes(blobOids);

  const a = new TreeStore({ path: dir });
  await a.open();
  const commitTime = commit.committer.timestamp;
  await a.putSnapshot({ commit: s.fx.commit, tree: commit.tree, trees, sizes, commitTime });
  await a.putSizes(sizes);
  await a.putSizes(sizes);
  let recordBytes = 0;
  for (const f of readdirSync(join(dir, "sizes"))) recordBytes += statSync(join(dir, "sizes", f)).size;
  assert.equal(recordBytes, sizes.size * 29, "one 29-byte record per blob, none duplicated");

  const b = new TreeStore({ path: dir });
  await b.open();
  const snap = await b.getSnapshot(s.fx.commit);
  assert.ok(snap);
  assert.equal(snap.tree, commit.tree);
  assert.equal(snap.commitTime, commitTime);
  assert.deepEqual(snap.trees, trees);
  assert.deepEqual(snap.sizes, sizes);
  assert.deepEqual(await b.getSizes(blobOids), sizes);
  for (const [path, f] of s.fx.files) assert.equal(sizes.get(f.oid), f.data.length, path);
  assert.equal(await b.getSnapshot("0".repeat(40)), undefined);
});
