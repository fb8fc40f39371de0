/**
 * The kernel keeps entries, attributes, misses, listings and content for a day; these tests
 * check that everything that changes behind its back is invalidated explicitly (another
 * mount's edit, a `git push`, a rebase that writes conflict markers), that many readers at
 * once get the right bytes, and that a server going away mid-walk fails reads promptly.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { cachedBlobs } from "./helpers/cache-files.js";
import { fixture } from "./helpers/fixture.js";
import { countingProxy, generateRepo, gitSync, mesa, run, waitFor } from "./helpers/mount.js";
import {
  authHeader,
  camelKeys,
  cloneRepo,
  type Daemon,
  importSmallRepo,
  serverRef,
  waitPushed,
} from "./helpers/write.js";

/** What this mount shows for `file` through the kernel: content, stat size and the listing. */
async function view(d: Daemon, repo: string, file: string): Promise<string> {
  const r = await d.sh(
    repo,
    `cat ${file} 2>&1; echo "|size=$(stat -c %s ${file} 2>&1)|"; ls -1 | tr '\\n' ,`,
  );
  return r.stdout;
}

async function expectWithin(
  ms: number,
  what: string,
  check: () => Promise<string>,
  want: (s: string) => boolean,
): Promise<number> {
  const t0 = Date.now();
  let last = "";
  const ok = await waitFor(
    async () => {
      last = await check();
      return want(last);
    },
    ms,
    50,
  );
  assert.ok(ok, `${what} not visible within ${ms} ms; the mount shows: ${last}`);
  return Date.now() - t0;
}

test("changes from another mount, a git push and a conflicting rebase reach the kernel's caches within 3 s", async (t) => {
  const fx = fixture(t, "kcache");
  const dir = fx.dir;
  const serve = await fx.serve();
  await importSmallRepo(serve, dir, "app");
  const a = await fx.daemon(serve, { name: "a" });
  const b = await fx.daemon(serve, { name: "b" });

  // Prime a's caches: the file's content and size, the listing, and a miss.
  assert.match(await view(a, "app", "README.md"), /^hello\n\|size=6\|/);
  assert.match((await a.sh("app", "cat new.txt")).stderr, /No such file or directory/);

  // 1. Another mount edits a file a has cached and creates one a has cached as missing.
  assert.equal((await b.sh("app", "printf 'from b, longer\\n' > README.md && printf new > new.txt")).code, 0);
  await waitPushed(b, "app");
  const t1 = await expectWithin(
    3000,
    "b's edit",
    async () => `${await view(a, "app", "README.md")}${(await a.sh("app", "cat new.txt")).stdout}`,
    (s) => s.startsWith("from b, longer\n|size=15|") && s.includes(",new.txt,") && s.endsWith("new"),
  );
  t.diagnostic(`another mount's edit visible after ${t1} ms`);

  // 2. A git push from outside deletes a file and adds a directory.
  const clone = cloneRepo(serve, "app", join(dir, "clone"));
  gitSync(clone, ["rm", "-q", "tool.sh"]);
  writeFileSync(join(clone, "sub", "a.txt"), "pushed\n");
  gitSync(clone, ["add", "-A"]);
  gitSync(clone, ["commit", "-q", "-m", "external"]);
  assert.match(await view(a, "app", "sub/a.txt"), /^a1\na2\na3\n\|size=9\|/);
  assert.equal((await a.sh("app", "test -x tool.sh")).code, 0);
  gitSync(clone, ["-c", authHeader(serve.adminKey), "push", "-q", "origin", "main"]);
  const t2 = await expectWithin(
    3000,
    "the pushed commit",
    async () => `${await view(a, "app", "sub/a.txt")}${(await a.sh("app", "stat tool.sh 2>&1")).stdout}`,
    (s) => s.startsWith("pushed\n|size=7|") && !s.includes("tool.sh,") && /No such file/.test(s),
  );
  t.diagnostic(`git push visible after ${t2} ms`);

  // 3. Both mounts edit the same file: the rebase on a writes conflict markers into it.
  await Promise.all([waitPushed(a, "app"), waitPushed(b, "app")]);
  const before = serverRef(serve, "app");
  assert.equal((await a.sh("app", "cat sub/a.txt")).stdout, "pushed\n");
  await Promise.all([
    a.sh("app", "printf 'A-SIDE\\n' > sub/a.txt"),
    b.sh("app", "printf 'B-SIDE\\n' > sub/a.txt"),
  ]);
  assert.ok(await waitFor(() => serverRef(serve!, "app") !== before, 15_000, 100), "nothing was pushed");
  const t3 = await expectWithin(
    3000 + 15_000,
    "the conflict markers",
    async () => (await a.sh("app", "cat sub/a.txt; stat -c '|%s|' sub/a.txt")).stdout,
    (s) => s.includes("<<<<<<< Conflict 1 of 1") && s.includes("A-SIDE") && s.includes("B-SIDE"),
  );
  t.diagnostic(`conflict markers visible after ${t3} ms`);
  const shown = (await a.sh("app", "cat sub/a.txt; stat -c '%s' sub/a.txt")).stdout.trim().split("\n");
  const size = Number(shown.pop());
  assert.equal(size, Buffer.byteLength(`${shown.join("\n")}\n`), "stat's size matches the content shown");
});

test("16 readers at once and ripgrep over the mount return what they return on a clone", async (t) => {
  const fx = fixture(t, "kcache-rg");
  const dir = fx.dir;
  const serve = await fx.serve();
  generateRepo(join(dir, "src"), { files: 1500, bigFileBytes: 3 << 20 });
  await serve.importRepo("local/app", join(dir, "src"));
  const env = fx.sandbox(".", {
    MESA_ORG: "local",
    MESA_API_KEY: serve.adminKey,
    MESA_SERVICE_URL: serve.url,
  });
  const up = await mesa(["mount", "-d"], env);
  assert.equal(up.code, 0, up.stderr);
  const root = join(env.MESA_MOUNT_POINT as string, "local", "app");
  const src = join(dir, "src");

  const files = (await run("git", ["-C", src, "ls-files"])).stdout.trim().split("\n");
  const regular = files.filter((f) => !/link|dangling|up-link/.test(f)).slice(0, 400);
  // 16 processes at once: half read the same big file, half read different files each.
  const readers = Array.from({ length: 16 }, (_, i) => {
    const list = i % 2 === 0 ? ["big.bin"] : regular.filter((_, k) => k % 8 === (i - 1) / 2);
    return run("sh", ["-c", 'for f in "$@"; do sha1sum "$f"; done', "sh", ...list], {
      cwd: root,
      timeoutMs: 120_000,
    });
  });
  const expected = (list: string[]) =>
    run("sh", ["-c", 'for f in "$@"; do sha1sum "$f"; done', "sh", ...list], { cwd: src });
  const results = await Promise.all(readers);
  for (let i = 0; i < 16; i++) {
    const list = i % 2 === 0 ? ["big.bin"] : regular.filter((_, k) => k % 8 === (i - 1) / 2);
    assert.equal(results[i].code, 0, results[i].stderr);
    assert.equal(results[i].stdout, (await expected(list)).stdout, `reader ${i}`);
  }

  const rg = async (cwd: string, args: string[]) => {
    const r = await run("rg", args, { cwd, timeoutMs: 120_000 });
    assert.ok(r.code === 0 || r.code === 1, `rg ${args.join(" ")} in ${cwd}: exit ${r.code} ${r.stderr}`);
    return r.stdout.trim().split("\n").sort().join("\n");
  };
  // A path is always given: with no path and a piped stdin, ripgrep searches stdin.
  for (const args of [
    ["--files", "."],
    ["-c", "end 1", "."],
    ["-j1", "-l", "xxxxxxxxxx", "."],
  ]) {
    const want = await rg(src, [...args, "-g", "!.git"]);
    assert.equal(await rg(root, args), want, `rg ${args.join(" ")}`);
    assert.equal(await rg(root, args), want, `rg ${args.join(" ")} (warm)`);
  }
  const find = await run("find", [".", "-name", "*.sh"], { cwd: root });
  const findWant = await run("find", [".", "-name", "*.sh", "-not", "-path", "./.git/*"], { cwd: src });
  assert.deepEqual(find.stdout.trim().split("\n").sort(), findWant.stdout.trim().split("\n").sort());
});

test("a server killed mid-walk: uncached reads fail with EIO promptly, nothing hangs, reads recover", async (t) => {
  const fx = fixture(t, "kcache-down");
  const dir = fx.dir;
  const proxy = fx.use(await countingProxy("http://127.0.0.1:1"));
  const dataDir = join(dir, "serve");
  let serve = await fx.serve({ dataDir });
  generateRepo(join(dir, "src"), { files: 3000 });
  await serve.importRepo("local/app", join(dir, "src"));
  proxy.retarget(serve.url);
  const env = fx.sandbox(".", {
    MESA_ORG: "local",
    MESA_API_KEY: serve.adminKey,
    MESA_SERVICE_URL: proxy.url,
    MESA_PREFETCH_ENABLED: "false",
  });
  const up = await mesa(["mount", "-d"], env);
  assert.equal(up.code, 0, up.stderr);
  const root = join(env.MESA_MOUNT_POINT as string, "local", "app");

  // A walk that reads every file, one process per file so each read's result is visible.
  const walk = spawn(
    "sh",
    ["-c", 'find . -type f -exec sh -c \'cat "$1" >/dev/null 2>&1 || echo "FAIL $1"\' _ {} \\;'],
    {
      cwd: root,
    },
  );
  fx.defer(() => {
    if (walk.exitCode === null) walk.kill("SIGKILL");
  });
  let out = "";
  walk.stdout?.on("data", (d) => {
    out += d;
  });
  const walked = new Promise<number | null>((r) => walk.on("exit", (code) => r(code)));
  assert.ok(await waitFor(() => proxy.fetches() > 5, 30_000, 50), "the walk fetched nothing");
  proxy.setDown(true);
  const stoppedAt = Date.now();
  process.kill(serve.pid, "SIGKILL");
  await serve.stop();
  let hung: NodeJS.Timeout | undefined;
  const code = await Promise.race([
    walked,
    new Promise((r) => (hung = setTimeout(() => r("hung"), 240_000))),
  ]);
  clearTimeout(hung);
  assert.notEqual(code, "hung", "the walk hung after the server went away");
  t.diagnostic(`walk ended ${Date.now() - stoppedAt} ms after the server stopped`);
  const failed = out.split("\n").filter((l) => l.startsWith("FAIL "));
  assert.ok(failed.length > 0, "no read failed although the server was gone");
  // Each failing read is bounded: time one more directly and check its errno.
  const one = failed[0].slice(5);
  const t0 = Date.now();
  const again = await run("cat", [one], { cwd: root, timeoutMs: 60_000 });
  assert.match(again.stderr, /Input\/output error/);
  assert.ok(Date.now() - t0 < 45_000, `a failing read took ${Date.now() - t0} ms`);
  // Metadata never waits for the network.
  assert.equal((await run("ls", ["-lR", "."], { cwd: root, timeoutMs: 30_000 })).code, 0);

  serve = await fx.serve({ dataDir });
  proxy.retarget(serve.url);
  proxy.setDown(false);
  const want = readFileSync(join(dir, "src", one));
  assert.ok(
    await waitFor(
      async () => (await run("cat", [one], { cwd: root, timeoutMs: 30_000 })).stdout === want.toString(),
      30_000,
      500,
    ),
    "reads did not recover after the server came back",
  );
});

async function prefetchIdle(d: Daemon): Promise<boolean> {
  const r = await mesa(["status", "--json"], d.env);
  assert.equal(r.code, 0, r.stderr);
  const c = (
    camelKeys(JSON.parse(r.stdout)) as { cache: { inflight: number; prefetch: Record<string, number> } }
  ).cache;
  return c.inflight === 0 && !c.prefetch.streaming && c.prefetch.inFlight === 0 && c.prefetch.queued === 0;
}

interface FsCounters {
  /** Reads, listings and stats that reached the filesystem; listings made ahead of the kernel. */
  read: number;
  /** Reads that reached JavaScript only to be handed back to the binding. */
  readsHandedBack: number;
  readdir: number;
  getattr: number;
  listedAhead: number;
  aheadUsed: number;
}

/** The daemon's filesystem counters (`mesa stats --json`). */
async function fsCounters(d: Daemon): Promise<FsCounters> {
  const r = await mesa(["stats", "--json"], d.env);
  assert.equal(r.code, 0, r.stderr);
  return camelKeys((JSON.parse(r.stdout) as { fs: unknown }).fs) as FsCounters;
}

async function fsReads(d: Daemon): Promise<number> {
  return (await fsCounters(d)).read;
}

test("first reads of cached files come from the cache file through the binding; a push, a write or an eviction sends reads to the filesystem again", async (t) => {
  const fx = fixture(t, "kcache-backing");
  const dir = fx.dir;
  const serve = await fx.serve();
  generateRepo(join(dir, "src"), { files: 300, bigFileBytes: 1 << 20 });
  await serve.importRepo("local/app", join(dir, "src"));
  const d = await fx.daemon(serve);
  const src = join(dir, "src");
  const files = (await run("git", ["-C", src, "ls-files", "-s", "-z"])).stdout
    .split("\0")
    .filter(Boolean)
    .map((l) => {
      const [meta, path] = l.split("\t");
      const [mode, oid] = meta.split(" ");
      return { mode, oid, path };
    })
    .filter((f) => f.mode === "100644" || f.mode === "100755");
  // The whole tree is in the disk cache once the prefetch stream went idle (the large file in
  // a file of its own, the others in a segment, read by the binding at their offsets).
  assert.ok(await waitFor(() => prefetchIdle(d), 60_000, 100), "the prefetch stream did not end");
  const cached = new Map(cachedBlobs(d.env.MESA_CACHE_PATH as string).map((b) => [b.oid, b]));
  for (const f of files) assert.ok(cached.has(f.oid), `${f.path} is not in the disk cache`);
  const inSegments = files.filter((f) => cached.get(f.oid)!.inSegment).length;
  assert.ok(inSegments >= files.length / 2, `${inSegments} of ${files.length} files in segments`);

  // An evicted blob: its reads go to the filesystem, which fetches it again.
  const evicted = files.find((f) => !cached.get(f.oid)!.inSegment)!;
  rmSync(cached.get(evicted.oid)!.file);
  const r0 = await fsReads(d);
  const sums = 'for f in "$@"; do sha1sum "$f"; done';
  const all = files.map((f) => f.path);
  const got = await run("sh", ["-c", sums, "sh", ...all], { cwd: d.root("app"), timeoutMs: 60_000 });
  const want = await run("sh", ["-c", sums, "sh", ...all], { cwd: src });
  assert.equal(got.code, 0, got.stderr);
  assert.equal(got.stdout, want.stdout);
  const r1 = await fsReads(d);
  assert.ok(r1 > r0, "the evicted file was read through the filesystem");
  // The evicted file is the 1 MB one (the small ones share segments): up to one read per 128 KiB
  // of it may arrive while it is fetched again; every other file's reads are the binding's.
  assert.ok(r1 - r0 <= 10, `${r1 - r0} reads reached the filesystem for ${files.length} cached files`);

  // A git push from outside changes a file the binding was reading from the cache.
  const pushed = files.find((f) => f.path !== evicted.path && f.path.endsWith(".txt"))!;
  const clone = cloneRepo(serve, "app", join(dir, "clone"));
  writeFileSync(join(clone, pushed.path), "pushed content\n");
  gitSync(clone, ["commit", "-q", "-am", "external"]);
  gitSync(clone, ["-c", authHeader(serve.adminKey), "push", "-q", "origin", "HEAD:main"]);
  await expectWithin(
    10_000,
    "the pushed content",
    async () => (await d.sh("app", `cat '${pushed.path}'`)).stdout,
    (s) => s === "pushed content\n",
  );

  // A write through the mount to another cached file.
  const written = files.find(
    (f) => ![evicted.path, pushed.path].includes(f.path) && f.path.endsWith(".txt"),
  )!;
  const before = readFileSync(join(src, written.path), "utf8");
  assert.equal((await d.sh("app", `printf appended >> '${written.path}'`)).code, 0);
  assert.equal((await d.sh("app", `cat '${written.path}'`)).stdout, `${before}appended`);
  assert.equal(readFileSync(join(d.root("app"), written.path), "utf8"), `${before}appended`);
});

test("a file listed before its blob was local is read by the binding once it is", async (t) => {
  const fx = fixture(t, "kcache-late-blob");
  const serve = await fx.serve();
  const src = join(fx.dir, "src");
  mkdirSync(join(src, "docs"), { recursive: true });
  const text = `same content\n${"y".repeat(9000)}\n`;
  writeFileSync(join(src, "docs", "one.txt"), text);
  writeFileSync(join(src, "docs", "two.txt"), text);
  gitSync(src, ["init", "-q", "-b", "main"]);
  gitSync(src, ["add", "-A"]);
  gitSync(src, ["commit", "-q", "-m", "two copies"]);
  await serve.importRepo("local/app", src);
  // No prefetch: blobs become local only when read.
  const d = await fx.daemon(serve, { env: { MESA_PREFETCH_ENABLED: "false" } });

  // Both listed while their blob is not local: the binding has no file to read them from.
  assert.equal((await d.sh("app", "ls -l docs >/dev/null")).code, 0);
  const r0 = await fsReads(d);
  assert.equal((await d.sh("app", "cat docs/one.txt")).stdout, text);
  const r1 = await fsReads(d);
  assert.ok(r1 > r0, "the first copy was read through the filesystem");
  // The blob is local now: the other copy's read goes to the binding, which reads the cache file.
  assert.equal((await d.sh("app", "cat docs/two.txt")).stdout, text);
  assert.equal(await fsReads(d), r1, "the second copy was read through the filesystem");
});

test("a file listed before its blob was local is read by the binding once a prefetch brought its blob", async (t) => {
  const fx = fixture(t, "kcache-prefetched-blob");
  const serve = await fx.serve();
  const src = join(fx.dir, "src");
  mkdirSync(join(src, "docs"), { recursive: true });
  const files = Array.from({ length: 20 }, (_, i) => [
    `docs/f${i}.txt`,
    `file ${i}\n${"z".repeat(i * 300)}\n`,
  ]);
  for (const [rel, text] of files) writeFileSync(join(src, rel), text);
  gitSync(src, ["init", "-q", "-b", "main"]);
  gitSync(src, ["add", "-A"]);
  gitSync(src, ["commit", "-q", "-m", "docs"]);
  await serve.importRepo("local/app", src);
  // Prefetch one level below a listed directory: the listing comes first, the blobs after it.
  const d = await fx.daemon(serve, { env: { MESA_PREFETCH_MAX_DEPTH: "1" } });
  assert.equal((await d.sh("app", "ls -l docs >/dev/null")).code, 0);
  const prefetched = async () => {
    const r = await mesa(["stats", "--json"], d.env);
    return (camelKeys(JSON.parse(r.stdout)) as { cache: { prefetchedBlobs: number } }).cache.prefetchedBlobs;
  };
  assert.ok(
    await waitFor(async () => (await prefetched()) >= files.length, 10_000, 50),
    "nothing was prefetched",
  );
  const c0 = await fsCounters(d);
  for (const [rel, text] of files) assert.equal((await d.sh("app", `cat ${rel}`)).stdout, text);
  const c1 = await fsCounters(d);
  assert.equal(c1.read - c0.read, 0, "reads reached the filesystem");
  assert.equal(c1.readsHandedBack - c0.readsHandedBack, 0, "reads reached JavaScript to be handed back");
});

test("listings handed to the binding ahead of the kernel answer readdirs and lookups, misses too; a create, an unlink, a rename and a write through the mount show at once", async (t) => {
  const fx = fixture(t, "kcache-ahead");
  const dir = fx.dir;
  const serve = await fx.serve();
  const src = join(dir, "src");
  generateRepo(src, { files: 300 });
  // Levels below levels: listings are made ahead of a walker beyond the next level too.
  for (const rel of ["deep/a/b/c", "deep/a/b/d", "deep/a/e", "deep/f/g/h"]) {
    mkdirSync(join(src, rel), { recursive: true });
    writeFileSync(join(src, rel, "leaf.txt"), `${rel}\n`);
  }
  gitSync(src, ["add", "-A"]);
  gitSync(src, ["commit", "-q", "-m", "nested"]);
  await serve.importRepo("local/app", src);
  const d = await fx.daemon(serve);
  const subdirs = readdirSync(src, { withFileTypes: true })
    .filter((e) => e.isDirectory() && e.name !== ".git")
    .map((e) => e.name)
    .sort();
  assert.ok(subdirs.length >= 3, `the generated repo has subdirectories: ${subdirs}`);

  // A fresh mount hands the binding the listings of its whole tree, from the root down, with
  // nothing listed through the mount yet (a walk soon after the mount finds them there).
  const tree = await run("find", [".", "-path", "./.git", "-prune", "-o", "-type", "d", "-print"], {
    cwd: src,
  });
  const dirs = tree.stdout.split("\n").filter((l) => l !== "" && l !== ".").length;
  assert.ok(dirs > subdirs.length, `the generated repo has nested directories (${dirs})`);
  assert.ok(
    await waitFor(async () => (await fsCounters(d)).listedAhead >= dirs, 10_000, 50),
    "the directories below were not listed ahead",
  );
  // (Listing a directory makes the kernel refresh its atime with the next stat: that one now.)
  assert.equal((await d.sh("app", "stat . >/dev/null")).code, 0);
  const c0 = await fsCounters(d);
  // Each subdirectory listed with attributes, and a miss in each (ripgrep's ignore files).
  const walk = subdirs.map((s) => `ls -lA --time-style=+ '${s}' && ! stat '${s}/.ignore' 2>/dev/null`);
  const got = await d.sh("app", walk.join(" && "));
  assert.equal(got.code, 0, got.stderr);
  const c1 = await fsCounters(d);
  assert.equal(c1.readdir - c0.readdir, 0, "listings reached the filesystem");
  assert.equal(c1.getattr - c0.getattr, 0, "lookups reached the filesystem");
  const want = await run("sh", ["-c", walk.join(" && ")], { cwd: src });
  const names = (out: string) =>
    out
      .split("\n")
      .filter((l) => /^[-dl]/.test(l))
      .map((l) => l.split(/\s+/).slice(4).join(" "));
  assert.deepEqual(names(got.stdout), names(want.stdout), "sizes and names as in the commit");

  // A find over the whole tree: no listing reaches the filesystem.
  const find = "find . -path ./.git -prune -o -name '*.txt' -print | sort";
  const c2 = await fsCounters(d);
  const found = await d.sh("app", find);
  const c3 = await fsCounters(d);
  assert.equal(found.code, 0, found.stderr);
  assert.equal(found.stdout, (await run("sh", ["-c", find], { cwd: src })).stdout);
  assert.equal(c3.readdir - c2.readdir, 0, "find's listings reached the filesystem");
  assert.ok(c3.aheadUsed - c2.aheadUsed > 0, "the listings made ahead were not counted as used");
  // The kernel asks for a directory's attributes again after each listing (its atime): the
  // binding answers from the parent's listing, as JavaScript would.
  const dirStats =
    "find . -path ./.git -prune -o -type d -print0 | sort -z | xargs -0 stat -c '%n %a %s %h %Y'";
  const s0 = await d.sh("app", dirStats);
  const c4 = await fsCounters(d);
  const s1 = await d.sh(
    "app",
    `find . -path ./.git -prune -o -name '*.txt' -print >/dev/null && ${dirStats}`,
  );
  const c5 = await fsCounters(d);
  assert.equal(s1.code, 0, s1.stderr);
  assert.equal(s1.stdout, s0.stdout, "directory attributes as the filesystem gives them");
  // And as the commit says: 0755, 4096 bytes, two links plus one per subdirectory, the commit time.
  const committed = gitSync(src, ["log", "-1", "--format=%ct"]).trim();
  const expected = (rel: string): string => {
    const subs = readdirSync(join(src, rel), { withFileTypes: true }).filter(
      (e) => e.isDirectory() && e.name !== ".git",
    ).length;
    return `${rel === "" ? "." : `./${rel}`} 755 4096 ${2 + subs} ${committed}`;
  };
  const dirPaths = [
    "",
    ...tree.stdout
      .split("\n")
      .filter((l) => l !== "" && l !== ".")
      .map((l) => l.slice(2)),
  ];
  const lines = (out: string) => out.split("\n").filter(Boolean).sort();
  assert.deepEqual(
    lines(s1.stdout),
    dirPaths.map(expected).sort(),
    "directory attributes as the commit gives them",
  );
  assert.equal(c5.getattr - c4.getattr, 0, "directory stats after a walk reached the filesystem");

  // Changes through the mount: every listing and lookup after one shows it.
  const a = subdirs.find((s) => readdirSync(join(src, s)).some((n) => n.endsWith(".txt")))!;
  const b = subdirs.find((s) => s !== a)!;
  const gone = readdirSync(join(src, a)).find((n) => n.endsWith(".txt"));
  const steps = [
    `! stat '${a}/new.txt' 2>/dev/null`,
    `echo new > '${a}/new.txt'`,
    `ls '${a}' | grep -qx new.txt`,
    `rm '${a}/${gone}'`,
    `! ls '${a}' | grep -qx '${gone}'`,
    `! stat '${a}/${gone}' 2>/dev/null`,
    `mv '${a}/new.txt' '${b}/moved.txt'`,
    `ls '${b}' | grep -qx moved.txt`,
    `! ls '${a}' | grep -qx new.txt`,
    `printf more >> '${b}/moved.txt'`,
    `test "$(ls -l '${b}' | awk '$NF == "moved.txt" { print $5 }')" = 8`,
    // A directory's attributes after a change in it: not the ones kept from its parent's listing.
    `m0=$(stat -c %y '${b}') && sleep 0.05 && touch '${b}/later.txt' && test "$(stat -c %y '${b}')" != "$m0"`,
  ];
  for (const step of steps) {
    const r = await d.sh("app", step);
    assert.equal(r.code, 0, `${step}: ${r.stderr}`);
  }
});

test("a walk that reads only names gives the kernel no inodes for files; stats of files bring their attributes with the listings again", async (t) => {
  const fx = fixture(t, "kcache-names");
  const dir = fx.dir;
  const serve = await fx.serve();
  const src = join(dir, "src");
  // Forty directories of 25 files, a few of them nested, some executable.
  for (let i = 0; i < 40; i++) {
    const rel = i % 8 === 7 ? `d${i - 1}/nested-${i}` : `d${i}`;
    mkdirSync(join(src, rel), { recursive: true });
    for (let f = 0; f < 25; f++)
      writeFileSync(join(src, rel, `f${f}.txt`), "x".repeat(i * 25 + f), { mode: f % 5 ? 0o644 : 0o755 });
  }
  gitSync(src, ["init", "-q", "-b", "main"]);
  gitSync(src, ["add", "-A"]);
  gitSync(src, ["commit", "-q", "-m", "tree"]);
  await serve.importRepo("local/app", src);
  const d = await fx.daemon(serve);
  const inSrc = (cmd: string) => run("sh", ["-c", cmd], { cwd: src });
  const dirs = (await inSrc("find . -path ./.git -prune -o -type d -print")).stdout.split("\n").length - 2;
  const files = (await inSrc("find . -path ./.git -prune -o ! -type d -print")).stdout.split("\n").length - 1;
  assert.ok(
    await waitFor(async () => (await fsCounters(d)).listedAhead >= dirs, 10_000, 50),
    "the tree was not listed ahead",
  );
  const fuse = async () => {
    const r = await mesa(["stats", "--json"], d.env);
    assert.equal(r.code, 0, r.stderr);
    return camelKeys((JSON.parse(r.stdout) as { fuse: unknown }).fuse) as {
      kernelInodes: number;
      lookupsAnswered: number;
    };
  };
  const k0 = await fuse();

  // Names and types are all `find -type f` reads: the kernel gets inodes for directories only.
  const names = "find . -path ./.git -prune -o -type f -print | sort";
  const found = await d.sh("app", names);
  assert.equal(found.code, 0, found.stderr);
  assert.equal(found.stdout, (await inSrc(names)).stdout);
  assert.ok(
    await waitFor(async () => (await fuse()).kernelInodes - k0.kernelInodes >= dirs, 5_000, 50),
    "the directories' inodes were not counted",
  );
  const k1 = await fuse();
  assert.ok(
    k1.kernelInodes - k0.kernelInodes <= dirs + 2,
    `the kernel holds ${k1.kernelInodes - k0.kernelInodes} new inodes for ${dirs} directories and ${files} files`,
  );

  // Sizes and modes of every file: right, and after the first directory's files the listings
  // come again with attributes (the kernel's names-only copies dropped), not a lookup per file.
  const attrs = "find . -path ./.git -prune -o ! -type d -printf '%P %s %m %y\\n' | sort";
  const got = await d.sh("app", attrs);
  assert.equal(got.code, 0, got.stderr);
  assert.equal(got.stdout, (await inSrc(attrs)).stdout);
  const k2 = await fuse();
  assert.ok(
    k2.lookupsAnswered - k1.lookupsAnswered < files / 2,
    `${k2.lookupsAnswered - k1.lookupsAnswered} lookups for ${files} files`,
  );
  assert.ok(
    await waitFor(async () => (await fuse()).kernelInodes - k0.kernelInodes >= dirs + files, 5_000, 50),
    "the files' inodes were not counted",
  );
});
