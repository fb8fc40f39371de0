/**
 * More of SPEC §9 through real mounts: `branched-from` forks a new change and bookmark at
 * mount time (and a remount follows it), unmount pushes pending writes, a file already read
 * (page cache) shows the server's new content, and a full disk gives ENOSPC and corrupts
 * nothing.
 */
import assert from "node:assert/strict";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { fixture } from "./helpers/fixture.js";
import { countingProxy, gitSync, mesa, run, waitFor } from "./helpers/mount.js";
import { authHeader, cloneRepo, importSmallRepo, serverRef, waitPushed } from "./helpers/write.js";

test("branched-from forks a change and bookmark; unmount pushes pending writes; remount follows the fork", async (t) => {
  const fx = fixture(t, "write-fork");
  const dir = fx.dir;
  const serve = await fx.serve();
  await importSmallRepo(serve, dir, "forked");
  const main = serverRef(serve, "forked");
  const cfg = join(dir, "config.toml");
  writeFileSync(
    cfg,
    `[organizations.local]\nmount = "explicit"\n[organizations.local.repos.forked]\nbranched-from = { bookmark = "main", as = "agent-1" }\n`,
  );
  const extra = { MESA_NO_CONFIG_FILE: "" };
  let d = await fx.daemon(serve, { env: extra, args: ["-c", cfg] });
  const fork = serverRef(serve, "forked", "agent-1");
  assert.match(fork, /^[0-9a-f]{40}$/, "agent-1 was not created at mount time");
  assert.equal((await d.sh("forked", "printf agent > agent.txt && cat README.md")).stdout, "hello\n");
  // Unmount right away: the pending write is pushed before the daemon exits.
  const down = await mesa(["unmount"], d.env);
  assert.equal(down.code, 0, down.stderr);
  assert.equal(serverRef(serve, "forked"), main, "main must not move");
  const clone = cloneRepo(serve, "forked", join(dir, "clone"));
  gitSync(clone, ["-c", authHeader(serve.adminKey), "fetch", "-q", "origin", "agent-1"]);
  assert.equal(gitSync(clone, ["show", "FETCH_HEAD:agent.txt"]), "agent");
  assert.equal(gitSync(clone, ["rev-parse", "FETCH_HEAD^"]).trim(), main);
  const changeId = /^change-id ([k-z]{32})$/m.exec(gitSync(clone, ["cat-file", "-p", "FETCH_HEAD"]))?.[1];
  assert.ok(changeId);

  // A remount follows agent-1 (no second fork) and shows the pushed work.
  d = await fx.daemon(serve, { env: extra, args: ["-c", cfg] });
  assert.equal((await d.sh("forked", "cat agent.txt")).stdout, "agent");
  assert.equal(serverRef(serve, "forked", "agent-1"), gitSync(clone, ["rev-parse", "FETCH_HEAD"]).trim());
  // The write amended the change forked at mount time (no second change).
  assert.notEqual(serverRef(serve, "forked", "agent-1"), fork);
  assert.equal((await d.status()).writes.find((w) => w.repo === "forked")?.changeId, changeId);
});

test("a file read before someone else changed it shows the new content", async (t) => {
  const fx = fixture(t, "write-coherent");
  const dir = fx.dir;
  const serve = await fx.serve();
  await importSmallRepo(serve, dir, "coh");
  const d = await fx.daemon(serve);
  assert.equal((await d.sh("coh", "cat README.md sub/a.txt")).stdout, "hello\na1\na2\na3\n");
  const clone = cloneRepo(serve, "coh", join(dir, "clone"));
  writeFileSync(join(clone, "README.md"), "changed on the server, longer than before\n");
  gitSync(clone, ["commit", "-q", "-am", "change"]);
  gitSync(clone, ["-c", authHeader(serve.adminKey), "push", "-q", "origin", "main"]);
  assert.ok(
    await waitFor(
      async () =>
        (await d.sh("coh", "cat README.md")).stdout === "changed on the server, longer than before\n",
      20_000,
      200,
    ),
    `stale content: ${(await d.sh("coh", "cat README.md")).stdout}`,
  );
});

test("a full disk gives ENOSPC to the writer and corrupts nothing", async (t) => {
  if (process.getuid?.() !== 0) {
    t.skip("needs root to mount a small tmpfs");
    return;
  }
  const fx = fixture(t, "write-enospc");
  const dir = fx.dir;
  const small = join(dir, "small-data");
  mkdirSync(small);
  const m = await run("mount", ["-t", "tmpfs", "-o", "size=3m", "tmpfs", small]);
  if (m.code !== 0) {
    t.skip(`cannot mount tmpfs: ${m.stderr}`);
    return;
  }
  fx.defer(() => run("umount", ["-l", small]));
  const serve = await fx.serve();
  await importSmallRepo(serve, dir, "full");
  let d = await fx.daemon(serve, { env: { MESA_DATA_DIR: small } });
  const r = await d.sh("full", "export LC_ALL=C; head -c 8000000 /dev/zero > big.bin");
  assert.deepEqual(
    [r.code, r.stderr],
    [1, "head: error writing 'standard output': No space left on device\n"],
  );
  // Many small metadata operations on a full disk fail cleanly too: the loop must hit ENOSPC.
  const loop = await d.sh(
    "full",
    "export LC_ALL=C; for i in $(seq 1 2000); do mkdir dir-$i || { echo stopped at $i; exit 0; }; done; echo never full",
  );
  const stoppedAt = /^stopped at (\d+)\n$/.exec(loop.stdout)?.[1];
  assert.ok(stoppedAt, `mkdir never failed: ${loop.stdout}${loop.stderr}`);
  assert.equal(loop.stderr, `mkdir: cannot create directory 'dir-${stoppedAt}': No space left on device\n`);
  for (let i = 1; i < Number(stoppedAt); i += Math.max(1, Math.floor(Number(stoppedAt) / 5)))
    assert.equal(
      (await d.sh("full", `test -d dir-${i}`)).code,
      0,
      `dir-${i} was made before the disk filled`,
    );
  const cleanup = await d.sh(
    "full",
    "rm big.bin && rmdir dir-* && printf ok > small.txt && cat small.txt && ls",
  );
  assert.equal(cleanup.stdout, "okREADME.md\nsmall.txt\nsub\ntool.sh\n", cleanup.stderr);
  await waitPushed(d, "full");
  // The journal replays after a restart: nothing was corrupted.
  const down = await mesa(["unmount"], d.env);
  assert.equal(down.code, 0, down.stderr);
  d = await fx.daemon(serve, { env: { MESA_DATA_DIR: small } });
  assert.equal((await d.sh("full", "cat small.txt; ls")).stdout, "okREADME.md\nsmall.txt\nsub\ntool.sh\n");
  const clone = cloneRepo(serve, "full", join(dir, "clone"));
  assert.equal(readFileSync(join(clone, "small.txt"), "utf8"), "ok");
  assert.equal(gitSync(clone, ["ls-files", "big.bin"]), "");
});

test("a failing server keeps the data, shows failed pushes in status, and pushes once it is back", async (t) => {
  const fx = fixture(t, "write-down");
  const dir = fx.dir;
  const serve = await fx.serve();
  await importSmallRepo(serve, dir, "down");
  const proxy = fx.use(await countingProxy(serve.url));
  const d = await fx.daemon({ ...serve, url: proxy.url });
  // Back up before the daemon stops, so that it can push what is pending.
  fx.defer(() => proxy.setDown(false));
  proxy.setDown(true);
  assert.equal((await d.sh("down", "printf kept > kept.txt")).code, 0);
  assert.ok(
    await waitFor(
      async () => {
        const s = await d.status();
        const w = s.writes.find((x) => x.repo === "down");
        return w?.pending === true && (w.failures ?? 0) >= 1 && s.errors.some((e) => /push failed/.test(e));
      },
      20_000,
      250,
    ),
    `no failed push in status: ${JSON.stringify((await d.status()).writes)}`,
  );
  const text = await mesa(["status"], d.env);
  assert.match(text.stdout, /pending writes, \d+ failed pushes/);
  proxy.setDown(false);
  await waitPushed(d, "down", 60_000);
  const clone = cloneRepo(serve, "down", join(dir, "clone"));
  assert.equal(readFileSync(join(clone, "kept.txt"), "utf8"), "kept");
  assert.deepEqual((await d.status()).errors, []);
});

test("remounting on another bookmark first pushes unpushed work to the old one", async (t) => {
  const fx = fixture(t, "write-switch");
  const dir = fx.dir;
  const serve = await fx.serve();
  await importSmallRepo(serve, dir, "sw");
  const clone = cloneRepo(serve, "sw", join(dir, "clone"));
  gitSync(clone, ["checkout", "-q", "-b", "other"]);
  writeFileSync(join(clone, "other.txt"), "other\n");
  gitSync(clone, ["add", "-A"]);
  gitSync(clone, ["commit", "-q", "-m", "other"]);
  gitSync(clone, ["-c", authHeader(serve.adminKey), "push", "-q", "origin", "other"]);
  let d = await fx.daemon(serve);
  // Written, then the daemon dies before its debounced push.
  assert.equal((await d.sh("sw", "printf main > on-main.txt")).code, 0);
  const { pid } = await d.status();
  process.kill(pid, "SIGKILL");
  assert.ok(await waitFor(async () => (await run("kill", ["-0", String(pid)])).code !== 0, 10_000));
  d = await fx.daemon(serve, { env: { MESA_REPO_REVS: "local/sw=bookmark:other" } });
  assert.equal((await d.sh("sw", "ls")).stdout, "README.md\nother.txt\nsub\ntool.sh\n");
  assert.equal((await d.sh("sw", "printf other > on-other.txt")).code, 0);
  await waitPushed(d, "sw");
  gitSync(clone, ["-c", authHeader(serve.adminKey), "fetch", "-q", "origin"]);
  assert.equal(gitSync(clone, ["show", "origin/main:on-main.txt"]), "main");
  assert.equal(gitSync(clone, ["show", "origin/other:on-other.txt"]), "other");
  assert.equal(gitSync(clone, ["ls-tree", "--name-only", "origin/main"]).includes("on-other.txt"), false);
  assert.equal(gitSync(clone, ["ls-tree", "--name-only", "origin/other"]).includes("on-main.txt"), false);
});
