/**
 * `mesa quickstart` on a fresh HOME: starts `mesa serve`, imports the sample, stores the key,
 * mounts, prints the path; a re-run changes nothing; `--stop` unmounts and stops the server.
 */
import assert from "node:assert/strict";
import { createServer } from "node:net";
import { join } from "node:path";
import { test } from "node:test";
import { fixture } from "./helpers/fixture.js";
import { mesa, mesaEnv, run, stopSandbox } from "./helpers/mount.js";

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer();
    s.listen(0, "127.0.0.1", () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

test("quickstart: server, sample repo, key, mount; idempotent; --stop", async (t) => {
  const fx = fixture(t, "quickstart");
  const dir = fx.dir;
  const port = await freePort();
  // Only what a fresh machine has: a HOME, and a port that is free for the test.
  const env = mesaEnv(dir, { MESA_SERVICE_URL: `http://127.0.0.1:${port}` });
  for (const k of [
    "MESA_MOUNT_POINT",
    "MESA_RUNTIME_DIR",
    "MESA_DATA_DIR",
    "MESA_CACHE_PATH",
    "MESA_DAEMON_LOG_FILE",
    "MESA_SECRETS_BACKEND",
    "MESA_NO_CONFIG_FILE",
  ])
    delete env[k];
  const home = env.HOME as string;
  const mnt = join(home, ".local", "share", "mesa", "mnt");
  fx.defer(async () => {
    await mesa(["quickstart", "--stop"], env, 60_000);
    await stopSandbox({ ...env, MESA_MOUNT_POINT: mnt });
    const pid = Number((await run("cat", [join(home, ".local/share/mesa/quickstart/serve.pid")])).stdout);
    if (pid > 0) await run("kill", ["-9", String(pid)]);
  });

  const first = await mesa(["quickstart", "-y"], env, 120_000);
  assert.equal(first.code, 0, first.stderr);
  assert.match(first.stdout, /imported local\/sample/);
  assert.match(first.stdout, new RegExp(`ls ${mnt}/local/sample`));
  const ls = await run("ls", [join(mnt, "local", "sample")]);
  assert.deepEqual(ls.stdout.trim().split("\n"), ["README", "README.md", "scripts", "src"]);
  assert.equal((await run("readlink", [join(mnt, "local", "sample", "README")])).stdout.trim(), "README.md");
  assert.equal(
    (await run("stat", ["-c", "%a", join(mnt, "local", "sample", "scripts", "build.sh")])).stdout.trim(),
    "755",
  );
  assert.match((await run("cat", [join(mnt, "local", "sample", "src", "main.ts")])).stdout, /greet/);

  // The secrets backend was chosen once and recorded; no command warns about it afterwards.
  const configFile = join(home, ".config", "mesa", "config.toml");
  const recorded = /^backend = "(keychain|encrypted-file|plaintext-file)"$/m.exec(
    (await run("cat", [configFile])).stdout,
  )?.[1];
  assert.ok(recorded, "quickstart recorded no secrets backend");
  assert.match(first.stdout, new RegExp(`secrets backend "${recorded}" recorded in ${configFile}\n`));
  assert.equal(first.stderr, "");
  const list = await mesa(["auth", "list"], env);
  assert.equal(list.code, 0, list.stderr);
  assert.equal(list.stderr, "");
  assert.match(list.stdout, /local/);

  const again = await mesa(["quickstart", "-y"], env, 120_000);
  assert.equal(again.code, 0, again.stderr);
  assert.equal(again.stderr, "");
  assert.doesNotMatch(again.stdout, /recorded in/);
  assert.doesNotMatch(again.stdout, /imported/);
  assert.match(again.stdout, /already mounted/);

  const stop = await mesa(["quickstart", "--stop"], env, 60_000);
  assert.equal(stop.code, 0, stop.stderr);
  assert.match(stop.stdout, /stopped the local mesa serve/);
  assert.equal((await run("grep", ["-c", mnt, "/proc/mounts"])).stdout.trim(), "0");
});
