/**
 * Errors through the real CLI name the cause and the fix with the sentences docs/cli.md
 * documents; `repo open|close` edit config.toml in place and write nothing for a repo the
 * server does not have.
 */
import assert from "node:assert/strict";
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { documentedError } from "./helpers/cli.js";
import { fixture } from "./helpers/fixture.js";
import { generateRepo, MESA_BIN, mesa, mesaEnv, run, waitFor } from "./helpers/mount.js";

test("errors: non-empty mount point, file as mount point, unreachable server, expired token, unknown repo", async (t) => {
  const fx = fixture(t, "errors");
  const dir = fx.dir;
  const serve = await fx.serve();
  generateRepo(join(dir, "src"), { files: 5 });
  await serve.importRepo("local/app", join(dir, "src"));
  const base = { MESA_ORG: "local", MESA_API_KEY: serve.adminKey, MESA_SERVICE_URL: serve.url };

  // A mount point that holds a file: refused before FUSE is asked, and doctor says the same.
  const full = fx.sandbox("full", base);
  const mnt = full.MESA_MOUNT_POINT as string;
  mkdirSync(mnt, { recursive: true });
  writeFileSync(join(mnt, "notes.txt"), "mine\n");
  const up = await mesa(["mount", "-d"], full);
  assert.equal(up.code, 1);
  assert.match(up.stderr, documentedError("mount point not empty"));
  assert.ok(up.stderr.includes(`the mount point ${mnt} is not empty (it holds notes.txt)`), up.stderr);
  assert.equal(readFileSync(join(mnt, "notes.txt"), "utf8"), "mine\n", "nothing mounted over it");
  const doctor = await mesa(["doctor"], full);
  assert.equal(doctor.code, 1);
  assert.match(doctor.stdout, new RegExp(`^FAIL  mount point: the mount point ${mnt} is not empty`, "m"));
  assert.match(doctor.stdout, /^ {6}fix: empty it, or set MESA_MOUNT_POINT \(mount-point in config.toml\)/m);

  const file = fx.sandbox("file", base);
  const fileMnt = file.MESA_MOUNT_POINT as string;
  mkdirSync(join(dir, "file"), { recursive: true });
  writeFileSync(fileMnt, "");
  const onFile = await mesa(["mount", "-d"], file);
  assert.equal(onFile.code, 1);
  assert.match(onFile.stderr, documentedError("mount point is a file"));

  // A user other than root, without user_allow_other in /etc/fuse.conf: refused before FUSE.
  const fuseConf = await run("cat", ["/etc/fuse.conf"]);
  if (process.getuid?.() === 0 && !/^\s*user_allow_other\s*$/m.test(fuseConf.stdout)) {
    const own = join(dir, "nobody");
    mkdirSync(own, { mode: 0o777 });
    chmodSync(own, 0o777);
    chmodSync(dir, 0o755);
    const asNobody = await run(
      "setpriv",
      ["--reuid=65534", "--regid=65534", "--clear-groups", process.execPath, MESA_BIN, "mount", "-d"],
      { env: { ...mesaEnv(own, base), HOME: own } },
    );
    assert.equal(asNobody.code, 1, asNobody.stderr);
    assert.match(asNobody.stderr, documentedError("no `user_allow_other`"));
  }

  // Nothing listens at the service URL: the URL, the cause and the variable to set.
  const down = mesaEnv(join(dir, "down"), { ...base, MESA_SERVICE_URL: "http://127.0.0.1:9" });
  const log = await mesa(["log", "--org", "local", "--repo", "app"], down);
  assert.equal(log.code, 1);
  assert.match(log.stderr, documentedError("server not running"));
  assert.ok(log.stderr.includes("http://127.0.0.1:9 (connection refused)"), log.stderr);
  const list = await mesa(["repo", "list", "--all"], down);
  assert.match(list.stderr, documentedError("server not running"));

  // An expired access token: the fix, not the request that failed.
  const tok = await mesa(["token", "create", "--ttl", "1"], mesaEnv(join(dir, "tok"), base));
  assert.equal(tok.code, 0, tok.stderr);
  const jwt = tok.stdout.trim();
  await waitFor(
    () => Date.now() / 1000 > JSON.parse(Buffer.from(jwt.split(".")[1]!, "base64url").toString()).exp + 1,
    5000,
  );
  const expired = mesaEnv(join(dir, "expired"), { ...base, MESA_API_KEY: jwt });
  for (const args of [
    ["log", "--org", "local", "--repo", "app"],
    ["repo", "list", "--all"],
  ]) {
    const r = await mesa(args, expired);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, documentedError("expired token"));
    assert.doesNotMatch(r.stderr, /GET \//);
  }

  // repo open of a repo the server does not have: refused, config.toml untouched.
  const config = join(dir, "config.toml");
  const text = '[organizations.local]\nmount = "explicit"\n[organizations.local.repos.app]\n';
  writeFileSync(config, text);
  const cfgEnv = mesaEnv(join(dir, "cfg"), base);
  delete cfgEnv.MESA_NO_CONFIG_FILE;
  const ghost = await mesa(["-c", config, "repo", "open", "ghost", "--org", "local"], cfgEnv);
  assert.equal(ghost.code, 1);
  assert.match(ghost.stderr, documentedError("repo does not exist"));
  assert.equal(readFileSync(config, "utf8"), text);
});

test("repo open|close edit config.toml in place: comments, order and inline tables kept byte for byte", async (t) => {
  const fx = fixture(t, "repoedit");
  const dir = fx.dir;
  const serve = await fx.serve();
  for (const name of ["app", "lib", "tools"]) {
    generateRepo(join(dir, name), { files: 3 });
    await serve.importRepo(`local/${name}`, join(dir, name));
  }
  const env = mesaEnv(dir, { MESA_API_KEY: serve.adminKey, MESA_SERVICE_URL: serve.url });
  delete env.MESA_NO_CONFIG_FILE;
  const config = join(dir, "config.toml");
  const head = [
    "# my mesa config: keep these comments",
    'service-url = "http://127.0.0.1:1"   # overridden by MESA_SERVICE_URL in this test',
    "",
    "[organizations.local]",
    'mount = "explicit"  # only what I list',
    "",
    "# the app, pinned and read-only",
    "[organizations.local.repos.app]",
    'rev = { bookmark = "main" }',
    "read-only = true",
    "",
  ].join("\n");
  const libEntry = ["# lib, to be closed", "[organizations.local.repos.lib]", "read-only = true", ""].join(
    "\n",
  );
  const tail = ["", "# trailing comment", "[cache]", 'max-size = "1GB"  # small disk', ""].join("\n");
  const original = `${head}\n${libEntry}${tail}`;
  writeFileSync(config, original);

  const close = await mesa(["-c", config, "repo", "close", "lib", "--org", "local"], env);
  assert.equal(close.code, 0, close.stderr);
  const closed = readFileSync(config, "utf8");
  assert.equal(closed, `${head}${tail}`, "the entry and its comment go, nothing else changes");

  const open = await mesa(["-c", config, "repo", "open", "tools", "--org", "local"], env);
  assert.equal(open.code, 0, open.stderr);
  assert.equal(readFileSync(config, "utf8"), `${closed}\n[organizations.local.repos.tools]\n`);

  // One-line entries in a [repos] table: only that line goes.
  const inline = [
    "[organizations.local]",
    'mount = "explicit"',
    "[organizations.local.repos]",
    'app = { rev = { bookmark = "main" }, read-only = true }  # pinned',
    "lib = {}",
    "",
  ].join("\n");
  writeFileSync(config, inline);
  const close2 = await mesa(["-c", config, "repo", "close", "lib", "--org", "local"], env);
  assert.equal(close2.code, 0, close2.stderr);
  assert.equal(readFileSync(config, "utf8"), inline.replace("lib = {}\n", ""));
  const show = await mesa(["-c", config, "config", "show", "--json"], env);
  const values = JSON.parse(show.stdout).values as Record<string, { value: unknown }>;
  assert.equal(values["organizations.local.repos.app.read-only"]?.value, true);
});
