/**
 * The commands after a mount, through the real CLI against a real daemon and `mesa serve`:
 * the sandbox flows followed by `log`, `show` and `repo list` in a fresh shell without the
 * key; every `--json` output against the shapes docs/cli.md documents; a mount where some
 * repos fail; a second mount with other settings; a dead working directory; a killed daemon.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { type AddressInfo, createServer } from "node:net";
import { join } from "node:path";
import { test } from "node:test";
import { mesaIn, nonJsonLines, ROOT } from "./helpers/cli.js";
import { fixture } from "./helpers/fixture.js";
import {
  generateRepo,
  gitSync,
  MESA_BIN,
  mesa,
  mesaEnv,
  run,
  stopSandbox,
  waitFor,
} from "./helpers/mount.js";

/** A shell of the same sandbox (paths) that has no key, no org and no service URL. */
function freshShell(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const fresh = { ...env };
  for (const k of ["MESA_ORG", "MESA_API_KEY", "MESA_ORGS", "MESA_SERVICE_URL", "MESA_REPO_REVS"])
    delete fresh[k];
  return fresh;
}

// ---- the JSON shapes of docs/cli.md ----------------------------------------------------------

/** Each documented block: the command's heading (e.g. "mesa log --json") or the block's tag. */
function documentedShapes(): Map<string, unknown> {
  const doc = readFileSync(join(ROOT, "docs", "cli.md"), "utf8");
  const shapes = new Map<string, unknown>();
  let heading = "";
  const re = /^### `([^`]+)`.*$|^```json( [\w-]+)?\n([\s\S]*?)^```$/gm;
  for (const m of doc.matchAll(re)) {
    if (m[1]) heading = m[1];
    else shapes.set(m[2] ? m[2].trim() : heading, JSON.parse(m[3]!));
  }
  return shapes;
}

const isObject = (v: unknown): v is Record<string, unknown> =>
  !!v && typeof v === "object" && !Array.isArray(v);

/** Keys printed but not documented (anywhere), and documented top-level keys not printed. */
function shapeProblems(doc: unknown, actual: unknown, path: string, strict: boolean): string[] {
  if (isObject(doc)) {
    if ("…" in doc) return [];
    if (!isObject(actual)) return actual === null ? [] : [`${path}: expected an object`];
    const out: string[] = [];
    for (const k of Object.keys(actual))
      if (!(k in doc)) out.push(`${path}.${k}: printed but not documented`);
      else out.push(...shapeProblems(doc[k], actual[k], `${path}.${k}`, false));
    if (strict)
      for (const k of Object.keys(doc))
        if (!(k in actual)) out.push(`${path}.${k}: documented but not printed`);
    return out;
  }
  if (Array.isArray(doc) && Array.isArray(actual) && doc.length > 0)
    return actual.flatMap((item, i) => shapeProblems(doc[0], item, `${path}[${i}]`, false));
  return [];
}

async function checkJson(
  shapes: Map<string, unknown>,
  key: string,
  args: string[],
  env: NodeJS.ProcessEnv,
  cwd?: string,
): Promise<Record<string, unknown>> {
  const r = cwd ? await mesaIn(cwd, args, env) : await mesa(args, env);
  let parsed: unknown;
  try {
    parsed = JSON.parse(r.stdout);
  } catch {
    assert.fail(`mesa ${args.join(" ")} printed no JSON (exit ${r.code}): ${r.stdout}${r.stderr}`);
  }
  assert.ok(shapes.has(key), `docs/cli.md documents no shape for ${key}`);
  assert.deepEqual(shapeProblems(shapes.get(key), parsed, key, true), [], `mesa ${args.join(" ")}`);
  return parsed as Record<string, unknown>;
}

test("sandbox flows: a fresh shell without the key uses the daemon; --json shapes; dead cwd; killed daemon", async (t) => {
  const fx = fixture(t, "flows");
  const dir = fx.dir;
  const serve = await fx.serve();
  generateRepo(join(dir, "src"), { files: 30 });
  await serve.importRepo("local/app", join(dir, "src"));
  const shapes = documentedShapes();

  // Flow 1: MESA_ORG + MESA_API_KEY, nothing stored.
  const a = fx.sandbox("a", {
    MESA_ORG: "local",
    MESA_API_KEY: serve.adminKey,
    MESA_SERVICE_URL: serve.url,
  });
  const mntA = a.MESA_MOUNT_POINT as string;
  const upA = await mesa(["mount", "-d"], a);
  assert.equal(upA.code, 0, upA.stderr);
  assert.equal(upA.stdout, `${mntA}\n`);
  assert.equal(upA.stderr, `mesa: mounted; the log is ${a.MESA_DAEMON_LOG_FILE}\n`);
  const freshA = freshShell(a);
  const repoDir = join(mntA, "local", "app");
  const log = await mesaIn(repoDir, ["log"], freshA);
  assert.equal(log.code, 0, log.stderr);
  assert.equal(log.stderr, "", "no store is opened, so no warning");
  assert.match(log.stdout, /^[k-z]{12} [0-9a-f]{12} Test .* {2}generated$/m);
  const show = await mesaIn(repoDir, ["show", "--no-patch"], freshA);
  assert.equal(show.code, 0, show.stderr);
  assert.match(show.stdout, /^Change ID: [k-z]{32}$/m);
  const list = await mesa(["repo", "list"], freshA);
  assert.equal(list.code, 0, list.stderr);
  assert.equal(list.stdout, "● local/app  bookmark:main\n");
  // A new shell's `mount -d` asks for nothing different: the daemon runs, nothing to do.
  const remount = await mesa(["mount", "-d"], freshA);
  assert.equal(remount.code, 0, remount.stderr);
  assert.match(remount.stdout, /^mesa is already running \(pid \d+\), mounted at /);
  const status = await mesa(["status"], freshA);
  assert.match(status.stdout, new RegExp(`^log: {9}${a.MESA_DAEMON_LOG_FILE}$`, "m"));

  // Every --json output parses and has the documented keys.
  const st = await checkJson(shapes, "mesa status --json", ["status", "--json"], freshA);
  assert.deepEqual([st.running, st.mount_point, st.orgs, st.failed], [true, mntA, ["local"], []]);
  await checkJson(shapes, "mesa stats --json", ["stats", "--json"], freshA);
  await checkJson(shapes, "mesa stats --json", ["stats", "--format", "json"], freshA);
  await checkJson(shapes, "mesa doctor --json", ["doctor", "--json"], freshA);
  await checkJson(shapes, "mesa config show --json", ["config", "show", "--json"], freshA);
  const rl = await checkJson(shapes, "mesa repo list --json", ["repo", "list", "--json"], freshA);
  assert.deepEqual(rl.repos, [{ org: "local", repo: "app", mounted: true, revision: "bookmark:main" }]);
  const lj = await checkJson(shapes, "mesa log --json", ["log", "--json"], freshA, repoDir);
  const first = (lj.changes as Array<{ change_id: string; commit_id: string }>)[0]!;
  const sj = await checkJson(
    shapes,
    "mesa show --json",
    ["show", first.commit_id.slice(0, 12), "--json"],
    freshA,
    repoDir,
  );
  assert.equal(sj.change_id, first.change_id);
  await checkJson(shapes, "mesa bookmark list --json", ["bookmark", "list", "--json"], freshA, repoDir);
  await checkJson(shapes, "mesa auth list --json", ["auth", "list", "--json"], freshA);

  // `mesa unmount` from inside the mount: the shell's directory is gone; mesa still runs.
  const dead = await run(
    "sh",
    [
      "-c",
      `cd '${repoDir}' && '${process.execPath}' '${MESA_BIN}' unmount && '${process.execPath}' '${MESA_BIN}' status; echo "status exit $?"`,
    ],
    { env: freshA },
  );
  assert.doesNotMatch(dead.stderr, /uv_cwd|ENOTCONN/);
  assert.match(dead.stdout, /^stopped mesa \(pid \d+\)/m);
  assert.match(dead.stdout, /^mesa is not running \(start it with `mesa mount -d`\)/m);
  assert.match(dead.stdout, /^status exit 3$/m);
  const stopped = await checkJson(shapes, "status-not-running", ["status", "--json"], freshA);
  assert.equal(stopped.running, false);

  // Flow 2: MESA_ORGS with -y and no secrets backend chosen: the plaintext fallback, said once.
  const b = fx.sandbox("b", {
    MESA_ORGS: `local:${serve.adminKey}`,
    MESA_SERVICE_URL: serve.url,
    DBUS_SESSION_BUS_ADDRESS: "unix:path=/nonexistent/mesa-test-bus",
  });
  delete b.MESA_SECRETS_BACKEND;
  const upB = await mesa(["mount", "-d", "-y"], b);
  assert.equal(upB.code, 0, upB.stderr);
  assert.equal(upB.stderr.match(/warning: .*unencrypted/g)?.length, 1, upB.stderr);
  assert.match(
    upB.stderr,
    /^mesa: stored the key for orgs\/local in plaintext-file \(.*secrets\.plaintext\.toml\)$/m,
  );
  const again = await mesa(["mount", "-d", "-y"], b);
  assert.equal(again.code, 0, again.stderr);
  assert.equal(again.stderr, "", "the key is stored already and the daemon runs: nothing to say");
  assert.match(again.stdout, /^mesa is already running \(pid \d+\), mounted at /);
  const freshB = freshShell(b);
  const logB = await mesaIn(join(b.MESA_MOUNT_POINT as string, "local", "app"), ["log", "-n", "1"], freshB);
  assert.equal(logB.code, 0, logB.stderr);
  assert.equal(logB.stderr, "");
  assert.equal((await mesa(["repo", "list"], freshB)).stdout, "● local/app  bookmark:main\n");
  const daemonLog = readFileSync(b.MESA_DAEMON_LOG_FILE as string, "utf8");
  assert.deepEqual(nonJsonLines(daemonLog), [], "the daemon's log holds JSON lines only");
  assert.doesNotMatch(daemonLog, /unencrypted/);

  // A killed daemon is not "running", for doctor and status alike.
  const pid = (JSON.parse((await mesa(["status", "--json"], freshB)).stdout) as { pid: number }).pid;
  process.kill(pid, "SIGKILL");
  assert.ok(await waitFor(async () => (await run("kill", ["-0", String(pid)])).code !== 0, 10_000));
  const doctor = await mesa(["doctor"], freshB);
  assert.doesNotMatch(doctor.stdout, /daemon: running/);
  assert.match(
    doctor.stdout,
    /^ok {4}daemon: not running \(start it with `mesa mount -d`\)$|^FAIL {2}stale mount: /m,
  );
  assert.equal((await mesa(["status"], freshB)).code, 3);
});

test("mount -d: failing repos are named and nothing is mounted unless --allow-partial; a second mount names what differs", async (t) => {
  const fx = fixture(t, "partial");
  const dir = fx.dir;
  const serve = await fx.serve();
  for (const name of ["app", "lib"]) generateRepo(join(dir, name), { files: 10 });
  gitSync(join(dir, "app"), ["branch", "feat"]);
  await serve.importRepo("local/app", join(dir, "app"));
  await serve.importRepo("local/lib", join(dir, "lib"));
  const base = { MESA_ORG: "local", MESA_API_KEY: serve.adminKey, MESA_SERVICE_URL: serve.url };
  const env = fx.sandbox(".", {
    ...base,
    MESA_REPO_REVS: "local/lib=bookmark:nope,local/ghost=bookmark:main",
  });
  const mnt = env.MESA_MOUNT_POINT as string;

  const fail = await mesa(["mount", "-d"], env);
  assert.equal(fail.code, 1);
  assert.match(fail.stderr, /^mesa: 2 repositories failed to load, so nothing was mounted:$/m);
  assert.match(fail.stderr, /^ {2}local\/lib: bookmark 'nope' not found in local\/lib$/m);
  assert.match(fail.stderr, /^ {2}local\/ghost: repository .*\/local\/ghost\.git not found$/m);
  assert.match(fail.stderr, /mount the others with `mesa mount -d --allow-partial`/);
  assert.equal((await run("grep", ["-c", mnt, "/proc/mounts"])).stdout.trim(), "0");
  assert.equal((await mesa(["status"], env)).code, 3);

  const partial = await mesa(["mount", "-d", "--allow-partial"], env);
  assert.equal(partial.code, 0, partial.stderr);
  assert.match(
    partial.stderr,
    /^mesa: warning: local\/lib was not mounted: bookmark 'nope' not found in local\/lib$/m,
  );
  assert.match(partial.stderr, /^mesa: warning: local\/ghost was not mounted: /m);
  assert.equal((await run("ls", [join(mnt, "local")])).stdout, "app\n");
  const s = JSON.parse((await mesa(["status", "--json"], env)).stdout) as { failed: Array<{ repo: string }> };
  assert.deepEqual(s.failed.map((f) => f.repo).sort(), ["ghost", "lib"]);

  // The same settings: nothing to do. Other settings: each named, nothing changed, exit 1.
  const same = await mesa(["mount", "-d", "--allow-partial"], env);
  assert.equal(same.code, 0, same.stderr);
  const other = await mesa(["mount", "-d"], {
    ...env,
    MESA_REPO_REVS: "local/app=bookmark:feat",
    MESA_MOUNT_POINT: join(dir, "elsewhere"),
  });
  assert.equal(other.code, 1);
  assert.match(
    other.stderr,
    /^mesa: mesa is already running \(pid \d+\) with other settings; nothing was changed:$/m,
  );
  assert.ok(
    other.stderr.includes(
      `it is mounted at ${mnt}, not ${join(dir, "elsewhere")}: run \`mesa unmount\`, then \`mesa mount -d\` again`,
    ),
    other.stderr,
  );
  assert.match(other.stderr, /local\/app is mounted at bookmark:main, not bookmark:feat: run `mesa unmount`/);
  assert.equal((await run("ls", [join(mnt, "local")])).stdout, "app\n");
});

test("sandbox flow `mesa quickstart`: a fresh shell lists, logs and shows without key or service URL", async (t) => {
  const fx = fixture(t, "qsflow");
  const dir = fx.dir;
  const port = await new Promise<number>((resolve) => {
    const s = createServer();
    s.listen(0, "127.0.0.1", () => {
      const p = (s.address() as AddressInfo).port;
      s.close(() => resolve(p));
    });
  });
  const env = mesaEnv(dir, { MESA_SERVICE_URL: `http://127.0.0.1:${port}` });
  for (const k of [
    "MESA_MOUNT_POINT",
    "MESA_RUNTIME_DIR",
    "MESA_DATA_DIR",
    "MESA_CACHE_PATH",
    "MESA_DAEMON_LOG_FILE",
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
  const qs = await mesa(["quickstart", "-y"], env, 120_000);
  assert.equal(qs.code, 0, qs.stderr);

  const fresh = freshShell(env);
  const list = await mesa(["repo", "list"], fresh);
  assert.equal(list.code, 0, list.stderr);
  assert.equal(list.stdout, "● local/sample  bookmark:main\n");
  const sample = join(mnt, "local", "sample");
  const log = await mesaIn(sample, ["log"], fresh);
  assert.equal(log.code, 0, log.stderr);
  assert.match(log.stdout, /^[k-z]{12} [0-9a-f]{12} /);
  const show = await mesaIn(sample, ["show", log.stdout.slice(0, 12), "--name-only"], fresh);
  assert.equal(show.code, 0, show.stderr);
  assert.notEqual(show.stdout, "");
});
