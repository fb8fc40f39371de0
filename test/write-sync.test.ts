/**
 * Others' updates (SPEC §9): two daemons on one bookmark see each other's edits within 5 s,
 * concurrent edits to different files both survive, to the same file give conflict markers;
 * a `git push` from outside is picked up with local pending edits rebased on top.
 */
import assert from "node:assert/strict";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { fixture } from "./helpers/fixture.js";
import { gitSync, waitFor } from "./helpers/mount.js";
import { authHeader, cloneRepo, type Daemon, importSmallRepo, waitPushed } from "./helpers/write.js";

test("two daemons on one bookmark see each other's edits; same-file races keep both sides", async (t) => {
  const fx = fixture(t, "write-two");
  const dir = fx.dir;
  const serve = await fx.serve();
  await importSmallRepo(serve, dir, "shared");
  const a = await fx.daemon(serve, { name: "a" });
  const b = await fx.daemon(serve, { name: "b" });
  const cat = async (d: Daemon, file: string) => (await d.sh("shared", `cat ${file} 2>/dev/null`)).stdout;

  // a → b within 5 s
  assert.equal((await a.sh("shared", "printf from-a > a.txt")).code, 0);
  let t0 = Date.now();
  assert.ok(
    await waitFor(async () => (await cat(b, "a.txt")) === "from-a", 20_000, 100),
    "b never saw a.txt",
  );
  t.diagnostic(`a → b: ${Date.now() - t0} ms`);
  // b → a within 5 s (b's edit is a new change on top of a's)
  assert.equal((await b.sh("shared", "printf from-b > b.txt")).code, 0);
  t0 = Date.now();
  assert.ok(
    await waitFor(async () => (await cat(a, "b.txt")) === "from-b", 20_000, 100),
    "a never saw b.txt",
  );
  t.diagnostic(`b → a: ${Date.now() - t0} ms`);

  // Concurrent edits of different files both survive.
  await Promise.all([a.sh("shared", "printf one > c1.txt"), b.sh("shared", "printf two > c2.txt")]);
  for (const d of [a, b])
    assert.ok(
      await waitFor(
        async () => (await cat(d, "c1.txt")) === "one" && (await cat(d, "c2.txt")) === "two",
        10_000,
        200,
      ),
      "concurrent edits to different files were not both kept",
    );

  // Concurrent edits of the same file: both versions kept with conflict markers.
  await Promise.all([waitPushed(a, "shared"), waitPushed(b, "shared")]);
  await Promise.all([
    a.sh("shared", "printf 'a1\\nA-SIDE\\na3\\n' > sub/a.txt"),
    b.sh("shared", "printf 'a1\\nB-SIDE\\na3\\n' > sub/a.txt"),
  ]);
  const both = async (d: Daemon) => {
    const text = await cat(d, "sub/a.txt");
    return text.includes("<<<<<<< Conflict 1 of 1") && text.includes("A-SIDE") && text.includes("B-SIDE");
  };
  assert.ok(
    await waitFor(async () => (await both(a)) && (await both(b)), 15_000, 250),
    `no conflict markers: a=${await cat(a, "sub/a.txt")} b=${await cat(b, "sub/a.txt")}`,
  );
  const reported = [...(await a.status()).writes, ...(await b.status()).writes].flatMap(
    (w) => w.conflicts ?? [],
  );
  assert.ok(reported.includes("sub/a.txt"), JSON.stringify(reported));
  const withErrors = [...(await a.status()).errors, ...(await b.status()).errors];
  assert.ok(
    withErrors.some((e) => /conflict in sub\/a\.txt/.test(e)),
    JSON.stringify(withErrors),
  );

  // Nothing was lost on the server.
  await Promise.all([waitPushed(a, "shared"), waitPushed(b, "shared")]);
  const clone = cloneRepo(serve, "shared", join(dir, "clone"));
  for (const [f, want] of [
    ["a.txt", "from-a"],
    ["b.txt", "from-b"],
    ["c1.txt", "one"],
    ["c2.txt", "two"],
  ])
    assert.equal(readFileSync(join(clone, f), "utf8"), want);
  const conflicted = readFileSync(join(clone, "sub/a.txt"), "utf8");
  assert.match(conflicted, /A-SIDE/);
  assert.match(conflicted, /B-SIDE/);
  assert.match(conflicted, /^%%%%%%% Changes from base to side #1/m);
  assert.match(conflicted, /^\+\+\+\+\+\+\+ Contents of side #2/m);
  assert.match(conflicted, /^>>>>>>> Conflict 1 of 1 ends$/m);
});

test("a git push from outside is picked up; local pending edits are rebased on top", async (t) => {
  const fx = fixture(t, "write-ext");
  const dir = fx.dir;
  const serve = await fx.serve();
  await importSmallRepo(serve, dir, "ext");
  const d = await fx.daemon(serve);
  const clone = cloneRepo(serve, "ext", join(dir, "clone"));
  writeFileSync(join(clone, "remote.txt"), "remote\n");
  writeFileSync(join(clone, "README.md"), "hello from git\n");
  gitSync(clone, ["add", "-A"]);
  gitSync(clone, ["commit", "-q", "-m", "external"]);
  const external = gitSync(clone, ["rev-parse", "HEAD"]).trim();

  // A local edit still inside the debounce window, then the external push.
  assert.equal((await d.sh("ext", "printf local > local.txt")).code, 0);
  gitSync(clone, ["-c", authHeader(serve.adminKey), "push", "-q", "origin", "main"]);

  const root = d.root("ext");
  assert.ok(
    await waitFor(
      async () =>
        (await d.sh("ext", "cat remote.txt README.md local.txt")).stdout === "remote\nhello from git\nlocal",
      10_000,
      200,
    ),
    `mount did not pick up the push: ${(await d.sh("ext", "ls; cat README.md")).stdout} in ${root}`,
  );
  await waitPushed(d, "ext");
  gitSync(clone, ["-c", authHeader(serve.adminKey), "pull", "-q", "--ff-only", "origin", "main"]);
  assert.equal(readFileSync(join(clone, "local.txt"), "utf8"), "local");
  assert.equal(
    gitSync(clone, ["rev-parse", "HEAD^"]).trim(),
    external,
    "the local change is on top of the pushed commit",
  );
  assert.match(gitSync(clone, ["cat-file", "-p", "HEAD"]), /^change-id [k-z]{32}$/m);
});
