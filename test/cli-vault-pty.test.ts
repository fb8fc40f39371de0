/**
 * The vault trap, in a real pseudo-terminal (python3's pty module): keys given through
 * MESA_ORGS in a terminal, with no keychain, go to the encrypted vault after one passphrase
 * prompt, and the detached daemon can use them; later commands never ask again; a later
 * `mount -d` asks once and hands the passphrase to its daemon. Progress lines appear on a
 * terminal (`mount -d`, `serve import`).
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { nonJsonLines, ROOT } from "./helpers/cli.js";
import { fixture } from "./helpers/fixture.js";
import { generateRepo, MESA_BIN, mesa, run } from "./helpers/mount.js";

const PTY = join(ROOT, "test", "helpers", "in-pty.py");
const PASS = "vault-pass-4711";

/** `mesa args` in a pseudo-terminal, answering each [prompt, reply]. */
function inPty(args: string[], env: NodeJS.ProcessEnv, answers: Array<[string, string]> = []) {
  return run(
    "python3",
    [PTY, JSON.stringify([process.execPath, MESA_BIN, ...args]), JSON.stringify(answers), "90"],
    {
      env,
      timeoutMs: 120_000,
    },
  );
}

test("vault trap: MESA_ORGS in a terminal, no keychain: one prompt, a daemon that works, no prompt afterwards", async (t) => {
  const fx = fixture(t, "vault");
  const dir = fx.dir;
  const serve = await fx.serve();
  generateRepo(join(dir, "src"), { files: 20 });
  await serve.importRepo("local/app", join(dir, "src"));

  const env = fx.sandbox(".", {
    MESA_SERVICE_URL: serve.url,
    DBUS_SESSION_BUS_ADDRESS: "unix:path=/nonexistent/mesa-bus",
  });
  delete env.MESA_SECRETS_BACKEND;
  const mnt = env.MESA_MOUNT_POINT as string;

  // 1. The canonical call without -y, in a terminal: the vault is created, the daemon runs.
  const first = await inPty(["mount", "-d"], { ...env, MESA_ORGS: `local:${serve.adminKey}` }, [
    ["New passphrase for the mesa vault: ", `${PASS}\r`],
    ["Repeat the passphrase: ", `${PASS}\r`],
  ]);
  assert.equal(first.code, 0, first.stdout);
  assert.match(
    first.stdout,
    /mesa: stored the key for orgs\/local in encrypted-file \(.*secrets\.vault\.age\)/,
  );
  assert.match(first.stdout, /Loading trees: 1\/1 repos, \d+ files, .*done\./, "progress on a terminal");
  assert.ok(first.stdout.includes(`${mnt}\r\n`), first.stdout);
  assert.doesNotMatch(first.stdout, /warning|exited before it was ready/);
  assert.ok(!first.stdout.includes(PASS), "the passphrase is not echoed");
  assert.equal((await run("cat", [join(mnt, "local", "app", "README.md")])).stdout, "# generated\n");

  // 2. The same terminal, the org only: the daemon runs with these settings; nothing is asked.
  const second = await inPty(["mount", "-d"], { ...env, MESA_ORG: "local" });
  assert.equal(second.code, 0, second.stdout);
  assert.match(second.stdout, /^mesa is already running \(pid \d+\), mounted at /m);
  assert.doesNotMatch(second.stdout, /assphrase/);

  // 3. log in a terminal, with or without MESA_VAULT_PASSPHRASE: the daemon's credential, no prompt.
  for (const extra of [{}, { MESA_VAULT_PASSPHRASE: PASS }]) {
    const log = await inPty(["log", "--org", "local", "--repo", "app"], { ...env, ...extra });
    assert.equal(log.code, 0, log.stdout);
    assert.match(log.stdout, /generated/);
    assert.doesNotMatch(log.stdout, /assphrase/);
  }

  // 4. After an unmount, `mount -d` for the org asks once and hands the passphrase over.
  assert.equal((await mesa(["unmount"], env)).code, 0);
  const third = await inPty(["mount", "-d"], { ...env, MESA_ORG: "local" }, [
    ["Passphrase for the mesa vault: ", `${PASS}\r`],
  ]);
  assert.equal(third.code, 0, third.stdout);
  assert.equal(third.stdout.match(/assphrase/g)?.length, 1, third.stdout);
  assert.ok(!third.stdout.includes(PASS), "the passphrase is not echoed");
  assert.equal((await run("cat", [join(mnt, "local", "app", "README.md")])).stdout, "# generated\n");

  // The passphrase and the key reach neither the log nor the process list; the log is JSON.
  const log = readFileSync(env.MESA_DAEMON_LOG_FILE as string, "utf8");
  assert.deepEqual(nonJsonLines(log), []);
  assert.ok(!log.includes(PASS) && !log.includes(serve.adminKey));
  const ps = await run("ps", ["-eo", "args"]);
  assert.ok(!ps.stdout.includes(PASS));
});

test("progress: serve import shows git's lines and the change index on a terminal, nothing without one", async (t) => {
  const dir = fixture(t, "progress").dir;
  generateRepo(join(dir, "src"), { files: 200 });
  const data = join(dir, "data");
  const tty = await inPty(
    ["serve", "import", "local/app", `file://${join(dir, "src")}`, "--data-dir", data],
    process.env,
  );
  assert.equal(tty.code, 0, tty.stdout);
  assert.match(tty.stdout, /Receiving objects: 100% \(\d+\/\d+\)/);
  assert.match(tty.stdout, /Indexing changes: 1, done\./);
  assert.match(tty.stdout, /imported local\/app: 1 branch\(es\), default bookmark main/);
  const quiet = await inPty(
    ["serve", "import", "local/lib", join(dir, "src"), "--data-dir", data, "--quiet"],
    process.env,
  );
  assert.equal(quiet.code, 0, quiet.stdout);
  assert.equal(quiet.stdout, "imported local/lib: 1 branch(es), default bookmark main\r\n");
  const piped = await run(process.execPath, [
    MESA_BIN,
    "serve",
    "import",
    "local/x",
    join(dir, "src"),
    "--data-dir",
    data,
  ]);
  assert.equal(piped.stderr, "");
});
