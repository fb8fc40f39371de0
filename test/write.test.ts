/**
 * Writing through a real mount against a real `mesa serve`, checked with the real `git` CLI:
 * every POSIX operation and its errors, atomic save, .mesaignore, the working change
 * (first write creates it, later writes amend it, `mesa new` seals it), log/show/bookmark,
 * `tar -x` of a few thousand files, and EROFS where writing is not allowed.
 */
import assert from "node:assert/strict";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { fixture } from "./helpers/fixture.js";
import { diffTrees, generateRepo, gitSync, mesa, run, statListing } from "./helpers/mount.js";
import { cloneRepo, importSmallRepo, serverFingerprint, serverRef, waitPushed } from "./helpers/write.js";

test("POSIX write operations through the mount, pushed as one working change", async (t) => {
  const fx = fixture(t, "write-ops");
  const dir = fx.dir;
  const serve = await fx.serve();
  await importSmallRepo(serve, dir, "app");
  const before = serverRef(serve, "app");
  const d = await fx.daemon(serve, { name: "d1" });

  const ok = async (script: string) => {
    const r = await d.sh("app", script);
    assert.equal(r.code, 0, `${script}: ${r.stderr}`);
    return r.stdout;
  };
  const fails = async (script: string, message: RegExp) => {
    const r = await d.sh("app", script);
    assert.notEqual(r.code, 0, `${script} should fail`);
    assert.match(r.stderr, message, script);
  };

  // create, write, append, overwrite, sparse write, truncate
  await ok("printf 'one\\n' > new.txt && printf 'two\\n' >> new.txt");
  assert.equal(await ok("cat new.txt"), "one\ntwo\n");
  await ok("printf 'HELLO\\n' > README.md");
  await ok("printf Z | dd of=sparse.bin bs=1 seek=9999 conv=notrunc status=none");
  assert.equal(await ok("stat -c %s sparse.bin"), "10000\n");
  await ok("truncate -s 2 sub/a.txt");
  assert.equal(await ok("cat sub/a.txt"), "a1");
  // mkdir, rename across directories (file and directory), rename over a file, rmdir
  await ok("mkdir -p deep/er && printf x > deep/er/x.txt && mkdir gone && rmdir gone");
  await ok("mv deep other && mv other/er/x.txt sub/x.txt && mv sub moved");
  await ok("printf 'saved\\n' > .tmp-save && mv .tmp-save new.txt");
  assert.equal(await ok("cat new.txt"), "saved\n");
  // symlink, readlink, chmod (exec bit persisted), utimens, unlink, an empty dir (kept locally)
  await ok("ln -s moved/a.txt link && chmod +x new.txt && chmod -x tool.sh && touch -d 2001-01-01 README.md");
  assert.equal(await ok("readlink link"), "moved/a.txt\n");
  assert.equal(await ok("stat -c %Y README.md"), `${Date.UTC(2001, 0, 1) / 1000}\n`);
  await ok("rm other/er -r && mkdir keep-empty && printf s > .new.txt.swp");
  assert.deepEqual((await ok("ls -A")).split("\n").filter(Boolean).sort(), [
    ".new.txt.swp",
    "README.md",
    "keep-empty",
    "link",
    "moved",
    "new.txt",
    "other",
    "sparse.bin",
    "tool.sh",
  ]);

  // errors
  await fails("mkdir moved", /File exists/);
  await fails("rmdir moved", /Directory not empty/);
  await fails("ln README.md hard", /Operation not permitted/);
  await fails("cat missing", /No such file/);
  await fails("mkdir README.md/x", /Not a directory/);
  await fails(`touch ${"n".repeat(256)}`, /File name too long/);
  await fails("rm moved", /Is a directory/);
  await fails(`node -e "require('fs').renameSync('moved','moved/inside')"`, /EINVAL/);
  await fails("mkdir ../../newrepo", /Operation not permitted|Read-only/);

  // fsync: returns only after the server has the change
  await ok(`node -e "const fs=require('fs');const fd=fs.openSync('new.txt','r+');fs.fsyncSync(fd)"`);
  await waitPushed(d, "app");
  const s1 = await d.status();
  const w1 = s1.writes.find((w) => w.repo === "app");
  assert.ok(w1?.changeId && w1.commit, JSON.stringify(s1));
  assert.deepEqual(s1.errors, []);

  const clone = cloneRepo(serve, "app", join(dir, "clone1"));
  // The mount and the clone agree, except what stays local: the swap file and the empty dir.
  const mine = (await statListing(d.root("app"))).filter(
    (l) => !/^(\.new\.txt\.swp|keep-empty|other)\t/.test(l),
  );
  const theirs = await statListing(clone);
  assert.deepEqual(mine, theirs);
  assert.equal(
    await diffTrees(clone, d.root("app")).then((x) =>
      x
        .split("\n")
        .filter((l) => l && !/swp|keep-empty|other/.test(l))
        .join("\n"),
    ),
    "",
  );
  assert.equal(readFileSync(join(clone, "README.md"), "utf8"), "HELLO\n");
  assert.equal(
    gitSync(clone, ["ls-files", "-s", "new.txt", "tool.sh", "link"]).replace(/ [0-9a-f]{40} /g, " "),
    "120000 0\tlink\n100755 0\tnew.txt\n100644 0\ttool.sh\n",
  );
  // One change on top of the bookmark's old commit, with a change-id header.
  const head = gitSync(clone, ["cat-file", "-p", "HEAD"]);
  assert.match(head, new RegExp(`^parent ${before}$`, "m"));
  assert.match(head, new RegExp(`^change-id ${w1.changeId}$`, "m"));

  // Later writes amend the same change (same change id, same parent).
  await ok("printf more >> README.md");
  await waitPushed(d, "app");
  const clone2 = cloneRepo(serve, "app", join(dir, "clone2"));
  const head2 = gitSync(clone2, ["cat-file", "-p", "HEAD"]);
  assert.match(head2, new RegExp(`^parent ${before}$`, "m"));
  assert.match(head2, new RegExp(`^change-id ${w1.changeId}$`, "m"));
  assert.equal(readFileSync(join(clone2, "README.md"), "utf8"), "HELLO\nmore");
  const amended = gitSync(clone2, ["rev-parse", "HEAD"]).trim();
  assert.notEqual(amended, w1.commit);

  // mesa new seals it; the next write starts a new change on top.
  const sealed = await mesa(["new", "-m", "second change"], { ...d.env });
  assert.equal(sealed.code, 0, sealed.stderr);
  assert.match(sealed.stdout, new RegExp(`sealed change ${w1.changeId}`));
  await ok("printf third > third.txt");
  await waitPushed(d, "app");
  const w2 = (await d.status()).writes.find((w) => w.repo === "app");
  assert.ok(w2?.changeId && w2.changeId !== w1.changeId);
  const clone3 = cloneRepo(serve, "app", join(dir, "clone3"));
  const log = gitSync(clone3, ["log", "--format=%P %s"]).split("\n");
  assert.equal(log[0], `${amended} second change`);
  assert.equal(readFileSync(join(clone3, "README.md"), "utf8"), "HELLO\nmore");

  // log / show / bookmark from inside the repo directory of the mount
  const inRepo = { ...d.env };
  const logOut = await run(process.execPath, [join(import.meta.dirname, "../../bin/mesa"), "log"], {
    cwd: d.root("app"),
    env: inRepo,
  });
  assert.equal(logOut.code, 0, logOut.stderr);
  assert.match(logOut.stdout, new RegExp(w2.changeId.slice(0, 12)));
  assert.match(logOut.stdout, new RegExp(w1.changeId!.slice(0, 12)));
  const show = await run(process.execPath, [join(import.meta.dirname, "../../bin/mesa"), "show", "--git"], {
    cwd: d.root("app"),
    env: inRepo,
  });
  assert.equal(show.code, 0, show.stderr);
  assert.match(show.stdout, /second change/);
  assert.match(
    show.stdout,
    /diff --git a\/third.txt b\/third.txt\nnew file mode 100644\nindex 0000000\.\.[0-9a-f]{7}\n--- \/dev\/null\n\+\+\+ b\/third.txt\n@@ -0,0 \+1 @@\n\+third/,
  );
  const names = await mesa(["show", "--org", "local", "--repo", "app", "--name-only", w1.changeId!], d.env);
  assert.equal(names.code, 0, names.stderr);
  assert.ok(names.stdout.split("\n").includes("moved/x.txt"), names.stdout);
  const bm = await mesa(
    ["bookmark", "create", "feature", "-r", w1.changeId!, "--org", "local", "--repo", "app"],
    d.env,
  );
  assert.equal(bm.code, 0, bm.stderr);
  const list = await mesa(["bookmark", "list", "--org", "local", "--repo", "app"], d.env);
  assert.match(list.stdout, new RegExp(`feature: ${w1.changeId}`));
  const moved = await mesa(
    ["bookmark", "move", "feature", "--to", "main", "--org", "local", "--repo", "app"],
    d.env,
  );
  assert.equal(moved.code, 0, moved.stderr);
  const dump = await mesa(["dump-default-mesaignore"], d.env);
  assert.match(dump.stdout, /^\*\.swp$/m);
  const st = await mesa(["status"], d.env);
  assert.match(st.stdout, /local\/app: working change [k-z]{32} on main, pushed/);
});

test("tar -x of 3,000 files into the mount, then git clone shows exactly them", async (t) => {
  const fx = fixture(t, "write-tar");
  const dir = fx.dir;
  const serve = await fx.serve();
  await importSmallRepo(serve, dir, "tarred");
  const src = join(dir, "gen");
  generateRepo(src, { files: 3000, seed: 7 });
  const tarball = join(dir, "files.tar");
  const tr = await run("tar", ["-cf", tarball, "--exclude=.git", "-C", src, "."], { timeoutMs: 120_000 });
  assert.equal(tr.code, 0, tr.stderr);
  const d = await fx.daemon(serve);
  const t0 = Date.now();
  const x = await d.sh("tarred", `mkdir in && tar -xf ${tarball} -C in && sync`, 240_000);
  assert.equal(x.code, 0, x.stderr);
  const tarMs = Date.now() - t0;
  await waitPushed(d, "tarred", 120_000);
  const pushedMs = Date.now() - t0;
  const clone = cloneRepo(serve, "tarred", join(dir, "clone"));
  assert.equal(await diffTrees(join(src), join(clone, "in")), "");
  assert.deepEqual(
    (await statListing(join(clone, "in"))).filter((l) => !l.startsWith(".git")),
    (await statListing(src)).filter((l) => !l.startsWith(".git")),
  );
  writeFileSync(join(dir, "timing.txt"), `tar ${tarMs} ms, pushed ${pushedMs} ms\n`);
  t.diagnostic(`tar -x of 3,000 files: ${tarMs} ms; pushed after ${pushedMs} ms`);
});

test("EROFS for a read-only repo, a change-id pin and a read-scoped token; nothing reaches the server", async (t) => {
  const fx = fixture(t, "write-erofs");
  const dir = fx.dir;
  const serve = await fx.serve();
  await importSmallRepo(serve, dir, "ro");
  await importSmallRepo(serve, dir, "pinned");
  const before = ["ro", "pinned"].map((r) => serverFingerprint(serve, r));
  const cfg = join(dir, "config.toml");
  writeFileSync(
    cfg,
    `[organizations.local]\nmount = "explicit"\n[organizations.local.repos.ro]\nread-only = true\n[organizations.local.repos.pinned]\n`,
  );
  // The change id of the pinned commit, as the server indexed it.
  const changes = await mesa(["log", "--org", "local", "--repo", "pinned"], {
    ...process.env,
    MESA_NO_CONFIG_FILE: "1",
    MESA_ORG: "local",
    MESA_API_KEY: serve.adminKey,
    MESA_SERVICE_URL: serve.url,
  });
  assert.equal(changes.code, 0, changes.stderr);
  const changeId = changes.stdout.split(" ")[0];
  const full = JSON.parse(
    (
      await run("curl", [
        "-sf",
        "-H",
        `Authorization: Bearer ${serve.adminKey}`,
        `${serve.url}/v1/local/pinned/changes?limit=1`,
      ])
    ).stdout,
  ) as { changes: Array<{ id: string }> };
  assert.ok(full.changes[0].id.startsWith(changeId));
  const d1 = await fx.daemon(serve, {
    name: "d1",
    env: { MESA_NO_CONFIG_FILE: "", MESA_REPO_REVS: `local/pinned=change-id:${full.changes[0].id}` },
    args: ["-c", cfg],
  });
  for (const repo of ["ro", "pinned"]) {
    // Exit codes and messages of dash and GNU coreutils in the C locale: each one is EROFS.
    for (const [script, code, message] of [
      ["printf x > new.txt", 2, "sh: 1: cannot create new.txt: Read-only file system"],
      ["printf x >> README.md", 2, "sh: 1: cannot create README.md: Read-only file system"],
      ["mkdir d", 1, "mkdir: cannot create directory 'd': Read-only file system"],
      ["rm README.md", 1, "rm: cannot remove 'README.md': Read-only file system"],
      ["mv README.md r2", 1, "mv: cannot move 'README.md' to 'r2': Read-only file system"],
      ["chmod +x README.md", 1, "chmod: changing permissions of 'README.md': Read-only file system"],
      ["ln -s a b", 1, "ln: failed to create symbolic link 'b': Read-only file system"],
    ] as const) {
      const r = await d1.sh(repo, `export LC_ALL=C; ${script}`);
      assert.deepEqual([r.code, r.stderr], [code, `${message}\n`], `${repo}: ${script}`);
    }
  }
  const s = await d1.status();
  assert.deepEqual(s.writes.map((w) => [w.repo, w.readOnly]).sort(), [
    ["pinned", "pinned to a change id"],
    ["ro", "read-only in config"],
  ]);
  await d1.stop();

  // A read-scoped key: writes fail with EROFS too.
  const keyOut = await run("curl", [
    "-sf",
    "-X",
    "POST",
    "-H",
    `Authorization: Bearer ${serve.adminKey}`,
    "-H",
    "content-type: application/json",
    "-d",
    JSON.stringify({ name: "reader", scopes: ["read"] }),
    `${serve.url}/v1/local/api-keys`,
  ]);
  assert.equal(keyOut.code, 0, keyOut.stderr);
  const readKey = (JSON.parse(keyOut.stdout) as { key: string }).key;
  const d2 = await fx.daemon({ ...serve, adminKey: readKey }, { name: "d2" });
  const r = await d2.sh("ro", "export LC_ALL=C; printf x > new.txt");
  assert.equal(r.code, 2);
  assert.equal(r.stderr, "sh: 1: cannot create new.txt: Read-only file system\n");
  assert.equal(
    (await d2.status()).writes.find((w) => w.repo === "ro")?.readOnly,
    "the credential has read scope only",
  );
  // Counted at the server: no ref, no object, no push request.
  assert.deepEqual(
    ["ro", "pinned"].map((r) => serverFingerprint(serve, r)),
    before,
  );
});
