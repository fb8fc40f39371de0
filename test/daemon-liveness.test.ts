/**
 * A killed daemon that nobody reaps (a zombie, as under a container's pid 1 that never waits)
 * does not count as running: `mesa mount -d` cleans up and mounts at once, `mesa unmount`
 * returns at once. And no secret reaches the daemon's child processes (/proc/<child>/environ).
 */
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { isZombie } from "../src/daemon/pidfile.js";
import { fixture } from "./helpers/fixture.js";
import { generateRepo, mesa, run, waitFor } from "./helpers/mount.js";
import { MESA_BIN } from "./helpers/serve.js";

/** Python: become a child subreaper, run the command (reaping only it), then never reap again. */
const SUBREAPER = `
import ctypes, subprocess, sys, time
ctypes.CDLL(None).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
print(subprocess.run(sys.argv[1:]).returncode, flush=True)
time.sleep(3600)
`;

/** Runs `mesa mount -d` under a subreaper that never reaps: the daemon becomes its orphan. */
async function mountUnderSubreaper(env: NodeJS.ProcessEnv): Promise<ChildProcess> {
  const reaper = spawn("python3", ["-c", SUBREAPER, process.execPath, MESA_BIN, "mount", "-d"], {
    env,
    stdio: ["ignore", "pipe", "inherit"],
  });
  const exit = await new Promise<string>((resolve, reject) => {
    let out = "";
    const timer = setTimeout(() => reject(new Error(`mount -d under the subreaper hung: ${out}`)), 90_000);
    reaper.stdout!.setEncoding("utf8");
    reaper.stdout!.on("data", (d: string) => {
      out += d;
      // mount -d prints the mount point, then the subreaper prints its exit code.
      const lines = out.split("\n");
      if (lines.length >= 3) {
        clearTimeout(timer);
        resolve(lines[1]!);
      }
    });
  });
  assert.equal(exit, "0");
  return reaper;
}

/** Pids whose parent is `pid`, from /proc/<n>/stat. */
function childrenOf(pid: number): number[] {
  const out: number[] = [];
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, "utf8");
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      if (ppid === pid) out.push(Number(name));
    } catch {}
  }
  return out;
}

test("a zombie daemon is not running: mount -d remounts and unmount returns within 2 s; children get no secrets", async (t) => {
  const fx = fixture(t, "zombie");
  const dir = fx.dir;
  const serve = await fx.serve();
  const reapers: ChildProcess[] = [];
  fx.defer(() => {
    for (const r of reapers) if (r.exitCode === null) r.kill("SIGKILL");
  });
  generateRepo(join(dir, "src"), { files: 20 });
  await serve.importRepo("local/small", join(dir, "src"));
  const env = fx.sandbox(".", {
    MESA_ORG: "local",
    MESA_API_KEY: serve.adminKey,
    MESA_SERVICE_URL: serve.url,
  });
  const mnt = env.MESA_MOUNT_POINT as string;
  const pidFile = join(env.MESA_RUNTIME_DIR as string, "mesa.pid");

  reapers.push(await mountUnderSubreaper(env));
  const pid = Number(readFileSync(pidFile, "utf8").trim());
  assert.ok(pid > 0);
  assert.equal((await run("ls", [join(mnt, "local")])).stdout.trim(), "small");

  // The daemon's children (the fusermount that unmounts when the daemon dies) carry no secret.
  const children = childrenOf(pid);
  assert.ok(children.length >= 1, "the daemon has no child process");
  for (const child of children) {
    const vars = readFileSync(`/proc/${child}/environ`, "utf8").split("\0");
    assert.ok(vars.includes("MESA_ORG=local"), `child ${child} did not inherit the environment`);
    assert.ok(!vars.some((v) => v.startsWith("MESA_API_KEY=")), `child ${child} has MESA_API_KEY`);
    assert.ok(!vars.some((v) => v.includes(serve!.adminKey)), `child ${child} holds the key`);
  }

  process.kill(pid, "SIGKILL");
  assert.ok(await waitFor(() => isZombie(pid), 10_000, 50), "the daemon did not become a zombie");

  let t0 = Date.now();
  const up = await mesa(["mount", "-d"], env);
  const mountMs = Date.now() - t0;
  assert.equal(up.code, 0, up.stderr);
  assert.equal(up.stdout, `${mnt}\n`);
  // Node starts twice and the repo loads in that time; the zombie itself costs no wait.
  assert.ok(mountMs < 5_000, `mount -d took ${mountMs} ms`);
  const newPid = Number(readFileSync(pidFile, "utf8").trim());
  assert.notEqual(newPid, pid);
  assert.equal((await run("cat", [join(mnt, "local", "small", "README.md")])).stdout, "# generated\n");

  // The second daemon a zombie too: unmount does not wait for it.
  reapers.push(
    await (async () => {
      assert.equal((await mesa(["unmount"], env)).code, 0);
      return mountUnderSubreaper(env);
    })(),
  );
  const thirdPid = Number(readFileSync(pidFile, "utf8").trim());
  process.kill(thirdPid, "SIGKILL");
  assert.ok(await waitFor(() => isZombie(thirdPid), 10_000, 50), "the daemon did not become a zombie");
  t0 = Date.now();
  const down = await mesa(["unmount"], env);
  const unmountMs = Date.now() - t0;
  assert.equal(down.code, 0, down.stderr);
  assert.equal(down.stdout, `mesa (pid ${thirdPid}) was not running; removed its stale pid file\n`);
  t.diagnostic(`mount -d after a zombie: ${mountMs} ms; unmount of a zombie: ${unmountMs} ms`);
  assert.ok(unmountMs < 2_000, `unmount took ${unmountMs} ms`);
  assert.equal((await run("grep", ["-c", ` ${mnt} `, "/proc/mounts"])).stdout.trim(), "0");
  const again = await mesa(["unmount"], env);
  assert.equal(again.stdout, "mesa is not running\n");
});
