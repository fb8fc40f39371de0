/**
 * The mount behaves like a local POSIX filesystem, checked with real syscalls on a real mount
 * as root and as an unprivileged user (created with `useradd` when missing, commands run
 * through `setpriv`), against a real `mesa serve`; what Git receives is checked at the server.
 * The daemon runs as root with MESA_UID/MESA_GID set to the unprivileged user, as for an
 * agent running as its own user. docs/semantics.md names these tests.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { chmodSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { fixture } from "./helpers/fixture.js";
import { gitSync, mesa, run, waitFor } from "./helpers/mount.js";
import {
  pythonAs,
  ROOT,
  STRANGER,
  type StatResult,
  shAs,
  syscalls,
  testUser,
  type Who,
} from "./helpers/posix.js";
import type { ServeHandle } from "./helpers/serve.js";
import {
  authHeader,
  cloneRepo,
  type Daemon,
  importSmallRepo,
  serverRef,
  waitPushed,
} from "./helpers/write.js";

const fx = fixture({ after }, "posix-mount");
let dir: string;
let serve: ServeHandle | undefined;
let d: Daemon | undefined;
let user: Who;
let repo: string;

before(async () => {
  user = testUser();
  dir = fx.dir;
  // The unprivileged users must reach the mount point.
  chmodSync(dir, 0o755);
  serve = await fx.serve();
  await importSmallRepo(serve, dir, "app");
  await importSmallRepo(serve, dir, "other");
  d = await daemon();
  repo = d.root("app");
});

async function daemon(): Promise<Daemon> {
  mkdirSync(join(dir, "d1"), { recursive: true, mode: 0o755 });
  return fx.daemon(serve as ServeHandle, {
    name: "d1",
    env: { MESA_UID: String(user.uid), MESA_GID: String(user.gid) },
  });
}

/** `sh -c script` in the repo as `who`; asserts success and returns stdout. */
async function ok(who: Who, script: string): Promise<string> {
  const r = await shAs(who, repo, script);
  assert.equal(r.code, 0, `${script}: ${r.stderr}`);
  return r.stdout;
}

/** `sh -c script` in the repo as `who`; asserts failure with `message` on stderr. */
async function fails(who: Who, script: string, message: RegExp): Promise<void> {
  const r = await shAs(who, repo, script);
  assert.notEqual(r.code, 0, `${script} should fail`);
  assert.match(r.stderr, message, script);
}

async function stat(p: string, who: Who = ROOT): Promise<StatResult> {
  const [s] = await syscalls(who, repo, [["stat", p]]);
  assert.equal(typeof s, "object", `stat ${p}: ${String(s)}`);
  return s as StatResult;
}

test("ssh-style chmod 600 round trip as an unprivileged user", async () => {
  await ok(user, "umask 022 && printf 'PRIVATE KEY\\n' > id_test && chmod 600 id_test");
  assert.equal(await ok(user, "stat -c '%a %u %g' id_test"), `600 ${user.uid} ${user.gid}\n`);
  assert.equal(await ok(user, "cat id_test"), "PRIVATE KEY\n");
  await ok(user, "ssh-keygen -q -t ed25519 -N '' -C test -f ./key");
  assert.equal(await ok(user, "stat -c %a key"), "600\n");
  // ssh-keygen refuses a private key others can read; 0600 is accepted.
  assert.match(await ok(user, "ssh-keygen -y -f ./key"), /^ssh-ed25519 /);
  await ok(user, "chmod 644 key");
  await fails(user, "ssh-keygen -y -f ./key", /UNPROTECTED PRIVATE KEY FILE/);
  await ok(user, "chmod 0600 key");
  for (const mode of ["111", "4755", "2755", "1777", "7777", "0"])
    assert.equal(await ok(user, `chmod ${mode} id_test && stat -c %a id_test`), `${mode}\n`);
  await ok(user, "chmod 600 id_test");
});

test("permission checks for every user: 0600 and 0000 files, a 0700 directory", async () => {
  await ok(user, "printf s > private && chmod 600 private && printf n > none && chmod 000 none");
  await ok(user, "mkdir -p closed && printf x > closed/f && chmod 700 closed");
  await fails(STRANGER, "cat private", /Permission denied/);
  await fails(STRANGER, "ls closed", /Permission denied/);
  await fails(STRANGER, "cat closed/f", /Permission denied/);
  await fails(STRANGER, "printf x >> README.md", /Permission denied/);
  await fails(user, "cat none", /Permission denied/);
  assert.equal(await ok(STRANGER, "cat README.md"), "hello\n");
  assert.equal(await ok(ROOT, "cat none"), "n");
  assert.deepEqual(
    await syscalls(STRANGER, repo, [
      ["open", "private"],
      ["creat", "closed/g", 0o644],
      ["creat", "stranger", 0o644],
      ["chmod", "private", 0o644],
      ["unlink", "private"],
    ]),
    ["EACCES", "EACCES", "EACCES", "EPERM", "EACCES"],
  );
});

test("chown and chgrp as root; EPERM for others; setuid cleared by a write and a chown", async () => {
  await ok(ROOT, "printf o > owned && chown 1234:5678 owned");
  assert.equal(await ok(user, "stat -c '%u %g' owned"), "1234 5678\n");
  await ok(ROOT, "chgrp 42 owned && chown 4321 owned");
  assert.equal(await ok(user, "stat -c '%u %g' owned"), "4321 42\n");
  await ok(user, "printf m > mine");
  await fails(user, "chown 0 mine", /Operation not permitted/);
  await fails(user, "chgrp 0 mine", /Operation not permitted/);
  await fails(STRANGER, "chmod 777 mine", /Operation not permitted/);
  // The owner can chgrp to its own group (a no-op here), as POSIX allows.
  await ok(user, `chgrp ${user.gid} mine`);
  // A write by a non-root owner clears setuid.
  await ok(user, "chmod 4755 mine && printf more >> mine");
  assert.equal(await ok(user, "stat -c %a mine"), "755\n");
  // chown clears setuid and setgid on a regular file (Linux).
  await ok(ROOT, "chmod 6755 owned && chown 1111 owned");
  assert.equal(await ok(user, "stat -c '%a %u' owned"), "755 1111\n");
});

test("a sticky directory keeps others from deleting or renaming your files", async () => {
  await ok(ROOT, "mkdir -p sticky && chown 0:0 sticky && chmod 1777 sticky");
  await ok(user, "printf u > sticky/users");
  assert.equal(await ok(user, "stat -c %a sticky"), "1777\n");
  assert.deepEqual(
    await syscalls(STRANGER, repo, [
      ["unlink", "sticky/users"],
      ["rename", "sticky/users", "sticky/mine"],
      ["creat", "sticky/strangers", 0o644],
    ]),
    ["EPERM", "EPERM", "ok"],
  );
  assert.deepEqual(await syscalls(user, repo, [["unlink", "sticky/users"]]), ["ok"]);
});

test("a setgid directory gives new entries its group and subdirectories its setgid bit", async () => {
  await ok(ROOT, `mkdir -p shared && chown ${user.uid}:4242 shared && chmod 2775 shared`);
  await ok(user, "umask 022 && printf f > shared/f && mkdir shared/sub");
  assert.equal(await ok(user, "stat -c '%g %a' shared/f shared/sub"), "4242 644\n4242 2755\n");
});

test("errnos through the mount", async () => {
  await ok(
    ROOT,
    "mkdir -p errs/full && printf x > errs/full/f && mkdir -p errs/empty && ln -sf loop2 errs/loop1 && ln -sf loop1 errs/loop2",
  );
  const results = await syscalls(ROOT, repo, [
    ["creat", `errs/${"n".repeat(256)}`, 0o644],
    ["stat", `errs/${"n".repeat(256)}`],
    ["rmdir", "errs/full"],
    ["rename", "errs/empty", "errs/full"],
    ["unlink", "errs/full"],
    ["rename", "README.md", "errs/empty"],
    ["mkdir", "README.md/x", 0o755],
    ["rename", "errs/empty", "README.md"],
    ["mkdir", "errs/full", 0o755],
    ["symlink", "x", "README.md"],
    ["rename", "errs", "errs/full/inside"],
    ["rename", "README.md", "../other/README.md"],
    ["open", "errs/loop1"],
    ["link", "README.md", "hard"],
    ["mknod", "errs/chr", 0o020644, 0x0103],
    ["mknod", "errs/blk", 0o060644, 0x0801],
  ]);
  assert.deepEqual(results, [
    "ENAMETOOLONG",
    "ENAMETOOLONG",
    "ENOTEMPTY",
    "ENOTEMPTY",
    "EISDIR",
    "EISDIR",
    "ENOTDIR",
    "ENOTDIR",
    "EEXIST",
    "EEXIST",
    "EINVAL",
    "EXDEV",
    "ELOOP",
    "EPERM",
    "EPERM",
    "EPERM",
  ]);
  assert.equal(await ok(ROOT, "cat README.md"), "hello\n");
});

const pause = () => new Promise((r) => setTimeout(r, 20));

test("times: ctime on chmod/chown/rename/writes, a directory's mtime and ctime on entry changes", async () => {
  await ok(ROOT, "mkdir -p times && printf a > times/f");
  const f0 = await stat("times/f");
  const d0 = await stat("times");
  await pause();
  await ok(ROOT, "chmod 640 times/f");
  const f1 = await stat("times/f");
  assert.ok(f1.mtime === f0.mtime && f1.ctime > f0.ctime, "chmod moves ctime only");
  await pause();
  await ok(ROOT, "mv times/f times/g");
  const g = await stat("times/g");
  assert.ok(g.mtime === f0.mtime && g.ctime > f1.ctime, "rename moves the entry's ctime only");
  const d1 = await stat("times");
  assert.ok(d1.mtime > d0.mtime && d1.ctime >= d1.mtime, "a rename moves the directory's mtime and ctime");
  await pause();
  await ok(ROOT, "printf h > times/h");
  const d2 = await stat("times");
  assert.ok(d2.mtime > d1.mtime && d2.ctime >= d2.mtime, "a create moves the directory's mtime and ctime");
  await pause();
  await ok(ROOT, "printf more >> times/g");
  const w = await stat("times/g");
  assert.ok(w.mtime > g.mtime && w.ctime >= w.mtime, "a write moves mtime and ctime");
  await pause();
  await ok(ROOT, "chown 7 times/g");
  const c = await stat("times/g");
  assert.ok(c.ctime > w.ctime && c.mtime === w.mtime, "chown moves ctime only");
  await ok(ROOT, "touch -d '2001-02-03 04:05:06 UTC' times/g");
  assert.equal((await stat("times/g")).mtime, Date.UTC(2001, 1, 3, 4, 5, 6));
  const committed = await stat("README.md");
  assert.equal(committed.mtime, (await stat("tool.sh")).mtime, "committed files show the commit time");
});

test("utimensat with distinct times and UTIME_OMIT through the mount", async () => {
  await ok(ROOT, "printf t > utimes");
  const [r1, s1] = await syscalls(ROOT, repo, [
    ["utime", "utimes", 1_000_000_000_000, 1_100_000_000_000],
    ["stat", "utimes"],
  ]);
  assert.equal(r1, "ok");
  assert.deepEqual(
    [(s1 as StatResult).atime, (s1 as StatResult).mtime],
    [1_000_000_000_000, 1_100_000_000_000],
  );
  await ok(ROOT, "touch -m -d '2002-01-01 UTC' utimes");
  const s2 = await stat("utimes");
  assert.deepEqual([s2.atime, s2.mtime], [1_000_000_000_000, Date.UTC(2002, 0, 1)]);
});

test("a directory's link count is 2 plus its subdirectories", async () => {
  await ok(ROOT, "mkdir -p links/a links/b && printf f > links/f");
  assert.equal(await ok(ROOT, "stat -c %h links links/a links/f"), "4\n2\n1\n");
  await ok(ROOT, "rmdir links/b");
  assert.equal(await ok(ROOT, "stat -c %h links"), "3\n");
});

test("new entries belong to the calling user", async () => {
  await ok(ROOT, "printf r > by-root && mkdir by-root-dir && ln -s x by-root-link && mkfifo by-root-fifo");
  assert.equal(
    await ok(ROOT, "stat -c '%u %g' by-root by-root-dir by-root-link by-root-fifo"),
    "0 0\n0 0\n0 0\n0 0\n",
  );
  // In a root-owned sticky directory the user cannot delete a stranger's file.
  await ok(ROOT, "mkdir -p sticky2 && chmod 1777 sticky2");
  await ok(STRANGER, "printf s > sticky2/strangers");
  assert.equal(await ok(user, "stat -c %u sticky2/strangers"), `${STRANGER.uid}\n`);
  assert.deepEqual(await syscalls(user, repo, [["unlink", "sticky2/strangers"]]), ["EPERM"]);
});

test("mkfifo with a reader and a writer", async () => {
  await ok(user, "mkfifo pipe");
  assert.equal(await ok(user, "stat -c '%F %a %u' pipe"), `fifo 644 ${user.uid}\n`);
  const out = await ok(user, "cat pipe > got & printf 'through the fifo' > pipe; wait; cat got");
  assert.equal(out, "through the fifo");
});

test("a unix socket bound inside the repo", async () => {
  const program = `
import os, socket, threading
path = "dev.sock"
srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
srv.bind(path)
srv.listen(1)
def serve():
    conn, _ = srv.accept()
    conn.sendall(b"echo:" + conn.recv(100))
    conn.close()
t = threading.Thread(target=serve)
t.start()
cli = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
cli.settimeout(10)
cli.connect(path)
cli.sendall(b"hello")
print(cli.recv(100).decode())
t.join(10)
import stat
print(stat.S_ISSOCK(os.lstat(path).st_mode))
`;
  assert.equal(await pythonAs(user, repo, program), "echo:hello\nTrue\n");
  assert.equal(await ok(user, "stat -c %F dev.sock"), "socket\n");
});

test("a file unlinked while open stays readable and writable until the last close", async () => {
  const program = `
import os
fd = os.open("scratch", os.O_CREAT | os.O_RDWR, 0o600)
os.write(fd, b"before")
os.unlink("scratch")
print(os.path.exists("scratch"))
os.write(fd, b"-after")
os.lseek(fd, 0, os.SEEK_SET)
print(os.read(fd, 100).decode())
print(os.fstat(fd).st_size)
os.close(fd)
`;
  assert.equal(await pythonAs(user, repo, program), "False\nbefore-after\n12\n");
  // A file made earlier and opened again (an open the daemon may never see), used, unlinked.
  const reopened = `
import os
with open("scratch3", "w") as f:
    f.write("made")
fd = os.open("scratch3", os.O_RDWR)
os.lseek(fd, 0, os.SEEK_END)
os.write(fd, b"+")
os.unlink("scratch3")
os.write(fd, b"more")
os.lseek(fd, 0, os.SEEK_SET)
print(os.read(fd, 100).decode(), os.fstat(fd).st_size, os.fstat(fd).st_nlink)
os.close(fd)
`;
  assert.equal(await pythonAs(user, repo, reopened), "made+more 9 0\n");
  // A committed file stays readable after its name went.
  const committed = `
import os
fd = os.open("sub/a.txt", os.O_RDONLY)
want = open("sub/a.txt").read()
os.unlink("sub/a.txt")
print(os.read(fd, 1 << 16).decode() == want, os.fstat(fd).st_nlink)
os.close(fd)
`;
  assert.equal(await pythonAs(ROOT, repo, committed), "True 0\n");
});

test("fstat of an unlinked open file shows no links and no hidden name", async () => {
  const program = `
import os
fd = os.open("scratch2", os.O_CREAT | os.O_RDWR, 0o600)
os.unlink("scratch2")
print(os.fstat(fd).st_nlink, [n for n in os.listdir(".") if n.startswith(".fuse_hidden")])
os.close(fd)
`;
  assert.equal(await pythonAs(user, repo, program), "0 []\n");
});

test("extended attributes are not supported; statfs gives 255-byte names", async () => {
  const [xattr, namemax] = await syscalls(ROOT, repo, [
    ["setxattr", "README.md", "user.test", "v"],
    ["namemax", "."],
  ]);
  // ENOTSUP and EOPNOTSUPP are one errno on Linux.
  assert.match(String(xattr), /^(ENOTSUP|EOPNOTSUPP)$/);
  assert.equal(namemax, 255);
});

/** A tree on local disk with odd modes, owners and times, archived with tar. */
function oddTree(): { src: string; tarball: string } {
  const src = join(dir, "odd");
  mkdirSync(src, { recursive: true });
  const script = [
    "mkdir -p odd/private odd/shared odd/tmp odd/sub/deeper",
    "printf secret > odd/private/key && chmod 600 odd/private/key && chmod 700 odd/private",
    "printf x > odd/exec && chmod 751 odd/exec",
    "printf r > odd/readonly && chmod 444 odd/readonly",
    "printf s > odd/setuid && chmod 4755 odd/setuid",
    "printf g > odd/setgid && chmod 2711 odd/setgid",
    "printf n > odd/none && chmod 000 odd/none",
    "chmod 2775 odd/shared && chmod 1777 odd/tmp",
    "printf d > odd/sub/deeper/file && ln -s ../exec odd/sub/link",
    "chown 1234:5678 odd/exec odd/sub/deeper/file && chown -h 4321:8765 odd/sub/link && chown 99:98 odd/shared",
    "find odd -exec touch -h -d '2003-04-05 06:07:08 UTC' {} +",
    "touch -d '1999-12-31 23:59:59 UTC' odd/private/key",
    "tar -C odd -cf odd.tar .",
  ].join(" && ");
  execSyncIn(dir, script);
  return { src, tarball: join(dir, "odd.tar") };
}

function execSyncIn(cwd: string, script: string): void {
  execFileSync("sh", ["-c", script], { cwd, stdio: "ignore" });
}

const LISTING = "find . -printf '%p %M %U %G %s %l\\n' | sort";
const TIMES = "find . ! -type l -printf '%p %TY-%Tm-%Td %TH:%TM:%TS\\n' | sed 's/\\.[0-9]*$//' | sort";

test("tar -p -x and cp -a of a tree with odd modes and owners give what local disk gives", async () => {
  const { src, tarball } = oddTree();
  const local = join(dir, "local");
  mkdirSync(join(local, "tar"), { recursive: true });
  await ok(ROOT, `mkdir -p copies/tar && tar -p -x -f ${tarball} -C copies/tar && cp -a ${src} copies/cp`);
  execSyncIn(local, `tar -p -x -f ${tarball} -C tar && cp -a ${src} cp`);
  for (const which of ["tar", "cp"]) {
    const want = await run("sh", ["-c", LISTING], { cwd: join(local, which) });
    const got = await run("sh", ["-c", LISTING], { cwd: join(repo, "copies", which) });
    assert.equal(got.code, 0, got.stderr);
    assert.equal(got.stdout, want.stdout, which);
    assert.match(got.stdout, /\.\/private\/key -rw------- 1234|\.\/private\/key -rw------- 0/);
  }
});

test("tar -p -x and cp -a keep the times local disk keeps", async () => {
  const local = join(dir, "local");
  for (const which of ["tar", "cp"]) {
    const want = await run("sh", ["-c", TIMES], { cwd: join(local, which) });
    const got = await run("sh", ["-c", TIMES], { cwd: join(repo, "copies", which) });
    assert.equal(got.stdout, want.stdout, which);
  }
});

test("metadata-only changes push nothing; fifos and sockets are never pushed", async () => {
  const app = "app";
  await ok(ROOT, "printf 'content\\n' > pushed.txt");
  await waitPushed(d as Daemon, app);
  const ref = serverRef(serve as ServeHandle, app);
  const pushes = async () =>
    ((await (d as Daemon).status()).writes.find((w) => w.repo === app) as { pushes?: number }).pushes;
  const pushesBefore = await pushes();
  await ok(
    ROOT,
    "chmod 600 README.md && chmod 700 tool.sh && chown 1:2 README.md && touch -d 2001-01-01 pushed.txt",
  );
  await ok(ROOT, "chmod 2700 sub && chown -h 5:5 sub && mkfifo pipe2 && chmod 1777 .");
  await pythonAs(ROOT, repo, "import socket; socket.socket(socket.AF_UNIX).bind('srv.sock')");
  await waitPushed(d as Daemon, app);
  assert.equal(serverRef(serve as ServeHandle, app), ref, "no commit for metadata-only changes");
  assert.equal(await pushes(), pushesBefore, "no push for metadata-only changes");
  assert.equal(typeof pushesBefore, "number");
  // An executable bit that changes is what Git stores: that is pushed.
  await ok(ROOT, "chmod 755 pushed.txt");
  await waitPushed(d as Daemon, app);
  assert.notEqual(serverRef(serve as ServeHandle, app), ref);
  const clone = cloneRepo(serve as ServeHandle, app, join(dir, "clone-meta"));
  const files = gitSync(clone, ["ls-files", "-s"]).replace(/ [0-9a-f]{40} /g, " ");
  assert.match(files, /^100755 0\tpushed\.txt$/m);
  assert.match(files, /^100644 0\tREADME\.md$/m);
  assert.match(files, /^100755 0\ttool\.sh$/m);
  assert.match(files, /^100644 0\tid_test$/m);
  for (const local of ["pipe", "pipe2", "dev.sock", "srv.sock"])
    assert.doesNotMatch(files, new RegExp(`\\t${local}$`, "m"));
});

test("local metadata stays over `mesa new` and over a rebase onto someone else's push", async () => {
  const app = "app";
  await ok(ROOT, "mkdir -p kept && printf k > kept/key && chmod 600 kept/key && chown 77:88 kept/key");
  await ok(ROOT, "touch -d '2005-01-01 UTC' kept/key && chmod 2750 kept && mkfifo kept/fifo");
  await waitPushed(d as Daemon, app);
  const listing = "stat -c '%n %A %u %g %Y' kept kept/key kept/fifo";
  const before = await ok(ROOT, listing);
  const sealed = await mesa(
    ["new", "-m", "next", "--org", (serve as ServeHandle).org, "--repo", app],
    (d as Daemon).env,
  );
  assert.equal(sealed.code, 0, sealed.stderr);
  assert.equal(await ok(ROOT, listing), before);
  const clone = cloneRepo(serve as ServeHandle, app, join(dir, "clone-outside"));
  writeFileSync(join(clone, "outside.txt"), "from elsewhere\n");
  gitSync(clone, ["add", "outside.txt"]);
  gitSync(clone, ["commit", "-q", "-m", "outside"]);
  gitSync(clone, ["-c", authHeader((serve as ServeHandle).adminKey), "push", "-q", "origin", "HEAD:main"]);
  const arrived = await waitFor(
    async () => (await shAs(ROOT, repo, "test -f outside.txt")).code === 0,
    30_000,
    250,
  );
  assert.ok(arrived, "the outside push did not show in the mount");
  assert.equal(await ok(ROOT, listing), before);
  assert.match(before, /^kept\/key -rw------- 77 88 1104537600$/m);
});

test("metadata survives a daemon restart", async () => {
  await ok(
    ROOT,
    "mkdir -p keep && printf k > keep/f && chmod 640 keep/f && chown 77:88 keep/f && chmod 2750 keep",
  );
  await ok(ROOT, "touch -d '2004-05-06 07:08:09 UTC' keep/f && mkfifo keep/fifo");
  const listing = "stat -c '%n %A %u %g %Y' keep keep/f keep/fifo README.md";
  const before = await ok(ROOT, listing);
  await d?.stop();
  d = await daemon();
  assert.equal(await ok(ROOT, listing), before);
  assert.match(before, /^keep\/f -rw-r----- 77 88 1083827289$/m);
});
