/**
 * The SDK against a real `mesa serve`: the seeds' complete example (checked with the real
 * `git`), every MesaFileSystem method's success and error cases, read-only repos, token
 * expiry, bash over the mount, changes/bookmarks, subscribe, and the REST namespaces.
 */
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { generatePrivateKey } from "../src/auth/keys.js";
import {
  ApiError,
  ConflictError,
  InvalidOptionsError,
  Mesa,
  type MesaFileSystem,
  MesaFsError,
  NotFoundError,
} from "../src/sdk/index.js";
import { RestClient } from "../src/vcs/rest.js";
import { fixture } from "./helpers/fixture.js";
import { gitSync, run, waitFor } from "./helpers/mount.js";
import { client, importCodeRepo, isolateSdkEnv } from "./helpers/sdk.js";
import type { ServeHandle } from "./helpers/serve.js";
import { authHeader, cloneRepo } from "./helpers/write.js";

let serve: ServeHandle;
let dir: string;
let mesa: Mesa;

/** A repo of its own for one test (tests must not see each other's pushes): its mount path. */
async function fresh(name: string): Promise<string> {
  await importCodeRepo(serve, dir, name);
  return `/local/${name}`;
}

const suite = fixture({ after }, "sdk");

before(async () => {
  dir = suite.dir;
  isolateSdkEnv(suite, join(dir, "home"));
  serve = await suite.serve();
  await importCodeRepo(serve, dir, "code");
  mesa = client(serve);
});

/** Mounts and closes the mount when the test ends (even when it fails). */
async function mounted(
  t: { after(fn: () => Promise<void>): void },
  opts: Parameters<Mesa["fs"]["mount"]>[0],
) {
  const fs = await mesa.fs.mount(opts);
  t.after(() => fs.close().catch(() => undefined));
  return fs;
}

async function rejectsCode(p: Promise<unknown>, code: string, syscall?: string): Promise<void> {
  await assert.rejects(p, (err: unknown) => {
    assert.ok(err instanceof MesaFsError, `expected a MesaFsError, got ${String(err)}`);
    assert.equal(err.code, code, err.message);
    if (syscall) assert.equal(err.syscall, syscall);
    assert.match(err.message, new RegExp(`^${code}: `));
    return true;
  });
}

function serverGit(args: string[]): string {
  return gitSync(dir, ["-c", authHeader(serve.adminKey), ...args]);
}

test("the seeds' complete example: a change, a module, a bash pipeline; the commit is on the server", async () => {
  const R = await fresh("example");
  let changeId: string;
  let commitOid: string;
  {
    await using fs = await mesa.fs.mount({ repos: ["example"] });
    changeId = await fs.changes.new("example", { bookmark: "main" });
    assert.match(changeId, /^[k-z]{32}$/);
    await fs.mkdir(`${R}/src/greet`, { recursive: true });
    const dollar = "$";
    const module = `export function greet(name: string): string {\n  return \`Hello, ${dollar}{name}!\`;\n}\n`;
    await fs.write(`${R}/src/greet/index.ts`, module);
    const bash = fs.bash({ cwd: R, env: { CI: "true" } });
    const r = await bash.exec("grep -c 'Hello' src/greet/index.ts | tr -d '\\n'; echo \" $CI\"");
    assert.deepEqual(r, { stdout: "1 true\n", stderr: "", exitCode: 0 });
    await fs.flush();
    const list = await fs.changes.list("example", { limit: 5 });
    assert.equal(list[0].changeId, changeId);
    commitOid = list[0].commitOid;
  }
  // The real git sees the change's commit with the module, on top of main.
  const bare = join(dir, "check.git");
  gitSync(dir, ["init", "-q", "--bare", bare]);
  gitSync(bare, [
    "-c",
    authHeader(serve.adminKey),
    "fetch",
    "-q",
    `${serve.url}/${serve.org}/example.git`,
    `refs/mesa/changes/${changeId}:refs/heads/change`,
    "main:refs/heads/main",
  ]);
  assert.equal(gitSync(bare, ["rev-parse", "change"]).trim(), commitOid);
  assert.match(gitSync(bare, ["show", "change:src/greet/index.ts"]), /return `Hello, \$\{name\}!`;/);
  assert.equal(gitSync(bare, ["rev-parse", "change^"]).trim(), gitSync(bare, ["rev-parse", "main"]).trim());
  assert.match(gitSync(bare, ["cat-file", "-p", "change"]), new RegExp(`^change-id ${changeId}$`, "m"));
  // main itself did not move: the work is on the new change.
  assert.equal(gitSync(bare, ["ls-tree", "--name-only", "main", "src/greet"]).trim(), "");
});

test("read, write, append, exists, stat, lstat, readdir, realpath, readlink, resolvePath", async (t) => {
  const R = await fresh("methods");
  const fs = await mounted(t, { repos: ["methods"] });
  assert.equal((await fs.read(`${R}/README.md`)).toString(), "# code\n");
  assert.deepEqual([...(await fs.read(`${R}/logo.bin`))], [0x89, 0x50, 0x4e, 0x47, 0, 1, 2, 0xff, 0xfe]);
  await rejectsCode(fs.read(`${R}/missing.txt`), "ENOENT", "open");
  await rejectsCode(fs.read(`${R}/src`), "EISDIR");
  await rejectsCode(fs.read(`${R}/README.md/x`), "ENOTDIR");
  await rejectsCode(fs.read("relative/path"), "EINVAL");
  // symlinks are followed
  assert.equal((await fs.read(`${R}/readme-link`)).toString(), "# code\n");
  assert.equal((await fs.read(`${R}/src-link/m1.ts`)).toString(), "export const v1 = 1;\n");

  await fs.write(`${R}/out.txt`, "Hello!");
  assert.equal((await fs.read(`${R}/out.txt`)).toString(), "Hello!");
  await fs.write(`${R}/out.txt`, new Uint8Array([104, 105]));
  assert.equal((await fs.read(`${R}/out.txt`)).toString(), "hi");
  await rejectsCode(fs.write(`${R}/no/such/dir/f.txt`, "x"), "ENOENT");
  await rejectsCode(fs.write(`${R}/src`, "x"), "EISDIR");
  await fs.append(`${R}/log.txt`, "one\n");
  await fs.append(`${R}/log.txt`, "two\n");
  await fs.append(`${R}/README.md`, "more\n");
  assert.equal((await fs.read(`${R}/log.txt`)).toString(), "one\ntwo\n");
  assert.equal((await fs.read(`${R}/README.md`)).toString(), "# code\nmore\n");

  assert.equal(await fs.exists(`${R}/README.md`), true);
  assert.equal(await fs.exists(`${R}/nope`), false);
  assert.equal(await fs.exists(`${R}/README.md/below`), false);
  assert.equal(await fs.exists("/local/not-mounted"), false);

  const st = await fs.stat(`${R}/run.sh`);
  assert.deepEqual(
    { f: st.isFile, d: st.isDirectory, l: st.isSymbolicLink, mode: st.mode, size: st.size },
    { f: true, d: false, l: false, mode: 0o100755, size: 19 },
  );
  assert.equal(st.mtimeMs, st.mtime.getTime());
  assert.equal((await fs.stat(`${R}/src`)).isDirectory, true);
  assert.equal((await fs.stat(`${R}/readme-link`)).isSymbolicLink, false);
  const l = await fs.lstat(`${R}/readme-link`);
  assert.deepEqual([l.isSymbolicLink, l.mode, l.size], [true, 0o120777, "README.md".length]);
  await rejectsCode(fs.stat(`${R}/nope`), "ENOENT", "stat");
  await rejectsCode(fs.lstat(`${R}/nope`), "ENOENT", "lstat");

  assert.deepEqual((await fs.readdir(`${R}/src`)).sort(), [
    "lib",
    "m1.ts",
    "m11.ts",
    "m3.ts",
    "m5.ts",
    "m7.ts",
    "m9.ts",
  ]);
  assert.deepEqual(await fs.readdir("/local"), ["methods"]);
  await rejectsCode(fs.readdir(`${R}/README.md`), "ENOTDIR", "scandir");
  await rejectsCode(fs.readdir(`${R}/nope`), "ENOENT");

  assert.equal(await fs.realpath(`${R}/src-link/../readme-link`), `${R}/README.md`);
  assert.equal(await fs.realpath(`${R}/src-link/lib`), `${R}/src/lib`);
  await rejectsCode(fs.realpath(`${R}/nope`), "ENOENT", "realpath");
  assert.equal(await fs.readlink(`${R}/src-link`), "src");
  await rejectsCode(fs.readlink(`${R}/README.md`), "EINVAL", "readlink");
  assert.equal(fs.resolvePath(`${R}/src`, "../docs/./notes.md"), `${R}/docs/notes.md`);
  assert.equal(fs.resolvePath(`${R}/src`, "/abs"), "/abs");
});

test("mkdir, rm, cp, mv, chmod, symlink, utimes, link", async (t) => {
  const R = await fresh("mutations");
  const fs = await mounted(t, { repos: ["mutations"] });
  await fs.mkdir(`${R}/a`);
  await rejectsCode(fs.mkdir(`${R}/a`), "EEXIST", "mkdir");
  await rejectsCode(fs.mkdir(`${R}/x/y`), "ENOENT");
  await fs.mkdir(`${R}/a/b/c`, { recursive: true });
  await fs.mkdir(`${R}/a/b/c`, { recursive: true });
  await rejectsCode(fs.mkdir(`${R}/README.md`, { recursive: true }), "EEXIST");
  await rejectsCode(fs.mkdir(`${R}/README.md/d`, { recursive: true }), "ENOTDIR");
  assert.equal((await fs.stat(`${R}/a/b/c`)).isDirectory, true);

  await fs.write(`${R}/a/b/c/f.txt`, "f");
  await rejectsCode(fs.rm(`${R}/a`), "EISDIR", "rm");
  await rejectsCode(fs.rm(`${R}/gone.txt`), "ENOENT");
  await fs.rm(`${R}/gone.txt`, { force: true });
  await fs.rm(`${R}/a`, { recursive: true });
  assert.equal(await fs.exists(`${R}/a`), false);
  await fs.rm(`${R}/docs/notes.md`);
  assert.deepEqual(await fs.readdir(`${R}/docs`), []);

  await fs.cp(`${R}/run.sh`, `${R}/run2.sh`);
  assert.equal((await fs.read(`${R}/run2.sh`)).toString(), "#!/bin/sh\necho run\n");
  assert.equal((await fs.stat(`${R}/run2.sh`)).mode, 0o100755);
  await rejectsCode(fs.cp(`${R}/src`, `${R}/src2`), "EISDIR", "cp");
  await fs.cp(`${R}/src`, `${R}/src2`, { recursive: true });
  assert.deepEqual((await fs.readdir(`${R}/src2/lib`)).sort(), (await fs.readdir(`${R}/src/lib`)).sort());
  assert.equal((await fs.read(`${R}/src2/lib/m0.ts`)).toString(), "export const v0 = 0;\n// TODO: tidy\n");
  await fs.cp(`${R}/readme-link`, `${R}/link2`);
  assert.equal(await fs.readlink(`${R}/link2`), "README.md");
  await rejectsCode(fs.cp(`${R}/nope`, `${R}/x`), "ENOENT");

  await fs.mv(`${R}/run2.sh`, `${R}/bin.sh`);
  assert.equal(await fs.exists(`${R}/run2.sh`), false);
  assert.equal((await fs.read(`${R}/bin.sh`)).toString(), "#!/bin/sh\necho run\n");
  await fs.mv(`${R}/src2`, `${R}/moved`);
  assert.equal((await fs.read(`${R}/moved/m1.ts`)).toString(), "export const v1 = 1;\n");
  await rejectsCode(fs.mv(`${R}/nope`, `${R}/x`), "ENOENT", "rename");

  await fs.chmod(`${R}/README.md`, 0o755);
  assert.equal((await fs.stat(`${R}/README.md`)).mode, 0o100755);
  await rejectsCode(fs.chmod(`${R}/nope`, 0o644), "ENOENT", "chmod");

  await fs.symlink("../README.md", `${R}/src/up`);
  assert.equal(await fs.readlink(`${R}/src/up`), "../README.md");
  assert.equal((await fs.read(`${R}/src/up`)).toString(), "# code\n");
  await rejectsCode(fs.symlink("x", `${R}/README.md`), "EEXIST", "symlink");

  const when = Date.UTC(2024, 0, 2, 3, 4, 5);
  await fs.utimes(`${R}/README.md`, when, when);
  assert.equal((await fs.stat(`${R}/README.md`)).mtimeMs, when);
  await rejectsCode(fs.utimes(`${R}/nope`, when, when), "ENOENT", "utime");

  await rejectsCode(fs.link(`${R}/README.md`, `${R}/hard`), "ENOTSUP", "link");

  // Everything above reaches the server as one working change on main.
  await fs.flush();
  const clone = cloneRepo(serve, "mutations", join(dir, "clone-methods"));
  assert.equal(gitSync(clone, ["show", "HEAD:bin.sh"]), "#!/bin/sh\necho run\n");
  assert.match(gitSync(clone, ["ls-files", "-s", "README.md"]), /^100755 /);
  assert.equal(gitSync(clone, ["ls-files", "docs"]), "");
  assert.equal(gitSync(clone, ["cat-file", "-p", "HEAD:src/up"]), "../README.md");
});

test("read-only repos and mode 'ro' give EROFS for every write", async (t) => {
  const R = await fresh("readonly");
  const fs = await mounted(t, { repos: [{ name: "readonly", readOnly: true }, "code"] });
  await rejectsCode(fs.write(`${R}/README.md`, "x"), "EROFS", "open");
  await rejectsCode(fs.write(`${R}/new.txt`, "x"), "EROFS");
  await rejectsCode(fs.append(`${R}/README.md`, "x"), "EROFS");
  await rejectsCode(fs.mkdir(`${R}/d`), "EROFS");
  await rejectsCode(fs.rm(`${R}/README.md`), "EROFS");
  await rejectsCode(fs.mv(`${R}/README.md`, `${R}/R.md`), "EROFS");
  await rejectsCode(fs.chmod(`${R}/README.md`, 0o600), "EROFS");
  await rejectsCode(fs.symlink("x", `${R}/l`), "EROFS");
  await rejectsCode(fs.changes.new("readonly"), "EROFS");
  assert.equal((await fs.read(`${R}/README.md`)).toString(), "# code\n");
  // The other repo of the same mount stays writable.
  await fs.write("/local/code/w-ro-test.txt", "w");
  assert.equal((await fs.read("/local/code/w-ro-test.txt")).toString(), "w");

  const ro = await mounted(t, { repos: ["readonly", "code"], mode: "ro" });
  await rejectsCode(ro.write("/local/code/x.txt", "x"), "EROFS");
  await rejectsCode(ro.write(`${R}/README.md`, "x"), "EROFS");
});

test("invalid mount options are InvalidOptionsError, before anything is fetched", async () => {
  const cases: Array<[unknown, RegExp]> = [
    [{ repos: [] }, /at least one repository/],
    [{ repos: ["code"], ttl: 0 }, /ttl must be a whole number of seconds from 1 to 86400/],
    [{ repos: ["code"], ttl: 86_401 }, /from 1 to 86400/],
    [{ repos: ["code"], ttl: 1.5 }, /from 1 to 86400/],
    [{ repos: ["code"], mode: "rx" }, /mode must be "rw" or "ro"/],
    [{ repos: ["elsewhere/code"] }, /'elsewhere\/code' is not in organization 'local'/],
    [{ repos: [{ name: "code", bookmark: "main", changeId: "k".repeat(32) }] }, /not both/],
    [{ repos: ["code", "local/code"] }, /listed twice/],
  ];
  for (const [opts, message] of cases)
    await assert.rejects(mesa.fs.mount(opts as never), (err: unknown) => {
      assert.ok(err instanceof InvalidOptionsError, String(err));
      assert.match((err as Error).message, message);
      return true;
    });
  // "org/repo" with the right org is accepted.
  const fs = await mesa.fs.mount({ repos: ["local/code"] });
  await fs.close();
});

test("a mount's token expiry fails closed", async (t) => {
  const R = await fresh("expiry");
  const fs = await mounted(t, { repos: ["expiry"], ttl: 2 });
  assert.ok(fs.expiresAt.getTime() - Date.now() <= 2000);
  assert.equal((await fs.read(`${R}/README.md`)).toString(), "# code\n");
  await new Promise((r) => setTimeout(r, Math.max(0, fs.expiresAt.getTime() - Date.now()) + 200));
  await rejectsCode(fs.read(`${R}/README.md`), "EACCES", "open");
  await rejectsCode(fs.write(`${R}/late.txt`, "x"), "EACCES");
  await assert.rejects(
    fs
      .bash()
      .exec("cat /local/expiry/README.md")
      .then((r) => {
        assert.equal(r.exitCode, 1);
        assert.match(r.stderr, /Permission denied/);
        throw new Error("ok");
      }),
    /ok/,
  );
});

test("bash: find | xargs grep -l | wc -l equals the count on a clone; binary cat fails; timeout", async (t) => {
  await fresh("bash");
  const fs = await mounted(t, { repos: ["bash"] });
  const bash = fs.bash();
  const r = await bash.exec(`
    find /local/bash -name '*.ts' | \\
      xargs grep -l TODO | \\
      wc -l
  `);
  assert.equal(r.exitCode, 0, r.stderr);
  const clone = cloneRepo(serve, "bash", join(dir, "clone-bash"));
  const local = await run("sh", ["-c", "find . -name '*.ts' | xargs grep -l TODO | wc -l"], { cwd: clone });
  assert.equal(Number(r.stdout.trim()), Number(local.stdout.trim()));
  assert.equal(Number(r.stdout.trim()), 4);

  // redirects and cwd; the env is only what is given
  const sh = fs.bash({ cwd: "/local/bash/src", env: { NAME: "mesa" } });
  const w = await sh.exec('echo "hi $NAME" > hi.txt\ncat hi.txt; echo "[$HOME_FROM_HOST]"');
  assert.deepEqual([w.stdout, w.exitCode], ["hi mesa\n[]\n", 0]);
  assert.equal((await fs.read("/local/bash/src/hi.txt")).toString(), "hi mesa\n");

  // /tmp is scratch space in memory, /dev/null a sink, rmdir removes empty directories only
  const scratch = await bash.exec(
    "cd /local/bash; sort README.md > /tmp/s; cat /tmp/s; echo x >> /dev/null; cat /dev/null | wc -c; mkdir e; rmdir e && echo gone; rmdir src",
  );
  assert.deepEqual(
    [scratch.stdout, scratch.stderr],
    ["# code\n0\ngone\n", "rmdir: failed to remove 'src': Directory not empty\n"],
  );
  assert.equal(await fs.exists("/local/bash/e"), false);
  assert.equal(await fs.exists("/local/bash/tmp"), false);
  const bin = await bash.exec("cat /local/bash/logo.bin");
  assert.equal(bin.exitCode, 1);
  assert.equal(bin.stdout, "");
  assert.match(bin.stderr, /logo\.bin: binary file .*use fs\.read\(\)/);

  const slow = fs.bash({ timeoutMs: 300 });
  const t0 = Date.now();
  const loop = await slow.exec("while true; do echo x > /dev/null; done");
  assert.equal(loop.exitCode, 124);
  assert.match(loop.stderr, /deadline \(300ms\)|timed out after 300 ms/);
  assert.ok(Date.now() - t0 < 5000, `the timeout was not enforced: ${Date.now() - t0} ms`);
});

test("changes.edit amends an existing change; bookmarks.list/create; duplicate bookmark is EEXIST", async (t) => {
  const R = await fresh("edit");
  const fs = await mounted(t, { repos: ["edit"] });
  const first = await fs.changes.new("edit", { bookmark: "main" });
  await fs.write(`${R}/one.txt`, "one");
  const second = await fs.changes.new("edit", { changeId: first });
  await fs.write(`${R}/two.txt`, "two");
  assert.equal((await fs.read(`${R}/one.txt`)).toString(), "one");
  // back to the first change: two.txt is not in it; a write amends it
  assert.equal(await fs.changes.edit("edit", { changeId: first }), first);
  assert.equal(await fs.exists(`${R}/two.txt`), false);
  await fs.write(`${R}/one.txt`, "one, amended");
  await fs.flush();
  const amended = await mesa.changes.get("edit", first);
  const bare = join(dir, "edit.git");
  gitSync(dir, ["init", "-q", "--bare", bare]);
  serverGit([
    "-C",
    bare,
    "fetch",
    "-q",
    `${serve.url}/${serve.org}/edit.git`,
    `refs/mesa/changes/${first}:refs/heads/first`,
  ]);
  assert.equal(gitSync(bare, ["rev-parse", "first"]).trim(), amended.current_commit_oid);
  assert.equal(gitSync(bare, ["show", "first:one.txt"]), "one, amended");
  assert.equal(gitSync(bare, ["cat-file", "-p", "first"]).match(/^parent /gm)?.length, 1);
  await assert.rejects(fs.changes.edit("edit", { changeId: "z".repeat(32) }), NotFoundError);
  await assert.rejects(fs.changes.edit("edit", {}), InvalidOptionsError);
  assert.notEqual(second, first);

  await fs.bookmarks.create("edit", "feature-x");
  const names = await fs.bookmarks.list("edit");
  assert.deepEqual(names.sort(), ["feature-x", "main"]);
  const marks = await mesa.bookmarks.list("edit");
  assert.equal(marks.find((b) => b.name === "feature-x")?.change_id, first);
  await rejectsCode(fs.bookmarks.create("edit", "feature-x"), "EEXIST");
});

test("subscribe: a push from outside shows through the mount and fires the handler", async (t) => {
  await fresh("sub");
  const fs = await mounted(t, { repos: ["sub"] });
  const events: Array<{ path: string; recursive: boolean }> = [];
  const off = fs.subscribe((e) => events.push(e));
  const clone = cloneRepo(serve, "sub", join(dir, "clone-sub"));
  gitSync(clone, ["rm", "-q", "README.md"]);
  gitSync(clone, ["mv", "src/m1.ts", "src/m1-renamed.ts"]);
  gitSync(clone, ["commit", "-q", "-m", "outside"]);
  gitSync(clone, ["-c", authHeader(serve.adminKey), "push", "-q", "origin", "main"]);
  const t0 = Date.now();
  assert.ok(
    await waitFor(() => events.some((e) => e.path === "/local/sub/README.md"), 3000, 50),
    JSON.stringify(events),
  );
  t.diagnostic(`subscribe fired after ${Date.now() - t0} ms`);
  assert.equal(await fs.exists("/local/sub/README.md"), false);
  assert.equal(await fs.exists("/local/sub/src/m1-renamed.ts"), true);
  const paths = events.map((e) => e.path).sort();
  for (const p of ["/local/sub", "/local/sub/src", "/local/sub/src/m1.ts", "/local/sub/src/m1-renamed.ts"])
    assert.ok(paths.includes(p), `${p} missing from ${JSON.stringify(paths)}`);
  off();
  const n = events.length;
  writeAndPush(clone, "late.txt");
  assert.ok(await waitFor(() => fs.exists("/local/sub/late.txt"), 3000, 50));
  assert.equal(events.length, n, "an unsubscribed handler was called");
});

function writeAndPush(clone: string, file: string): void {
  writeFileSync(join(clone, file), file);
  gitSync(clone, ["add", file]);
  gitSync(clone, ["commit", "-q", "-m", file]);
  gitSync(clone, ["-c", authHeader(serve.adminKey), "push", "-q", "origin", "main"]);
}

test("REST: repos, API keys, tokens, bookmarks, changes; errors carry status and the server's code", async () => {
  await fresh("rest");
  const created = await mesa.repos.create({ name: "made" });
  assert.equal(created.name, "made");
  const names = (await mesa.repos.list()).map((r) => r.name);
  assert.ok(names.includes("made") && names.includes("rest"), JSON.stringify(names));
  assert.equal((await mesa.repos.get("local/made")).default_bookmark, "main");
  await assert.rejects(mesa.repos.create({ name: "made" }), (err: unknown) => {
    assert.ok(err instanceof ConflictError);
    assert.equal(err.status, 409);
    assert.equal(err.code, "CONFLICT");
    return true;
  });
  await mesa.repos.delete("made");
  await assert.rejects(mesa.repos.get("made"), (err: unknown) => {
    assert.ok(err instanceof NotFoundError && err instanceof ApiError);
    assert.deepEqual([err.status, err.code], [404, "NOT_FOUND"]);
    return true;
  });

  const key = await mesa.apiKeys.create({
    name: "sandbox",
    scopes: ["read"],
    expiresInSeconds: 600,
    repos: ["code"],
  });
  assert.match(key.key, /\S{20,}/);
  assert.deepEqual(key.repos, ["local/code"]);
  assert.ok((await mesa.apiKeys.list()).some((k) => k.id === key.id && !k.revoked));
  assert.equal((await mesa.apiKeys.revoke(key.id)).revoked, true);

  const { token, expiresAt } = await mesa.tokens.create({
    scopes: ["read"],
    repos: ["code"],
    ttlSeconds: 120,
  });
  assert.ok(Math.abs(expiresAt.getTime() - Date.now() - 120_000) < 5000);
  const { Mesa: MesaClass } = await import("../src/sdk/index.js");
  const scoped = new MesaClass({ apiKey: token, org: "local", serviceUrl: serve.url });
  assert.deepEqual(
    (await scoped.repos.list()).map((r) => r.name),
    ["code"],
  );
  await assert.rejects(mesa.tokens.create({ ttlSeconds: 0 }), InvalidOptionsError);
  // The original SDK's spellings work too.
  const seedKey = await mesa.apiKeys.create({ name: "seed", scopes: ["read"], expires_in_seconds: 60 });
  assert.ok(seedKey.expires_at && Math.abs(Date.parse(seedKey.expires_at) - Date.now() - 60_000) < 5000);
  const seedToken = await mesa.tokens.create({ scopes: ["read"], repos: ["local/code"], ttl_seconds: 30 });
  assert.ok(Math.abs(seedToken.expiresAt.getTime() - Date.now() - 30_000) < 5000);

  const head = (await mesa.bookmarks.list("rest")).find((b) => b.name === "main")?.change_id as string;
  const change = await mesa.changes.create("rest", {
    baseChangeId: head,
    message: "via REST",
    files: { "rest.txt": "from REST" },
  });
  assert.equal((await mesa.changes.get("rest", change.id)).message, "via REST\n");
  await mesa.bookmarks.create("rest", { name: "side", changeId: change.id });
  assert.equal((await mesa.changes.list("rest", { bookmark: "side", limit: 1 }))[0].id, change.id);
  const merged = await mesa.bookmarks.merge("rest", { target: "main", source: "side", deleteSource: true });
  assert.deepEqual([merged.merge_type, merged.source_deleted], ["fast_forward", true]);
  await assert.rejects(
    mesa.bookmarks.move("rest", "main", { changeId: head }),
    (err: unknown) => err instanceof ConflictError && err.code === "NOT_FAST_FORWARD",
  );
  await mesa.bookmarks.move("rest", "main", { changeId: head, allowBackwards: true });
  await mesa.bookmarks.create("rest", { name: "tmp", changeId: head });
  assert.equal((await mesa.bookmarks.delete("rest", "tmp")).name, "tmp");
});

test("MesaFileSystem: close pushes what is pending; a closed filesystem refuses calls", async () => {
  const R = await fresh("closing");
  const fs: MesaFileSystem = await mesa.fs.mount({ repos: ["closing"] });
  await fs.write(`${R}/at-close.txt`, "pushed by close");
  await fs.close();
  await rejectsCode(fs.read(`${R}/README.md`), "EBADF");
  const clone = cloneRepo(serve, "closing", join(dir, "clone-close"));
  assert.equal(gitSync(clone, ["show", "HEAD:at-close.txt"]), "pushed by close");
});

test('the package\'s main export is the SDK: import { Mesa } from "mesa-fs"', async () => {
  // A variable specifier: the package resolves to its own build output only at run time.
  const specifier = "mesa-fs";
  const pkg = (await import(specifier)) as typeof import("../src/sdk/index.js");
  const own = await import("../src/sdk/index.js");
  assert.equal(pkg.Mesa, own.Mesa);
  assert.equal(pkg.MesaFsError, MesaFsError);
  assert.equal(pkg.InvalidOptionsError, InvalidOptionsError);
});

test("the SDK runs where the FUSE binding cannot load, with options from the environment", async (t) => {
  await fresh("nofuse");
  const hook = join(dir, "no-fuse-hook.mjs");
  writeFileSync(
    hook,
    `import { registerHooks } from "node:module";
registerHooks({
  resolve(specifier, context, next) {
    if (["/fuse/adapter.js", "/fuse/native.js", ".node"].some((end) => specifier.endsWith(end)))
      throw new Error("the FUSE binding is not loadable here: " + specifier);
    return next(specifier, context);
  },
});
`,
  );
  const script = join(dir, "no-fuse.mjs");
  const sdk = new URL("../src/sdk/index.js", import.meta.url).href;
  const adapter = new URL("../src/fuse/adapter.js", import.meta.url).href;
  writeFileSync(
    script,
    `const adapter = await import(${JSON.stringify(adapter)}).then(() => "loaded", (e) => e.message);
const { Mesa } = await import(${JSON.stringify(sdk)});
const mesa = new Mesa();
const fs = await mesa.fs.mount({ repos: ["nofuse"] });
await fs.write("/local/nofuse/from-child.txt", "no fuse needed\\n");
const back = (await fs.read("/local/nofuse/from-child.txt")).toString();
const wc = await fs.bash({ cwd: "/local/nofuse" }).exec("cat from-child.txt README.md | wc -l");
await fs.close();
const { existsSync } = await import("node:fs");
process.stdout.write(JSON.stringify({ adapter, back, wc: wc.stdout.trim(), devFuse: existsSync("/dev/fuse") }));
`,
  );
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH,
    HOME: join(dir, "child-home"),
    MESA_NO_CONFIG_FILE: "1",
    MESA_ORG: serve.org,
    MESA_API_KEY: serve.adminKey,
    MESA_SERVICE_URL: serve.url,
  };
  // As root, also in a mount namespace whose /dev is empty: no /dev/fuse at all.
  const isolate = process.getuid?.() === 0 && (await run("unshare", ["--version"])).code === 0;
  const node = [process.execPath, "--import", hook, script].map((a) => `'${a}'`).join(" ");
  const r = isolate
    ? await run(
        "unshare",
        ["--mount", "--propagation", "private", "sh", "-c", `mount -t tmpfs none /dev && exec ${node}`],
        {
          env,
          timeoutMs: 60_000,
        },
      )
    : await run(process.execPath, ["--import", hook, script], { env, timeoutMs: 60_000 });
  assert.equal(r.code, 0, r.stderr);
  const out = JSON.parse(r.stdout) as { adapter: string; back: string; wc: string; devFuse: boolean };
  if (isolate) assert.equal(out.devFuse, false);
  t.diagnostic(isolate ? "ran in a mount namespace without /dev/fuse" : "ran without the FUSE binding only");
  assert.match(out.adapter, /the FUSE binding is not loadable here/);
  assert.equal(out.back, "no fuse needed\n");
  assert.equal(out.wc, "2");
  const clone = cloneRepo(serve, "nofuse", join(dir, "clone-nofuse"));
  assert.equal(gitSync(clone, ["show", "HEAD:from-child.txt"]), "no fuse needed\n");
});

test("a private key: the org comes from it, REST and mounts run on tokens it signs", async (t) => {
  const R = await fresh("signed");
  const pk = generatePrivateKey("local");
  const admin = new RestClient({ serviceUrl: serve.url, credential: serve.adminKey });
  try {
    await admin.request("POST", "/local/public-keys", { body: { public_key: pk.publicX, name: "sdk" } });
  } finally {
    await admin.close();
  }
  const signed = new Mesa({ privateKey: pk.key, serviceUrl: serve.url });
  assert.equal(await signed.org(), "local");
  assert.ok((await signed.repos.list()).some((r) => r.name === "signed"));
  const { token } = await signed.tokens.create({ scopes: ["read"], repos: ["signed"], ttlSeconds: 60 });
  const who = new RestClient({ serviceUrl: serve.url, credential: token });
  try {
    assert.deepEqual((await who.whoami()).repos, ["local/signed"]);
  } finally {
    await who.close();
  }
  const fs = await signed.fs.mount({ repos: ["signed"], ttl: 600 });
  t.after(() => fs.close().catch(() => undefined));
  await fs.write(`${R}/signed.txt`, "by a private key");
  await fs.flush();
  assert.equal(
    gitSync(cloneRepo(serve, "signed", join(dir, "clone-signed")), ["show", "HEAD:signed.txt"]),
    "by a private key",
  );
  assert.throws(() => new Mesa({ privateKey: pk.key, org: "other" }), InvalidOptionsError);
  assert.throws(() => new Mesa({ privateKey: "nope" }), /privateKey must be a mesa_private_key_/);
});

test("diskCache keeps file contents on disk", async (t) => {
  const R = await fresh("cached");
  const cache = join(dir, "sdk-cache");
  const fs = await mounted(t, { repos: ["cached"], diskCache: { path: cache, maxSizeBytes: 50_000_000 } });
  assert.equal((await fs.read(`${R}/README.md`)).toString(), "# code\n");
  const files = (await run("find", [cache, "-type", "f"])).stdout.split("\n").filter(Boolean);
  assert.ok(files.length > 0, "nothing was cached on disk");
  await assert.rejects(
    mesa.fs.mount({ repos: ["cached"], diskCache: { path: "" } }),
    /diskCache\.path must name a directory/,
  );
});
