/**
 * POSIX metadata of the writable filesystem, called directly (no FUSE): all 12 mode bits,
 * owners (committed files: the mount's owner; new entries: the caller, setgid directories),
 * atime/mtime/ctime update rules, directory link counts, fifos/sockets/devices, errnos,
 * unlinked-but-open files, and metadata surviving a restart (also from a journal written
 * before metadata existed). docs/semantics.md names these tests.
 */
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { WorkspaceFileSystem } from "../src/workspace/filesystem.js";
import { FsError, type Stat } from "../src/workspace/fs-api.js";
import { RepoOverlay } from "../src/workspace/overlay.js";
import type { RepoSnapshot } from "../src/workspace/snapshot.js";
import { memoryBlobs } from "./helpers/memory-blobs.js";

const OWNER = { uid: 1000, gid: 1000 };
const COMMIT_TIME = 1_700_000_000_000;
const { blob, content, sizes } = memoryBlobs();

function snapshot(org = "o", repo = "r"): RepoSnapshot {
  const sub = "1".repeat(40);
  const deeper = "4".repeat(40);
  const root = "2".repeat(40);
  const trees = new Map([
    [
      root,
      [
        { mode: "100644", name: "README", oid: blob("hello\n") },
        { mode: "100755", name: "tool.sh", oid: blob("#!/bin/sh\n") },
        { mode: "120000", name: "link", oid: blob("README") },
        { mode: "40000", name: "dir", oid: sub },
      ],
    ],
    [
      sub,
      [
        { mode: "100644", name: "inner.txt", oid: blob("inner\n") },
        { mode: "40000", name: "a", oid: deeper },
        { mode: "40000", name: "b", oid: deeper },
      ],
    ],
    [deeper, [{ mode: "100644", name: "x", oid: blob("x\n") }]],
  ]);
  return {
    org,
    repo,
    revision: "bookmark:main",
    commitOid: "3".repeat(40),
    commitTime: new Date(COMMIT_TIME),
    rootTree: root,
    trees,
    sizes: sizes(),
    symlinks: new Map([[blob("README"), "README"]]),
    readOnly: false,
  };
}

async function setup(dir: string) {
  const fs = new WorkspaceFileSystem(content, {
    ...OWNER,
    dataDir: dir,
    readTimeoutMs: 1000,
    prefetchDepth: 0,
  });
  fs.setRepo(snapshot());
  fs.setRepo(snapshot("o", "r2"));
  const overlay = await RepoOverlay.open(join(dir, "ov"), snapshot());
  const other = await RepoOverlay.open(join(dir, "ov2"), snapshot("o", "r2"));
  fs.attach("o", "r", { overlay, persistNow: async () => undefined });
  fs.attach("o", "r2", { overlay: other, persistNow: async () => undefined });
  return { fs, overlay, w: fs.writes };
}

function tempDir(t: { after(fn: () => void): void }): string {
  const dir = mkdtempSync(join(tmpdir(), "mesa-posix-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
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

/** Lets the clock move so that a changed time is distinguishable from the old one. */
async function tick(): Promise<void> {
  const start = Date.now();
  while (Date.now() === start) await new Promise((r) => setTimeout(r, 1));
}

const times = (s: Stat) => ({
  atime: s.atime?.getTime(),
  mtime: s.mtime.getTime(),
  ctime: s.ctime?.getTime(),
});

test("all 12 mode bits are kept on files and directories", async (t) => {
  const { fs, w } = await setup(tempDir(t));
  for (const mode of [0o600, 0o111, 0o000, 0o4755, 0o2755, 0o1777, 0o7777]) {
    await w.chmod("/o/r/README", mode);
    assert.equal((await fs.getattr("/o/r/README")).mode, 0o100000 | mode, mode.toString(8));
  }
  await w.chmod("/o/r/dir", 0o1777);
  assert.equal((await fs.getattr("/o/r/dir")).mode, 0o41777);
  await w.chmod("/o/r", 0o700);
  assert.equal((await fs.getattr("/o/r")).mode, 0o40700);
  const fh = await w.create("/o/r/new", 0o4711);
  await fs.release("/o/r/new", fh);
  assert.equal((await fs.getattr("/o/r/new")).mode, 0o104711);
  await w.mkdir("/o/r/locked", 0o000);
  assert.equal((await fs.getattr("/o/r/locked")).mode, 0o40000);
  // Directory contents still show through a chmod-ed directory.
  assert.deepEqual((await fs.readdir("/o/r/dir")).sort(), ["a", "b", "inner.txt"]);
});

test("committed bytes are shown as committed: no .gitattributes eol conversion, LFS pointers as they are", async (t) => {
  const crlf = "line one\r\nline two\r\n";
  const pointer =
    "version https://git-lfs.github.com/spec/v1\noid sha256:" + "a".repeat(64) + "\nsize 12345\n";
  const root = "5".repeat(40);
  const snap: RepoSnapshot = {
    ...snapshot(),
    rootTree: root,
    trees: new Map([
      [
        root,
        [
          {
            mode: "100644",
            name: ".gitattributes",
            oid: blob("*.txt text eol=lf\n*.bin filter=lfs diff=lfs merge=lfs -text\n"),
          },
          { mode: "100644", name: "crlf.txt", oid: blob(crlf) },
          { mode: "100644", name: "big.bin", oid: blob(pointer) },
        ],
      ],
    ]),
  };
  snap.sizes = sizes();
  const dir = tempDir(t);
  const fs = new WorkspaceFileSystem(content, {
    ...OWNER,
    dataDir: dir,
    readTimeoutMs: 1000,
    prefetchDepth: 0,
  });
  fs.setRepo(snap);
  fs.attach("o", "r", {
    overlay: await RepoOverlay.open(join(dir, "ov"), snap),
    persistNow: async () => undefined,
  });
  for (const [name, text] of [
    ["crlf.txt", crlf],
    ["big.bin", pointer],
  ]) {
    const fh = await fs.open(`/o/r/${name}`, 0);
    assert.equal((await fs.read(`/o/r/${name}`, fh, 1 << 16, 0)).toString(), text);
    await fs.release(`/o/r/${name}`, fh);
    assert.equal((await fs.getattr(`/o/r/${name}`)).size, Buffer.byteLength(text));
  }
});

test("committed files show the mount's owner and the commit time; symlinks 0777", async (t) => {
  const { fs } = await setup(tempDir(t));
  const f = await fs.getattr("/o/r/README");
  assert.deepEqual([f.mode, f.uid, f.gid], [0o100644, OWNER.uid, OWNER.gid]);
  assert.deepEqual(times(f), { atime: COMMIT_TIME, mtime: COMMIT_TIME, ctime: COMMIT_TIME });
  assert.equal((await fs.getattr("/o/r/tool.sh")).mode, 0o100755);
  assert.equal((await fs.getattr("/o/r/link")).mode, 0o120777);
  assert.equal((await fs.getattr("/o/r/dir")).mode, 0o40755);
});

test("chown sets owner and group; -1 keeps one; new entries belong to the caller", async (t) => {
  const { fs, w } = await setup(tempDir(t));
  await w.chown("/o/r/README", 0, 0);
  assert.deepEqual(await ids(fs, "/o/r/README"), [0, 0]);
  await w.chown("/o/r/README", 4321, -1);
  assert.deepEqual(await ids(fs, "/o/r/README"), [4321, 0]);
  await w.chown("/o/r/README", 0xffffffff, 99);
  assert.deepEqual(await ids(fs, "/o/r/README"), [4321, 99]);
  await w.chown("/o/r/link", 7, 8);
  assert.deepEqual(await ids(fs, "/o/r/link"), [7, 8]);
  await w.chown("/o/r/dir", 5, 6);
  assert.deepEqual(await ids(fs, "/o/r/dir"), [5, 6]);

  const caller = { uid: 2001, gid: 3001 };
  await fs.release("/o/r/c", await w.create("/o/r/c", 0o644, caller));
  await w.mkdir("/o/r/d", 0o755, caller);
  await w.symlink("c", "/o/r/s", caller);
  await w.mknod?.("/o/r/p", 0o010644, 0, caller);
  for (const p of ["c", "d", "s", "p"]) assert.deepEqual(await ids(fs, `/o/r/${p}`), [2001, 3001], p);
  // Without a caller (an adapter that cannot tell): the mount's owner.
  await w.mkdir("/o/r/e", 0o755);
  assert.deepEqual(await ids(fs, "/o/r/e"), [OWNER.uid, OWNER.gid]);
});

async function ids(fs: WorkspaceFileSystem, path: string): Promise<[number, number]> {
  const s = await fs.getattr(path);
  return [s.uid, s.gid];
}

test("a setgid directory passes its group on, and its setgid bit to subdirectories", async (t) => {
  const { fs, w } = await setup(tempDir(t));
  await w.mkdir("/o/r/shared", 0o775, { uid: 0, gid: 0 });
  await w.chown("/o/r/shared", -1, 500);
  await w.chmod("/o/r/shared", 0o2775);
  const caller = { uid: 2001, gid: 3001 };
  await fs.release("/o/r/shared/f", await w.create("/o/r/shared/f", 0o644, caller));
  await w.mkdir("/o/r/shared/sub", 0o755, caller);
  const f = await fs.getattr("/o/r/shared/f");
  const sub = await fs.getattr("/o/r/shared/sub");
  assert.deepEqual([f.uid, f.gid, f.mode], [2001, 500, 0o100644]);
  assert.deepEqual([sub.uid, sub.gid, sub.mode], [2001, 500, 0o42755]);
});

test("times: creation sets all three, writes move mtime and ctime, chmod/chown ctime only", async (t) => {
  const { fs, w } = await setup(tempDir(t));
  const before = Date.now();
  const fh = await w.create("/o/r/t", 0o644);
  const created = times(await fs.getattr("/o/r/t"));
  assert.ok(created.mtime >= before);
  assert.deepEqual(created, { atime: created.mtime, mtime: created.mtime, ctime: created.mtime });
  await tick();
  await w.write("/o/r/t", fh, Buffer.from("data"), 0);
  const written = times(await fs.getattr("/o/r/t"));
  assert.equal(written.atime, created.atime);
  assert.ok(written.mtime > created.mtime);
  assert.equal(written.ctime, written.mtime);
  await fs.release("/o/r/t", fh);
  await tick();
  await w.chmod("/o/r/t", 0o600);
  const chmodded = times(await fs.getattr("/o/r/t"));
  assert.equal(chmodded.mtime, written.mtime);
  assert.ok((chmodded.ctime ?? 0) > (written.ctime ?? 0));
  await tick();
  await w.chown("/o/r/t", 1, 1);
  const chowned = times(await fs.getattr("/o/r/t"));
  assert.equal(chowned.mtime, written.mtime);
  assert.ok((chowned.ctime ?? 0) > (chmodded.ctime ?? 0));
  await tick();
  // O_TRUNC of an empty file still moves mtime and ctime.
  await fs.release("/o/r/t", await fs.open("/o/r/t", 1 | 0o1000));
  await fs.release("/o/r/t", await fs.open("/o/r/t", 1 | 0o1000));
  const emptied = times(await fs.getattr("/o/r/t"));
  await tick();
  await fs.release("/o/r/t", await fs.open("/o/r/t", 1 | 0o1000));
  assert.ok(times(await fs.getattr("/o/r/t")).mtime > emptied.mtime);
  await tick();
  await w.truncate("/o/r/README", 2);
  const truncated = times(await fs.getattr("/o/r/README"));
  assert.ok(truncated.mtime > COMMIT_TIME && truncated.ctime === truncated.mtime);
  assert.equal(truncated.atime, COMMIT_TIME);
});

test("utimens sets atime and mtime, leaves an omitted one unchanged, and moves ctime", async (t) => {
  const { fs, w } = await setup(tempDir(t));
  await w.utimens("/o/r/README", new Date(1000), new Date(2000));
  const both = times(await fs.getattr("/o/r/README"));
  assert.equal(both.atime, 1000);
  assert.equal(both.mtime, 2000);
  assert.ok((both.ctime ?? 0) > COMMIT_TIME);
  await w.utimens("/o/r/README", undefined, new Date(3000));
  assert.deepEqual(
    [times(await fs.getattr("/o/r/README")).atime, (await fs.getattr("/o/r/README")).mtime.getTime()],
    [1000, 3000],
  );
  await w.utimens("/o/r/README", new Date(4000), undefined);
  const s = times(await fs.getattr("/o/r/README"));
  assert.deepEqual([s.atime, s.mtime], [4000, 3000]);
  await w.utimens("/o/r/dir", new Date(5000), new Date(6000));
  assert.equal((await fs.getattr("/o/r/dir")).mtime.getTime(), 6000);
  await w.utimens("/o/r/link", new Date(7000), new Date(8000));
  assert.equal((await fs.getattr("/o/r/link")).mtime.getTime(), 8000);
});

test("entry changes move the parent directory's mtime and ctime; rename moves the entry's ctime", async (t) => {
  const { fs, w } = await setup(tempDir(t));
  const dirTimes = async (p: string) => times(await fs.getattr(p));
  assert.equal((await dirTimes("/o/r/dir")).mtime, COMMIT_TIME);
  const steps: Array<[string, () => Promise<unknown>, string[]]> = [
    ["create", async () => fs.release("/o/r/dir/n", await w.create("/o/r/dir/n", 0o644)), ["/o/r/dir"]],
    ["mkdir", () => w.mkdir("/o/r/dir/m", 0o755), ["/o/r/dir"]],
    ["symlink", () => w.symlink("x", "/o/r/dir/l"), ["/o/r/dir"]],
    ["mknod", async () => w.mknod?.("/o/r/dir/p", 0o010600, 0), ["/o/r/dir"]],
    ["unlink", () => w.unlink("/o/r/dir/inner.txt"), ["/o/r/dir"]],
    ["rmdir", () => w.rmdir("/o/r/dir/m"), ["/o/r/dir"]],
    ["rename", () => w.rename("/o/r/dir/n", "/o/r/moved"), ["/o/r/dir", "/o/r"]],
  ];
  for (const [name, step, parents] of steps) {
    const old = await Promise.all(parents.map(dirTimes));
    await tick();
    await step();
    for (const [i, p] of parents.entries()) {
      const now = await dirTimes(p);
      assert.ok(now.mtime > old[i]!.mtime, `${name}: mtime of ${p}`);
      assert.equal(now.ctime, now.mtime, `${name}: ctime of ${p}`);
      assert.equal(now.atime, old[i]!.atime, `${name}: atime of ${p}`);
    }
  }
  const moved = times(await fs.getattr("/o/r/moved"));
  assert.ok((moved.ctime ?? 0) > moved.mtime, "rename moves the renamed entry's ctime, not its mtime");
  // The directory's contents are still the base's (a metadata-only entry).
  assert.deepEqual((await fs.readdir("/o/r/dir")).sort(), ["a", "b", "l", "p"]);
});

test("a directory's link count is 2 plus its subdirectories", async (t) => {
  const { fs, w } = await setup(tempDir(t));
  assert.equal((await fs.getattr("/o/r")).nlink, 3);
  assert.equal((await fs.getattr("/o/r/dir")).nlink, 4);
  assert.equal((await fs.getattr("/o/r/dir/a")).nlink, 2);
  await w.mkdir("/o/r/dir/c", 0o755);
  assert.equal((await fs.getattr("/o/r/dir")).nlink, 5);
  await w.rename("/o/r/dir/a", "/o/r/a");
  assert.equal((await fs.getattr("/o/r/dir")).nlink, 4);
  assert.equal((await fs.getattr("/o/r")).nlink, 4);
  await w.unlink("/o/r/dir/b/x");
  await w.rmdir("/o/r/dir/b");
  assert.equal((await fs.getattr("/o/r/dir")).nlink, 3);
  assert.equal((await fs.getattr("/o/r/README")).nlink, 1);
});

test("fifos and sockets are created; device nodes are EPERM; mknod of a regular file works", async (t) => {
  const { fs, w } = await setup(tempDir(t));
  assert.ok(w.mknod);
  await w.mknod("/o/r/fifo", 0o010640, 0);
  await w.mknod("/o/r/sock", 0o140755, 0);
  await w.mknod("/o/r/plain", 0o100600, 0);
  assert.equal((await fs.getattr("/o/r/fifo")).mode, 0o010640);
  assert.equal((await fs.getattr("/o/r/sock")).mode, 0o140755);
  assert.deepEqual(
    [(await fs.getattr("/o/r/plain")).mode, (await fs.getattr("/o/r/plain")).size],
    [0o100600, 0],
  );
  assert.equal(await errno(w.mknod("/o/r/chr", 0o020644, 0x0103)), "EPERM");
  assert.equal(await errno(w.mknod("/o/r/blk", 0o060644, 0x0801)), "EPERM");
  assert.equal(await errno(w.mknod("/o/r/fifo", 0o010644, 0)), "EEXIST");
  assert.equal(await errno(fs.getattr("/o/r/chr")), "ENOENT");
  assert.equal(await errno(w.link("/o/r/README", "/o/r/hard")), "EPERM");
  assert.ok((await fs.readdir("/o/r")).includes("fifo"));
});

test("errnos: ENAMETOOLONG, ENOTEMPTY, EISDIR, ENOTDIR, EEXIST, EINVAL, EXDEV, ELOOP", async (t) => {
  const { fs, w } = await setup(tempDir(t));
  const long = "n".repeat(256);
  assert.equal(await errno(fs.getattr(`/o/r/${long}`)), "ENAMETOOLONG");
  assert.equal(await errno(w.create(`/o/r/${long}`, 0o644)), "ENAMETOOLONG");
  assert.equal(await errno(w.mkdir(`/o/r/dir/${long}`, 0o755)), "ENAMETOOLONG");
  assert.equal(await errno(w.mkdir(`/o/r/${"é".repeat(128)}`, 0o755)), "ENAMETOOLONG"); // 256 bytes
  assert.equal(await errno(w.mkdir(`/o/r/${"n".repeat(255)}`, 0o755)), "ok");
  assert.equal(await errno(w.rmdir("/o/r/dir")), "ENOTEMPTY");
  await w.mkdir("/o/r/full", 0o755);
  await fs.release("/o/r/full/f", await w.create("/o/r/full/f", 0o644));
  await w.mkdir("/o/r/empty", 0o755);
  assert.equal(await errno(w.rename("/o/r/empty", "/o/r/full")), "ENOTEMPTY");
  assert.equal(await errno(w.rename("/o/r/empty", "/o/r/dir")), "ENOTEMPTY");
  assert.equal(await errno(w.unlink("/o/r/dir")), "EISDIR");
  assert.equal(await errno(w.rename("/o/r/README", "/o/r/empty")), "EISDIR");
  assert.equal(await errno(w.rename("/o/r/empty", "/o/r/README")), "ENOTDIR");
  assert.equal(await errno(w.rmdir("/o/r/README")), "ENOTDIR");
  assert.equal(await errno(w.mkdir("/o/r/README/x", 0o755)), "ENOTDIR");
  assert.equal(await errno(fs.getattr("/o/r/README/x")), "ENOTDIR");
  assert.equal(await errno(w.mkdir("/o/r/dir", 0o755)), "EEXIST");
  assert.equal(await errno(w.symlink("x", "/o/r/README")), "EEXIST");
  assert.equal(await errno(w.rename("/o/r/dir", "/o/r/dir/a/inside")), "EINVAL");
  assert.equal(await errno(w.rename("/o/r/README", "/o/r2/README")), "EXDEV");
  assert.equal(await errno(fs.open("/o/r/link", 0)), "ELOOP");
  // Nothing above changed the tree.
  assert.deepEqual((await fs.readdir("/o/r/dir")).sort(), ["a", "b", "inner.txt"]);
});

test("an unlinked file stays readable and writable through open handles until the last close", async (t) => {
  const { fs, w, overlay } = await setup(tempDir(t));
  const fh = await w.create("/o/r/tmp", 0o640, { uid: 5, gid: 6 });
  await w.write("/o/r/tmp", fh, Buffer.from("before"), 0);
  const reader = await fs.open("/o/r/tmp", 0);
  await w.unlink("/o/r/tmp");
  assert.equal(await errno(fs.getattr("/o/r/tmp")), "ENOENT");
  await w.write("/o/r/tmp", fh, Buffer.from("-after"), 6);
  assert.equal((await fs.read("/o/r/tmp", reader, 100, 0)).toString(), "before-after");
  const s = await fs.fgetattr("/o/r/tmp", fh);
  assert.deepEqual([s.mode, s.nlink, s.size, s.uid, s.gid], [0o100640, 0, 12, 5, 6]);
  // A new file at the same name is another file.
  await fs.release("/o/r/tmp", await w.create("/o/r/tmp", 0o600));
  assert.equal((await fs.getattr("/o/r/tmp")).size, 0);
  assert.equal((await fs.fgetattr("/o/r/tmp", reader)).size, 12);
  // A base file unlinked while open for reading.
  const base = await fs.open("/o/r/dir/inner.txt", 0);
  await w.unlink("/o/r/dir/inner.txt");
  assert.equal((await fs.read("/o/r/dir/inner.txt", base, 100, 0)).toString(), "inner\n");
  assert.equal((await fs.fgetattr("/o/r/dir/inner.txt", base)).nlink, 0);
  await fs.release("/o/r/dir/inner.txt", base);
  await fs.release("/o/r/tmp", fh);
  await fs.release("/o/r/tmp", reader);
  assert.equal(fs.openHandles(), 0);
  assert.equal(overlay.pinned.size, 0);
});

test("metadata survives a restart: modes, owners, times, fifos (journal and checkpoint)", async (t) => {
  const dir = tempDir(t);
  const first = await setup(dir);
  const fh = await first.w.create("/o/r/key", 0o644, { uid: 2001, gid: 3001 });
  await first.w.write("/o/r/key", fh, Buffer.from("secret"), 0);
  await first.w.chmod("/o/r/key", 0o600);
  await first.w.utimens("/o/r/key", new Date(1_000_000), new Date(2_000_000));
  await first.w.chmod("/o/r/README", 0o4640);
  await first.w.chown("/o/r/README", 0, 42);
  await first.w.chmod("/o/r/dir", 0o2750);
  await first.w.mknod?.("/o/r/dir/fifo", 0o010600, 0, { uid: 7, gid: 8 });
  const before = await Promise.all(
    ["key", "README", "dir", "dir/fifo", ""].map((p) => first.fs.getattr(`/o/r/${p}`)),
  );
  // The daemon "dies" here (no close, no release): the journal is replayed.
  const again = await setup(dir);
  const after = await Promise.all(
    ["key", "README", "dir", "dir/fifo", ""].map((p) => again.fs.getattr(`/o/r/${p}`)),
  );
  assert.deepEqual(after, before);
  assert.equal(after[0]!.mtime.getTime(), 2_000_000);
  assert.equal(after[2]!.mode, 0o42750);
  // And once more from the checkpoint the reopen wrote.
  again.overlay.close();
  const third = await setup(dir);
  assert.deepEqual(
    await Promise.all(["key", "README", "dir", "dir/fifo", ""].map((p) => third.fs.getattr(`/o/r/${p}`))),
    before,
  );
});

test("a journal written before metadata existed replays with today's defaults", async (t) => {
  const dir = tempDir(t);
  const ov = join(dir, "ov");
  mkdirSync(join(ov, "content"), { recursive: true });
  writeFileSync(join(ov, "content", "c1"), "old data");
  writeFileSync(join(ov, "state-1.json"), JSON.stringify({ gen: 1, meta: {}, entries: [] }));
  const lines = [
    { op: "set", p: "old.txt", e: { k: "f", c: "c1", perm: 0o755, mtime: 1234 } },
    { op: "set", p: "olddir", e: { k: "d", perm: 0o755, mtime: 5000 } },
    { op: "set", p: "olddir/l", e: { k: "l", target: "../old.txt", mtime: 6000 } },
  ];
  writeFileSync(join(ov, "journal-1.log"), `${lines.map((l) => JSON.stringify(l)).join("\n")}\n`);
  const { fs } = await setup(dir);
  const f = await fs.getattr("/o/r/old.txt");
  assert.deepEqual([f.mode, f.uid, f.gid, f.size], [0o100755, OWNER.uid, OWNER.gid, 8]);
  assert.equal(f.atime?.getTime(), f.mtime.getTime());
  const d = await fs.getattr("/o/r/olddir");
  assert.deepEqual(
    [d.mode, d.uid, times(d)],
    [0o40755, OWNER.uid, { atime: 5000, mtime: 5000, ctime: 5000 }],
  );
  assert.equal(await fs.readlink("/o/r/olddir/l"), "../old.txt");
});
