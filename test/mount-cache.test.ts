/**
 * Failures and caches of a live mount against a real `mesa serve` behind a counting proxy:
 * the server going away after mount (browsing works, uncached reads give EIO, reads work
 * again once it is back), the disk cache cap, a remount served without blob fetches, a
 * remount's cache verified in the background, and an unmount in the middle of the stream.
 */
import assert from "node:assert/strict";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { type TestContext, test } from "node:test";
import { cachedBlobs, damageCached, readCached } from "./helpers/cache-files.js";
import { fixture } from "./helpers/fixture.js";
import { countingProxy, generateRepo, mesa, run, stopSandbox, waitFor } from "./helpers/mount.js";

test("server stopped after mount: browsing works, uncached reads give EIO, then recover", async (t) => {
  const fx = fixture(t, "mountdown");
  const dir = fx.dir;
  const dataDir = join(dir, "serve");
  let serve = await fx.serve({ dataDir });
  const adminKey = serve.adminKey;
  generateRepo(join(dir, "src"), { files: 200 });
  await serve.importRepo("local/app", join(dir, "src"));
  const proxy = fx.use(await countingProxy(serve.url));
  const env = fx.sandbox(".", {
    MESA_ORG: "local",
    MESA_API_KEY: adminKey,
    MESA_SERVICE_URL: proxy.url,
    MESA_PREFETCH_ENABLED: "false",
  });
  const up = await mesa(["mount", "-d"], env);
  assert.equal(up.code, 0, up.stderr);
  const root = join(env.MESA_MOUNT_POINT as string, "local", "app");
  assert.equal((await run("cat", [join(root, "README.md")])).stdout, "# generated\n");

  proxy.setDown(true);
  await serve.stop();
  const find = await run("find", [root], { timeoutMs: 30_000 });
  assert.equal(find.code, 0, find.stderr);
  assert.ok(find.stdout.split("\n").length > 200);
  const ls = await run("ls", ["-lR", root], { timeoutMs: 30_000 });
  assert.equal(ls.code, 0, ls.stderr);
  assert.equal((await run("cat", [join(root, "README.md")])).stdout, "# generated\n");
  const started = Date.now();
  const badPath = join(root, "日本語", "ファイル.txt");
  // C.UTF-8: the name is printable there, so cat prints it as it is.
  const bad = await run("cat", [badPath], { timeoutMs: 60_000, env: { ...process.env, LC_ALL: "C.UTF-8" } });
  assert.deepEqual([bad.code, bad.stderr], [1, `cat: ${badPath}: Input/output error\n`]);
  assert.ok(Date.now() - started < 45_000, "the failing read was not bounded");

  serve = await fx.serve({ dataDir });
  proxy.retarget(serve.url);
  proxy.setDown(false);
  let out = "";
  assert.ok(
    await waitFor(
      async () => {
        out = (await run("cat", [join(root, "日本語", "ファイル.txt")], { timeoutMs: 30_000 })).stdout;
        return out === "こんにちは\n";
      },
      30_000,
      500,
    ),
    `read did not recover: ${out}`,
  );
});

test("disk cache stays under its cap; a remount reads from disk with zero fetches", async (t) => {
  const fx = fixture(t, "mountcache");
  const dir = fx.dir;
  const serve = await fx.serve();
  generateRepo(join(dir, "src"), { files: 1500 });
  await serve.importRepo("local/app", join(dir, "src"));
  const proxy = fx.use(await countingProxy(serve.url));
  const base = { MESA_ORG: "local", MESA_API_KEY: serve.adminKey, MESA_SERVICE_URL: proxy.url };

  // A cap well below what is read (500 files, ~750 kB of content).
  const capped = fx.sandbox("capped", {
    ...base,
    MESA_CACHE_MAX_SIZE: "300KB",
    MESA_PREFETCH_ENABLED: "false",
  });
  assert.equal((await mesa(["mount", "-d"], capped)).code, 0);
  const cappedRoot = join(capped.MESA_MOUNT_POINT as string, "local", "app");
  const all = await run(
    "sh",
    ["-c", `find "${cappedRoot}" -type f | head -500 | tr '\\n' '\\0' | xargs -0 -P 8 -n 25 cat | wc -c`],
    { timeoutMs: 240_000 },
  );
  assert.equal(all.code, 0, all.stderr);
  assert.ok(Number(all.stdout.trim()) > 600_000, `read only ${all.stdout.trim()} bytes`);
  const du = await run("du", ["-sB1", capped.MESA_CACHE_PATH as string]);
  const used = Number(du.stdout.split("\t")[0]);
  assert.ok(used <= 300_000, `cache dir uses ${used} bytes, over the 300 kB cap`);
  await stopSandbox(capped);

  // Read everything once, unmount, mount again: no fetch reaches the server.
  const full = fx.sandbox("full", base);
  assert.equal((await mesa(["mount", "-d"], full)).code, 0);
  const root = join(full.MESA_MOUNT_POINT as string, "local", "app");
  const first = await run("sh", ["-c", `find "${root}" -type f -exec cat {} + | md5sum`], {
    timeoutMs: 240_000,
  });
  assert.equal((await mesa(["unmount"], full)).code, 0);
  const before = proxy.fetches();
  assert.equal((await mesa(["mount", "-d"], full)).code, 0);
  const second = await run("sh", ["-c", `find "${root}" -type f -exec cat {} + | md5sum`], {
    timeoutMs: 240_000,
  });
  assert.equal(second.stdout, first.stdout);
  // On failure, what the daemon said about it (its log is read only then).
  const fetched = proxy.fetches() - before;
  const said = () =>
    readFileSync(full.MESA_DAEMON_LOG_FILE as string, "utf8")
      .split("\n")
      .filter((l) => /fetch|stream|verif|corrupt|warn|error|loaded/i.test(l))
      .slice(-30)
      .join("\n");
  assert.equal(
    fetched,
    0,
    fetched === 0 ? undefined : `the remount fetched from the server; the daemon's log:\n${said()}`,
  );
  const stats = JSON.parse((await mesa(["stats", "--format", "json"], full)).stdout) as {
    cache: { misses: number; disk_hits: number };
  };
  assert.equal(stats.cache.misses, 0);
  assert.ok(stats.cache.disk_hits > 0);
});

/** A sandbox mounting `local/app`, a generated repo of `files` files on a real `mesa serve`. */
async function servedApp(t: TestContext, name: string, files: number) {
  const fx = fixture(t, name);
  const serve = await fx.serve();
  generateRepo(join(fx.dir, "src"), { files });
  await serve.importRepo("local/app", join(fx.dir, "src"));
  return fx.sandbox(name, { MESA_ORG: "local", MESA_API_KEY: serve.adminKey, MESA_SERVICE_URL: serve.url });
}

test("a remount's disk cache is hashed in the background: reads then go to the binding, a damaged file is caught and fetched again", async (t) => {
  const env = await servedApp(t, "mountverify", 300);
  const root = join(env.MESA_MOUNT_POINT as string, "local", "app");
  const tree = `find "${root}" -type f | sort | xargs cat | md5sum`;
  assert.equal((await mesa(["mount", "-d"], env)).code, 0);
  const first = await run("sh", ["-c", tree], { timeoutMs: 120_000 });
  assert.equal(first.code, 0, first.stderr);
  assert.equal((await mesa(["unmount"], env)).code, 0);

  // One cached blob in a segment damaged while unmounted, its size kept (only its hash can tell).
  const inSegments = cachedBlobs(env.MESA_CACHE_PATH as string).filter((b) => b.inSegment);
  assert.ok(inSegments.length >= 250, `${inSegments.length} blobs in segments`);
  damageCached(inSegments[inSegments.length >> 1]!);

  assert.equal((await mesa(["mount", "-d"], env)).code, 0);
  const stats = async () =>
    JSON.parse((await mesa(["stats", "--format", "json"], env)).stdout) as {
      fs: { read: number };
      cache: { disk_entries: number; verified_in_background: number; corrupt: number; disk_hits: number };
    };
  let s = await stats();
  const entries = s.cache.disk_entries;
  assert.ok(entries >= 300, `${entries} cached blobs`);
  assert.ok(
    await waitFor(async () => {
      s = await stats();
      // Every other entry hashed in the background or by a read (the mount reads a few).
      return s.cache.corrupt === 1 && s.cache.verified_in_background + s.cache.disk_hits >= entries - 1;
    }, 30_000),
    `background verification: ${JSON.stringify(s.cache)}`,
  );
  const readsBefore = s.fs.read;
  const second = await run("sh", ["-c", tree], { timeoutMs: 120_000 });
  assert.equal(second.stdout, first.stdout, "the remount reads the same content");
  // Only the damaged file's read reaches JavaScript (to fetch it again); before, every first
  // read of a file after a restart did, to hash it.
  const viaJs = (await stats()).fs.read - readsBefore;
  assert.ok(viaJs <= 2, `${viaJs} of 300 reads went through JavaScript`);
});

test("unmounting while the whole-tree stream writes leaves only whole blobs in the cache", async (t) => {
  const env = await servedApp(t, "mountstop", 4000);
  assert.equal((await mesa(["mount", "-d"], env)).code, 0);
  const streamed = async () => {
    const s = JSON.parse((await mesa(["stats", "--format", "json"], env)).stdout) as {
      cache: { prefetch: { streaming: boolean; streamed_blobs: number } };
    };
    return s.cache.prefetch;
  };
  // Stopped as soon as the stream has written something (or has ended: then nothing is torn either).
  assert.ok(
    await waitFor(async () => (await streamed()).streamed_blobs > 0, 30_000),
    "the stream never wrote",
  );
  assert.equal((await mesa(["unmount"], env)).code, 0);

  // Every blob the cache lists (files of their own, segments' index lines) is exactly that
  // blob, as git hashes it.
  const held = cachedBlobs(env.MESA_CACHE_PATH as string);
  assert.ok(held.length > 0);
  const out = join(env.MESA_DATA_DIR as string, "held");
  mkdirSync(out, { recursive: true });
  const files = held.map((b, i) => {
    writeFileSync(join(out, String(i)), readCached(b));
    return join(out, String(i));
  });
  const hashed = await run("git", ["hash-object", "--stdin-paths"], {
    input: files.join("\n"),
    timeoutMs: 60_000,
  });
  assert.equal(hashed.code, 0, hashed.stderr);
  const torn = hashed.stdout
    .trim()
    .split("\n")
    .filter((oid, i) => oid !== held[i]!.oid);
  assert.deepEqual(torn, [], `${torn.length} of ${held.length} cached blobs are not the blob they name`);
});
