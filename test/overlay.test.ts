/**
 * The overlay and the writable filesystem on a temp dir, without FUSE: POSIX semantics and
 * errnos of every write operation over a small base snapshot, journal replay after a
 * simulated crash (reopen without close), and conflict markers.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { conflictMarkers } from "../src/workspace/conflict.js";
import { WorkspaceFileSystem } from "../src/workspace/filesystem.js";
import { FsError } from "../src/workspace/fs-api.js";
import { compileMesaignore, DEFAULT_MESAIGNORE } from "../src/workspace/mesaignore.js";
import { RepoOverlay } from "../src/workspace/overlay.js";
import type { RepoSnapshot } from "../src/workspace/snapshot.js";
import { memoryBlobs } from "./helpers/memory-blobs.js";

const { blob, content, sizes } = memoryBlobs();

function snapshot(): RepoSnapshot {
  const readme = blob("hello\n");
  const tool = blob("#!/bin/sh\n");
  const inner = blob("inner\n");
  const sub = "1".repeat(40);
  const root = "2".repeat(40);
  const trees = new Map([
    [
      root,
      [
        { mode: "100644", name: "README", oid: readme },
        { mode: "100755", name: "tool.sh", oid: tool },
        { mode: "40000", name: "dir", oid: sub },
      ],
    ],
    [sub, [{ mode: "100644", name: "inner.txt", oid: inner }]],
  ]);
  const blobSizes = sizes();
  return {
    org: "o",
    repo: "r",
    revision: "bookmark:main",
    commitOid: "3".repeat(40),
    commitTime: new Date(1_700_000_000_000),
    rootTree: root,
    trees,
    sizes: blobSizes,
    symlinks: new Map(),
    readOnly: false,
  };
}

async function setup(dir: string, snap = snapshot()) {
  const fs = new WorkspaceFileSystem(content, {
    uid: 1,
    gid: 1,
    dataDir: dir,
    readTimeoutMs: 1000,
    prefetchDepth: 0,
  });
  fs.setRepo(snap);
  const overlay = await RepoOverlay.open(join(dir, "ov"), snap);
  fs.attach("o", "r", { overlay, persistNow: async () => undefined });
  return { fs, overlay, w: fs.writes };
}

async function readAll(fs: WorkspaceFileSystem, path: string): Promise<string> {
  const fh = await fs.open(path, 0);
  try {
    return (await fs.read(path, fh, 1 << 20, 0)).toString();
  } finally {
    await fs.release(path, fh);
  }
}

async function errno(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return "ok";
  } catch (err) {
    assert.ok(err instanceof FsError, String(err));
    return err.errno;
  }
}

test("write operations keep POSIX semantics and errnos over the base", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "mesa-ov-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const { fs, w } = await setup(dir);

  // create + write + append + sparse write
  let fh = await w.create("/o/r/new.txt", 0o644);
  assert.equal(await w.write("/o/r/new.txt", fh, Buffer.from("abc"), 0), 3);
  await w.write("/o/r/new.txt", fh, Buffer.from("Z"), 6);
  await fs.release("/o/r/new.txt", fh);
  assert.equal(await readAll(fs, "/o/r/new.txt"), "abc\0\0\0Z");
  assert.equal((await fs.getattr("/o/r/new.txt")).size, 7);

  // copy-up of a base file on open for write; O_TRUNC
  fh = await fs.open("/o/r/README", 2);
  await w.write("/o/r/README", fh, Buffer.from("J"), 0);
  await fs.release("/o/r/README", fh);
  assert.equal(await readAll(fs, "/o/r/README"), "Jello\n");
  fh = await fs.open("/o/r/dir/inner.txt", 1 | 0o1000);
  await fs.release("/o/r/dir/inner.txt", fh);
  assert.equal(await readAll(fs, "/o/r/dir/inner.txt"), "");
  await w.truncate("/o/r/tool.sh", 3);
  assert.equal(await readAll(fs, "/o/r/tool.sh"), "#!/");
  assert.equal((await fs.getattr("/o/r/tool.sh")).mode, 0o100755);

  // mkdir / rmdir / ENOTEMPTY / EEXIST / ENOTDIR / EISDIR
  assert.equal(await errno(w.mkdir("/o/r/dir", 0o755)), "EEXIST");
  assert.equal(await errno(w.rmdir("/o/r/dir")), "ENOTEMPTY");
  assert.equal(await errno(w.mkdir("/o/r/README/x", 0o755)), "ENOTDIR");
  assert.equal(await errno(w.unlink("/o/r/dir")), "EISDIR");
  assert.equal(await errno(w.unlink("/o/r/missing")), "ENOENT");
  assert.equal(await errno(w.create(`/o/r/${"n".repeat(256)}`, 0o644)), "ENAMETOOLONG");
  assert.equal(await errno(w.link("/o/r/README", "/o/r/hard")), "EPERM");
  assert.equal(await errno(w.mkdir("/o/other", 0o755)), "EPERM");
  await w.mkdir("/o/r/empty", 0o755);
  assert.deepEqual(await fs.readdir("/o/r/empty"), []);
  await w.rmdir("/o/r/empty");
  assert.equal(await errno(fs.getattr("/o/r/empty")), "ENOENT");

  // rename: file over file (atomic save), directory across directories, into itself
  fh = await w.create("/o/r/.README.swp", 0o644);
  await w.write("/o/r/.README.swp", fh, Buffer.from("saved\n"), 0);
  await fs.release("/o/r/.README.swp", fh);
  await w.rename("/o/r/.README.swp", "/o/r/README");
  assert.equal(await readAll(fs, "/o/r/README"), "saved\n");
  await w.mkdir("/o/r/a", 0o755);
  await w.rename("/o/r/dir", "/o/r/a/moved");
  assert.deepEqual((await fs.readdir("/o/r/a/moved")).sort(), ["inner.txt"]);
  assert.equal(await errno(fs.getattr("/o/r/dir")), "ENOENT");
  assert.equal(await errno(w.rename("/o/r/a", "/o/r/a/moved/in")), "EINVAL");
  assert.equal(await errno(w.rename("/o/r/README", "/o/r/a")), "EISDIR");
  assert.equal(await errno(w.rename("/o/r/a", "/o/r/README")), "ENOTDIR");

  // symlink, chmod, utimens
  await w.symlink("README", "/o/r/link");
  assert.equal(await fs.readlink("/o/r/link"), "README");
  assert.equal(await errno(w.symlink("x", "/o/r/link")), "EEXIST");
  await w.chmod("/o/r/README", 0o755);
  assert.equal((await fs.getattr("/o/r/README")).mode, 0o100755);
  await w.utimens("/o/r/README", new Date(0), new Date(5000));
  assert.equal((await fs.getattr("/o/r/README")).mtime.getTime(), 5000);
  assert.deepEqual((await fs.readdir("/o/r")).sort(), ["README", "a", "link", "new.txt", "tool.sh"]);
});

test("the journal replays everything after a crash (no close)", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "mesa-ov-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const first = await setup(dir);
  const fh = await first.w.create("/o/r/f", 0o600);
  await first.w.write("/o/r/f", fh, Buffer.from("data"), 0);
  await first.w.mkdir("/o/r/d", 0o755);
  await first.w.rename("/o/r/f", "/o/r/d/g");
  await first.w.unlink("/o/r/README");
  await first.w.symlink("../tool.sh", "/o/r/d/l");
  // No release, no close: the process "died" here.
  const again = await setup(dir);
  assert.equal(await readAll(again.fs, "/o/r/d/g"), "data");
  assert.equal((await again.fs.getattr("/o/r/d/g")).mode, 0o100600);
  assert.equal(await again.fs.readlink("/o/r/d/l"), "../tool.sh");
  assert.equal(await errno(again.fs.getattr("/o/r/README")), "ENOENT");
  assert.deepEqual((await again.fs.readdir("/o/r")).sort(), ["d", "dir", "tool.sh"]);
});

test("conflict markers and .mesaignore defaults", () => {
  const out = conflictMarkers(
    Buffer.from("a\nb\n"),
    Buffer.from("a\nB\n"),
    Buffer.from("a\nb\nc\n"),
  ).toString();
  assert.equal(
    out,
    [
      "<<<<<<< Conflict 1 of 1",
      "%%%%%%% Changes from base to side #1 (this mount)",
      " a",
      "-b",
      "+B",
      "+++++++ Contents of side #2 (the server)",
      "a",
      "b",
      "c",
      ">>>>>>> Conflict 1 of 1 ends",
      "",
    ].join("\n"),
  );
  const ig = compileMesaignore(DEFAULT_MESAIGNORE);
  assert.ok(ig(".main.c.swp", false));
  assert.ok(ig("src/.DS_Store", false));
  assert.ok(ig("x/.fuse_hidden0001", false));
  assert.ok(!ig("src/main.c", false));
  const custom = compileMesaignore("build/\n*.log\n");
  assert.ok(custom("build/out/a.o", false));
  assert.ok(custom("a/b.log", false));
  assert.ok(!custom("a/b.txt", false));
});
