/**
 * The SDK beside the FUSE daemon: both on one bookmark see each other's edits within 3 s and
 * `subscribe` fires; `mesa edit <change-id>` checks out an existing change in the mount.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { test } from "node:test";
import { fixture } from "./helpers/fixture.js";
import { gitSync, mesa, waitFor } from "./helpers/mount.js";
import { client, isolateSdkEnv } from "./helpers/sdk.js";
import { authHeader, importSmallRepo, waitPushed } from "./helpers/write.js";

test("an SDK filesystem and a FUSE mount on one bookmark see each other's edits within 3 s", async (t) => {
  const fx = fixture(t, "sdk-fuse");
  const dir = fx.dir;
  isolateSdkEnv(fx, join(dir, "home"));
  const serve = await fx.serve();
  await importSmallRepo(serve, dir, "shared");
  const d = await fx.daemon(serve);
  const fs = await client(serve).fs.mount({ repos: ["shared"] });
  fx.defer(() => fs.close().catch(() => undefined));
  const events: string[] = [];
  fs.subscribe((e) => events.push(e.path));

  await fs.write("/local/shared/from-sdk.txt", "sdk\n");
  let t0 = Date.now();
  assert.ok(
    await waitFor(
      async () => (await d.sh("shared", "cat from-sdk.txt 2>/dev/null")).stdout === "sdk\n",
      3000,
      100,
    ),
    "the FUSE mount did not see the SDK's write within 3 s",
  );
  t.diagnostic(`SDK → FUSE: ${Date.now() - t0} ms`);

  assert.equal((await d.sh("shared", "printf 'fuse\\n' > from-fuse.txt")).code, 0);
  t0 = Date.now();
  assert.ok(
    await waitFor(
      async () =>
        (await fs.exists("/local/shared/from-fuse.txt")) && events.includes("/local/shared/from-fuse.txt"),
      3000,
      50,
    ),
    `the SDK did not see the FUSE write within 3 s (events ${JSON.stringify(events)})`,
  );
  t.diagnostic(`FUSE → SDK: ${Date.now() - t0} ms`);
  assert.equal((await fs.read("/local/shared/from-fuse.txt")).toString(), "fuse\n");
  assert.ok(!events.includes("/local/shared/from-sdk.txt"), "the SDK's own write was reported as others'");
});

test("mesa edit <change-id> checks out an existing change; later writes amend it", async (t) => {
  const fx = fixture(t, "mesa-edit");
  const dir = fx.dir;
  const serve = await fx.serve();
  await importSmallRepo(serve, dir, "ed");
  const d = await fx.daemon(serve);
  const base = gitSync(dir, [
    "-c",
    authHeader(serve.adminKey),
    "ls-remote",
    `${serve.url}/${serve.org}/ed.git`,
    "main",
  ]).slice(0, 40);

  assert.equal((await d.sh("ed", "printf one > one.txt")).code, 0);
  await waitPushed(d, "ed");
  const first = (await d.status()).writes.find((w) => w.repo === "ed")?.changeId as string;
  assert.match(first, /^[k-z]{32}$/);
  assert.equal((await mesa(["new", "--org", serve.org, "--repo", "ed"], d.env)).code, 0);
  assert.equal((await d.sh("ed", "printf two > two.txt")).code, 0);
  await waitPushed(d, "ed");

  const r = await mesa(["edit", first, "--org", serve.org, "--repo", "ed"], d.env);
  assert.equal(r.code, 0, r.stderr);
  assert.match(
    r.stdout,
    new RegExp(`^local/ed: editing change ${first} \\(commit [0-9a-f]{12}\\); writes amend it\\n$`),
  );
  assert.equal((await d.sh("ed", "cat one.txt; test -e two.txt && echo two-is-there")).stdout, "one");
  assert.equal((await d.sh("ed", "printf 'one, amended' > one.txt")).code, 0);
  await waitPushed(d, "ed");
  const bare = join(dir, "check.git");
  gitSync(dir, ["init", "-q", "--bare", bare]);
  gitSync(bare, [
    "-c",
    authHeader(serve.adminKey),
    "fetch",
    "-q",
    `${serve.url}/${serve.org}/ed.git`,
    `refs/mesa/changes/${first}:refs/heads/first`,
  ]);
  assert.equal(gitSync(bare, ["show", "first:one.txt"]), "one, amended");
  assert.equal(gitSync(bare, ["rev-parse", "first^"]).trim(), base, "the amended change keeps its parent");
  assert.match(gitSync(bare, ["cat-file", "-p", "first"]), new RegExp(`^change-id ${first}$`, "m"));

  // The same errors as `mesa new`, plus a clear one for a malformed or unknown id.
  const bad = await mesa(["edit", "not-an-id", "--org", serve.org, "--repo", "ed"], d.env);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /'not-an-id' is not a change id: a change id is 32 letters k-z/);
  const unknown = await mesa(["edit", "k".repeat(32), "--org", serve.org, "--repo", "ed"], d.env);
  assert.equal(unknown.code, 1);
  assert.match(unknown.stderr, new RegExp(`change ${"k".repeat(32)} not found in local/ed`));
  const notMounted = await mesa(["edit", first, "--org", serve.org, "--repo", "nope"], d.env);
  assert.equal(notMounted.code, 1);
  assert.match(notMounted.stderr, /local\/nope is not a writable mounted repo/);
  await d.stop();
  const stopped = await mesa(["edit", first, "--org", serve.org, "--repo", "ed"], d.env);
  assert.equal(stopped.code, 1);
  assert.match(stopped.stderr, /mesa is not running: start it with `mesa mount -d`/);
});
