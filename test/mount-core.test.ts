/**
 * The FUSE adapter and filesystem core on their own: a snapshot built from a local Git repo
 * is mounted by a separate process and compared with the checkout via `diff -r` and `find`.
 */
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { fixture } from "./helpers/fixture.js";
import { cleanupMount, diffTrees, generateRepo, run, statListing, waitFor } from "./helpers/mount.js";

const snapshotMount = fileURLToPath(new URL("./helpers/snapshot-mount.js", import.meta.url));

test("a snapshot mount matches the Git checkout", async (t) => {
  const fx = fixture(t, "core");
  const repo = join(fx.dir, "repo");
  const mnt = join(fx.dir, "mnt");
  let child: ChildProcess | undefined;
  fx.defer(async () => {
    if (child?.pid && child.exitCode === null) child.kill("SIGKILL");
    await cleanupMount(mnt);
  });
  generateRepo(repo, { files: 600 });
  child = spawn(process.execPath, [snapshotMount, repo, mnt, "acme", "app"], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  child.stdout?.on("data", (d) => {
    out += d;
  });
  child.stderr?.on("data", (d) => {
    out += d;
  });
  assert.ok(await waitFor(() => out.includes("ready"), 30_000), `fixture did not mount: ${out}`);
  const root = join(mnt, "acme", "app");
  assert.equal(await diffTrees(repo, root), "");
  assert.deepEqual(await statListing(root), await statListing(repo));
  assert.equal((await run("ls", [mnt])).stdout.trim(), "acme");
  assert.equal((await run("readlink", [join(root, "link-to-readme")])).stdout.trim(), "README.md");
  const C = { env: { ...process.env, LC_ALL: "C" } };
  const w = await run("sh", ["-c", `echo x > '${join(root, "README.md")}'`], C);
  assert.deepEqual(
    [w.code, w.stderr],
    [2, `sh: 1: cannot create ${join(root, "README.md")}: Read-only file system\n`],
  );
  const m = await run("mkdir", [join(root, "newdir")], C);
  assert.deepEqual(
    [m.code, m.stderr],
    [1, `mkdir: cannot create directory '${join(root, "newdir")}': Read-only file system\n`],
  );
  child.kill("SIGTERM");
  assert.ok(await waitFor(() => child?.exitCode !== null, 10_000));
});
