/**
 * The daemon against a plain Git smart-HTTP server with no REST API (the real
 * `git http-backend`): repos in explicit mode, bookmarks from ls-refs, pinning by bookmark.
 */
import assert from "node:assert/strict";
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { generateApiKey } from "../src/auth/keys.js";
import { mintFromApiKey } from "../src/auth/tokens.js";
import { fixture } from "./helpers/fixture.js";
import { serveGit } from "./helpers/git-http.js";
import { diffTrees, generateRepo, gitSync, mesa, run, statListing, waitFor } from "./helpers/mount.js";

test("explicit repos from a plain git http-backend, default and pinned bookmarks", async (t) => {
  const fx = fixture(t, "mountgit");
  const dir = fx.dir;
  const work = join(dir, "work");
  generateRepo(work, { files: 300 });
  gitSync(work, ["checkout", "-q", "-b", "feature"]);
  writeFileSync(join(work, "feature.txt"), "only on feature\n");
  gitSync(work, ["add", "feature.txt"]);
  gitSync(work, ["commit", "-q", "-m", "feature"]);
  gitSync(work, ["checkout", "-q", "main"]);
  const root = join(dir, "srv");
  mkdirSync(join(root, "acme"), { recursive: true });
  gitSync(dir, ["clone", "-q", "--bare", work, join(root, "acme", "app.git")]);
  gitSync(dir, ["clone", "-q", "--bare", work, join(root, "acme", "pinned.git")]);
  const server = fx.use(await serveGit(root));

  const config = join(dir, "config.toml");
  writeFileSync(
    config,
    [
      "[organizations.acme]",
      'mount = "explicit"',
      "[organizations.acme.repos.app]",
      "[organizations.acme.repos.pinned]",
      'rev = { bookmark = "feature" }',
      "",
    ].join("\n"),
  );
  // A bare access token (no key to renew it with) that expires during the test: status says so.
  const token = await mintFromApiKey(generateApiKey().key, {
    scopes: ["read", "write"],
    repos: null,
    ttlSeconds: 4,
  });
  const env = fx.sandbox(".", {
    MESA_ORG: "acme",
    MESA_API_KEY: token,
    MESA_SERVICE_URL: server.url,
  });
  delete env.MESA_NO_CONFIG_FILE;
  const mnt = env.MESA_MOUNT_POINT as string;
  const up = await mesa(["--config-path", config, "mount", "-d"], env);
  assert.equal(up.code, 0, `mount -d failed: ${up.stderr}`);

  assert.deepEqual((await run("ls", [join(mnt, "acme")])).stdout.trim().split("\n"), ["app", "pinned"]);
  assert.equal(await diffTrees(work, join(mnt, "acme", "app")), "");
  assert.deepEqual(await statListing(join(mnt, "acme", "app")), await statListing(work));
  assert.equal((await run("cat", [join(mnt, "acme", "pinned", "feature.txt")])).stdout, "only on feature\n");
  const onlyOnFeature = join(mnt, "acme", "app", "feature.txt");
  const missing = await run("cat", [onlyOnFeature], { env: { ...process.env, LC_ALL: "C" } });
  assert.deepEqual([missing.code, missing.stderr], [1, `cat: ${onlyOnFeature}: No such file or directory\n`]);

  const status = JSON.parse((await mesa(["--config-path", config, "status", "--json"], env)).stdout) as {
    repos: Array<{ repo: string; revision: string }>;
  };
  assert.deepEqual(status.repos.map((r) => `${r.repo} ${r.revision}`).sort(), [
    "app bookmark:main",
    "pinned bookmark:feature",
  ]);

  // Token expiry: a clear log line and a status entry.
  const expired = await waitFor(
    async () => {
      const st = JSON.parse(
        (await mesa(["--config-path", config, "status", "--json"], env as NodeJS.ProcessEnv)).stdout,
      ) as {
        errors: string[];
      };
      return st.errors.some((e) => /acme: access token expired/.test(e));
    },
    20_000,
    500,
  );
  assert.ok(expired, "status does not report the expired token");
  const logFile = env.MESA_DAEMON_LOG_FILE as string;
  assert.match(readFileSync(logFile, "utf8"), /access token expired/);

  // SIGHUP reopens the log file (rotation).
  const pid = Number(readFileSync(join(env.MESA_RUNTIME_DIR as string, "mesa.pid"), "utf8"));
  renameSync(logFile, `${logFile}.1`);
  process.kill(pid, "SIGHUP");
  assert.ok(
    await waitFor(
      () => existsSync(logFile) && /log file reopened/.test(readFileSync(logFile, "utf8")),
      10_000,
    ),
  );

  // An external unmount ends the daemon.
  assert.equal((await run("fusermount", ["-u", mnt])).code, 0);
  assert.ok(
    await waitFor(async () => (await run("kill", ["-0", String(pid)])).code !== 0, 15_000, 200),
    "the daemon kept running after an external unmount",
  );
});

test("a foreign key against plain Git hosting is sent as it is (no REST to identify it)", async (t) => {
  const fx = fixture(t, "mountgitkey");
  const dir = fx.dir;
  const work = join(dir, "work");
  generateRepo(work, { files: 20 });
  const root = join(dir, "srv");
  mkdirSync(join(root, "acme"), { recursive: true });
  gitSync(dir, ["clone", "-q", "--bare", work, join(root, "acme", "app.git")]);
  const foreignKey = "ghp_foreignPersonalAccessToken0123456789";
  const server = fx.use(await serveGit(root, { password: foreignKey }));

  const config = join(dir, "config.toml");
  writeFileSync(
    config,
    ["[organizations.acme]", 'mount = "explicit"', "[organizations.acme.repos.app]", ""].join("\n"),
  );
  const env = fx.sandbox(".", { MESA_ORG: "acme", MESA_API_KEY: foreignKey, MESA_SERVICE_URL: server.url });
  delete env.MESA_NO_CONFIG_FILE;
  const up = await mesa(["--config-path", config, "mount", "-d"], env);
  assert.equal(up.code, 0, `mount -d failed: ${up.stderr}`);
  assert.equal(await diffTrees(work, join(env.MESA_MOUNT_POINT as string, "acme", "app")), "");
  assert.doesNotMatch(
    up.stdout + up.stderr + readFileSync(env.MESA_DAEMON_LOG_FILE as string, "utf8"),
    /ghp_foreign/,
  );
});
