/**
 * `mesa mount -d` against a real `mesa serve`: the mounted tree equals a `git clone`
 * checkout, and the daemon lifecycle (status, stats, second mount, unmount twice, kill -9).
 * The daemon is always a separate process and always unmounted in t.after.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { test } from "node:test";
import { fixture } from "./helpers/fixture.js";
import {
  diffTrees,
  generateRepo,
  gitSync,
  MESA_BIN,
  mesa,
  run,
  statListing,
  waitFor,
} from "./helpers/mount.js";

function basicAuthHeader(key: string): string {
  return `Authorization: Basic ${Buffer.from(`mesa:${key}`).toString("base64")}`;
}

test("a 5,000-file repo mounted with -d equals its git clone; lifecycle commands", async (t) => {
  const fx = fixture(t, "mount");
  const dir = fx.dir;
  const serve = await fx.serve();
  const src = join(dir, "src");
  generateRepo(src, { files: 5000 });
  await serve.importRepo("local/big", src);
  const clone = join(dir, "clone");
  gitSync(dir, [
    "-c",
    `http.extraHeader=${basicAuthHeader(serve.adminKey)}`,
    "clone",
    "-q",
    `${serve.url}/local/big.git`,
    clone,
  ]);

  const env = fx.sandbox(".", {
    MESA_ORG: "local",
    MESA_API_KEY: serve.adminKey,
    MESA_SERVICE_URL: serve.url,
  });
  const mnt = env.MESA_MOUNT_POINT as string;
  const up = await mesa(["mount", "-d"], env);
  assert.equal(up.code, 0, `mount -d failed: ${up.stderr}`);
  assert.equal(up.stdout.trim(), mnt);

  const root = join(mnt, "local", "big");
  assert.equal((await run("ls", [join(mnt, "local")])).stdout.trim(), "big");
  assert.equal(await diffTrees(clone, root), "");
  assert.deepEqual(await statListing(root), await statListing(clone));

  const again = await mesa(["mount", "-d"], env);
  assert.equal(again.code, 0);
  assert.match(again.stdout, /already running/);

  const status = await mesa(["status", "--json"], env);
  assert.equal(status.code, 0, status.stderr);
  const s = JSON.parse(status.stdout) as {
    running: boolean;
    pid: number;
    mount_point: string;
    repos: Array<{ org: string; repo: string; revision: string }>;
    errors: string[];
  };
  assert.equal(s.running, true);
  assert.equal(s.mount_point, mnt);
  assert.deepEqual(
    s.repos.map((r) => [r.org, r.repo, r.revision]),
    [["local", "big", "bookmark:main"]],
  );
  assert.deepEqual(s.errors, []);
  const text = await mesa(["status"], env);
  assert.match(text.stdout, /local\/big {2}bookmark:main/);

  const stats = await mesa(["stats", "--format", "json"], env);
  assert.equal(stats.code, 0, stats.stderr);
  const st = JSON.parse(stats.stdout) as {
    pid: number;
    fs: { read: number };
    cache: { fetched_blobs: number };
  };
  assert.equal(st.pid, s.pid);
  assert.ok(st.fs.read > 0);
  const statsText = await mesa(["stats", "--pid", String(s.pid)], env);
  assert.match(statsText.stdout, /^fs\.read: \d+$/m);
  const wrongPid = await mesa(["stats", "--pid", String(process.pid)], env);
  assert.equal(wrongPid.code, 1);

  // kill -9 leaves no daemon; mount -d again cleans up and works.
  process.kill(s.pid, "SIGKILL");
  assert.ok(await waitFor(async () => (await run("kill", ["-0", String(s.pid)])).code !== 0, 10_000));
  const re = await mesa(["mount", "-d"], env);
  assert.equal(re.code, 0, `remount after kill -9 failed: ${re.stderr}`);
  assert.equal((await run("cat", [join(root, "README.md")])).stdout, "# generated\n");

  const down1 = await mesa(["unmount"], env);
  assert.equal(down1.code, 0, down1.stderr);
  assert.match(down1.stdout, /stopped mesa/);
  const down2 = await mesa(["unmount"], env);
  assert.equal(down2.code, 0, down2.stderr);
  assert.match(down2.stdout, /not running/);
  const mounts = await run("grep", ["-c", mnt, "/proc/mounts"]);
  assert.equal(mounts.stdout.trim(), "0");
  const after = await mesa(["status", "--json"], env);
  assert.equal(JSON.parse(after.stdout).running, false);
});

test("mount -d fails clearly: bad mount point, server down, unusable /dev/fuse", async (t) => {
  const fx = fixture(t, "mountfail");
  const dir = fx.dir;
  const serve = await fx.serve();
  const src = join(dir, "src");
  generateRepo(src, { files: 20 });
  await serve.importRepo("local/app", src);

  // The mount point is a regular file.
  const file = join(dir, "not-a-dir");
  await run("touch", [file]);
  const e1 = fx.sandbox("a", {
    MESA_ORG: "local",
    MESA_API_KEY: serve.adminKey,
    MESA_SERVICE_URL: serve.url,
    MESA_MOUNT_POINT: file,
  });
  const r1 = await mesa(["mount", "-d"], e1);
  assert.equal(r1.code, 1);
  assert.match(r1.stderr, /not a directory/i);

  // Nothing listens on the service URL.
  const e2 = fx.sandbox("b", {
    MESA_ORG: "local",
    MESA_API_KEY: serve.adminKey,
    MESA_SERVICE_URL: "http://127.0.0.1:9",
  });
  const r2 = await mesa(["mount", "-d"], e2);
  assert.equal(r2.code, 1);
  assert.match(r2.stderr, /^mesa: /);
  assert.doesNotMatch(r2.stderr, /mesa_live_/);

  // /dev/fuse replaced by a regular file in a private mount namespace.
  const e3 = fx.sandbox("c", {
    MESA_ORG: "local",
    MESA_API_KEY: serve.adminKey,
    MESA_SERVICE_URL: serve.url,
  });
  const fake = join(dir, "fake-fuse");
  await run("touch", [fake]);
  const r3 = await run(
    "unshare",
    [
      "-m",
      "--propagation",
      "private",
      "sh",
      "-c",
      `mount --bind "$0" /dev/fuse && exec "$@"`,
      fake,
      process.execPath,
      MESA_BIN,
      "mount",
      "-d",
    ],
    { env: e3, timeoutMs: 90_000 },
  );
  assert.equal(r3.code, 1, `${r3.stdout}${r3.stderr}`);
  assert.match(r3.stderr, /could not mount|fuse/i);
  const doctor = await run(
    "unshare",
    [
      "-m",
      "--propagation",
      "private",
      "sh",
      "-c",
      `mount --bind "$0" /dev/fuse && exec "$@"`,
      fake,
      process.execPath,
      MESA_BIN,
      "doctor",
    ],
    { env: e3, timeoutMs: 60_000 },
  );
  assert.equal(doctor.code, 1);
  assert.match(doctor.stdout, /FAIL {2}\/dev\/fuse: \/dev\/fuse is not a character device/);
  assert.match(doctor.stdout, /fix: run `modprobe fuse`/);
});
