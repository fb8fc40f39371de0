/**
 * Ids through the real CLI against a real `mesa serve`: every id `mesa log` prints is taken back
 * by `show` and `bookmark`, unique prefixes resolve, an ambiguous one lists its candidates;
 * `show` prints the same change id as `log` for a commit pushed with plain Git; and
 * `show --git` is a patch `git apply` accepts (symlink, mode change, no final newline).
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { test } from "node:test";
import { historyRepo, TWIN_M, TWIN_N } from "./helpers/cli.js";
import { fixture } from "./helpers/fixture.js";
import { gitSync, mesa, mesaEnv, run } from "./helpers/mount.js";

test("ids: log's ids and unique prefixes resolve in show and bookmark; ambiguous prefixes list candidates; show --git applies", async (t) => {
  const fx = fixture(t, "ids");
  const dir = fx.dir;
  const serve = await fx.serve();
  const src = historyRepo(join(dir, "src"));
  await serve.importRepo("local/app", src.dir);
  const env = mesaEnv(dir, { MESA_ORG: "local", MESA_API_KEY: serve.adminKey, MESA_SERVICE_URL: serve.url });
  const repo = ["--org", "local", "--repo", "app"];

  const log = await mesa(["log", ...repo], env);
  assert.equal(log.code, 0, log.stderr);
  const rows = log.stdout
    .trim()
    .split("\n")
    .map((l) => l.split(" "));
  assert.equal(rows.length, 4);
  assert.deepEqual(
    rows.slice(0, 2).map((r) => r[0]),
    [TWIN_N.slice(0, 12), TWIN_M.slice(0, 12)],
  );
  const [secondChange, secondCommit] = rows[2]!;
  const [firstChange] = rows[3]!;
  assert.equal(secondCommit, src.second.slice(0, 12));

  // The 12-character change id and commit id that log prints, and a 4-character prefix.
  const expected = "README.md\na.txt\nb.txt\nlink\nrun.sh\n";
  for (const id of [secondChange!, secondCommit!, secondCommit!.slice(0, 4), src.second]) {
    const r = await mesa(["show", id, ...repo, "--name-only"], env);
    assert.equal(r.code, 0, `show ${id}: ${r.stderr}`);
    assert.equal(r.stdout, expected, `show ${id}`);
  }

  // show prints the change id log prints, also for a commit pushed without a change-id header.
  const head = await mesa(["show", secondCommit!, ...repo, "--no-patch"], env);
  const shown = /^Change ID: ([k-z]{32})$/m.exec(head.stdout)?.[1];
  assert.ok(shown?.startsWith(secondChange!), head.stdout);
  const twin = await mesa(["show", "kkkkm", ...repo, "--no-patch"], env);
  assert.match(twin.stdout, new RegExp(`^Change ID: ${TWIN_M}$`, "m"));

  const amb = await mesa(["show", "kkkk", ...repo], env);
  assert.equal(amb.code, 2);
  assert.match(amb.stderr, /^mesa: change id prefix 'kkkk' is ambiguous in local\/app: it matches 2$/m);
  assert.match(amb.stderr, new RegExp(`^  ${TWIN_M.slice(0, 12)}  commit [0-9a-f]{12}$`, "m"));
  assert.match(amb.stderr, new RegExp(`^  ${TWIN_N.slice(0, 12)}  commit [0-9a-f]{12}$`, "m"));
  assert.match(amb.stderr, /^use more characters$/m);

  const short = await mesa(["show", "kkk", ...repo], env);
  assert.equal(short.code, 1);
  assert.equal(
    short.stderr,
    "mesa: no bookmark, change or commit 'kkk' in local/app: ids need at least 4 characters\n",
  );

  // bookmark create/move take the same ids: a change prefix, a commit prefix.
  const create = await mesa(["bookmark", "create", "feat", "-r", firstChange!, ...repo], env);
  assert.equal(create.code, 0, create.stderr);
  const move = await mesa(["bookmark", "move", "feat", "--to", secondCommit!.slice(0, 8), ...repo], env);
  assert.equal(move.code, 0, move.stderr);
  assert.match(
    move.stdout,
    new RegExp(`^moved bookmark feat from ${firstChange}[k-z]{20} to ${shown}$`, "m"),
  );
  const back = await mesa(["bookmark", "move", "feat", "--to", firstChange!, ...repo], env);
  assert.equal(back.code, 1);
  assert.match(back.stderr, /does not advance its history: pass --allow-backwards to move it anyway\n$/);
  assert.doesNotMatch(back.stderr, /allow_backwards/);

  // show --git: git apply on the first commit's checkout reproduces the second commit's tree.
  const patch = await mesa(["show", secondChange!, ...repo, "--git"], env);
  assert.equal(patch.code, 0, patch.stderr);
  assert.match(patch.stdout, /^\\ No newline at end of file$/m);
  assert.match(patch.stdout, /^diff --git a\/link b\/link\nindex [0-9a-f]{7}\.\.[0-9a-f]{7} 120000$/m);
  assert.match(patch.stdout, /^old mode 100644\nnew mode 100755$/m);
  const work = join(dir, "work");
  gitSync(dir, ["clone", "-q", src.dir, work]);
  gitSync(work, ["checkout", "-q", src.first]);
  const patchFile = join(dir, "second.patch");
  await run("sh", ["-c", `cat > '${patchFile}'`], { input: patch.stdout });
  const check = await run("git", ["apply", "--check", patchFile], { cwd: work });
  assert.equal(check.code, 0, `git apply --check: ${check.stderr}\n${patch.stdout}`);
  const apply = await run("git", ["apply", patchFile], { cwd: work });
  assert.equal(apply.code, 0, apply.stderr);
  gitSync(work, ["add", "-A"]);
  assert.equal(
    gitSync(work, ["write-tree"]).trim(),
    gitSync(src.dir, ["rev-parse", `${src.second}^{tree}`]).trim(),
  );
});
