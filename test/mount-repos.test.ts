/**
 * Which repos a mount shows and at which revision, against a real `mesa serve`:
 * `all` mode lists the backend's repos, `repo close`/`repo open` change a live mount,
 * explicit mode shows only configured repos, and a change-id pin mounts that exact
 * commit read-only.
 */
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { fixture } from "./helpers/fixture.js";
import { generateRepo, gitSync, mesa, run, stopSandbox } from "./helpers/mount.js";

test("all vs explicit, repo open/close live, pin by change id", async (t) => {
  const fx = fixture(t, "mountrepos");
  const dir = fx.dir;
  const serve = await fx.serve();
  const a = join(dir, "a");
  generateRepo(a, { files: 30 });
  const firstCommit = gitSync(a, ["rev-parse", "HEAD"]).trim();
  writeFileSync(join(a, "second.txt"), "added later\n");
  gitSync(a, ["add", "second.txt"]);
  gitSync(a, ["commit", "-q", "-m", "second"]);
  generateRepo(join(dir, "b"), { files: 10, seed: 7 });
  await serve.importRepo("local/a", a);
  await serve.importRepo("local/b", join(dir, "b"));
  const base = { MESA_ORG: "local", MESA_API_KEY: serve.adminKey, MESA_SERVICE_URL: serve.url };

  // all mode: every repo of the org; close and open one live.
  const all = fx.sandbox("all", base);
  assert.equal((await mesa(["mount", "-d"], all)).code, 0);
  const orgDir = join(all.MESA_MOUNT_POINT as string, "local");
  assert.deepEqual((await run("ls", [orgDir])).stdout.trim().split("\n"), ["a", "b"]);
  const close = await mesa(["repo", "close", "b", "--org", "local"], all);
  assert.equal(close.code, 0, close.stderr);
  assert.deepEqual((await run("ls", [orgDir])).stdout.trim().split("\n"), ["a"]);
  const open = await mesa(["repo", "open", "b", "--org", "local"], all);
  assert.equal(open.code, 0, open.stderr);
  assert.deepEqual((await run("ls", [orgDir])).stdout.trim().split("\n"), ["a", "b"]);
  assert.equal((await run("cat", [join(orgDir, "b", "README.md")])).stdout, "# generated\n");
  await stopSandbox(all);

  // explicit mode, pinned to the change of the first commit.
  const res = await fetch(`${serve.url}/v1/local/a/changes?bookmark=main`, {
    headers: { authorization: `Bearer ${serve.adminKey}` },
  });
  const changes = ((await res.json()) as { changes: Array<{ id: string; current_commit_oid: string }> })
    .changes;
  const pinned = changes.find((c) => c.current_commit_oid === firstCommit);
  assert.ok(pinned, `no change for ${firstCommit} in ${JSON.stringify(changes)}`);
  const config = join(dir, "config.toml");
  writeFileSync(
    config,
    `[organizations.local]\nmount = "explicit"\n[organizations.local.repos.a]\nrev = { change-id = "${pinned.id}" }\n`,
  );
  const explicit = fx.sandbox("explicit", base);
  delete explicit.MESA_NO_CONFIG_FILE;
  const up = await mesa(["--config-path", config, "mount", "-d"], explicit);
  assert.equal(up.code, 0, up.stderr);
  const eOrg = join(explicit.MESA_MOUNT_POINT as string, "local");
  assert.deepEqual((await run("ls", [eOrg])).stdout.trim().split("\n"), ["a"]);
  const second = await run("cat", [join(eOrg, "a", "second.txt")], { env: { ...process.env, LC_ALL: "C" } });
  assert.deepEqual(
    [second.code, second.stderr],
    [1, `cat: ${join(eOrg, "a", "second.txt")}: No such file or directory\n`],
  );
  assert.equal((await run("cat", [join(eOrg, "a", "README.md")])).stdout, "# generated\n");
  const w = await run("touch", [join(eOrg, "a", "new.txt")], { env: { ...process.env, LC_ALL: "C" } });
  assert.deepEqual(
    [w.code, w.stderr],
    [1, `touch: cannot touch '${join(eOrg, "a", "new.txt")}': Read-only file system\n`],
  );
  const status = JSON.parse((await mesa(["--config-path", config, "status", "--json"], explicit)).stdout) as {
    repos: Array<{ repo: string; revision: string; commit: string; read_only: boolean }>;
  };
  assert.deepEqual(
    status.repos.map((r) => [r.repo, r.revision, r.commit, r.read_only]),
    [["a", `change-id:${pinned.id}`, firstCommit, true]],
  );

  // repo open on an explicit org records it in the config file and mounts it live.
  const openB = await mesa(["--config-path", config, "repo", "open", "b", "--org", "local"], explicit);
  assert.equal(openB.code, 0, openB.stderr);
  assert.match(
    (await run("cat", [config])).stdout,
    /repos\.b\]|repos\.b =|\[organizations\.local\.repos\.b\]/,
  );
  assert.deepEqual((await run("ls", [eOrg])).stdout.trim().split("\n"), ["a", "b"]);
});
