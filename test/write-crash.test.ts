/**
 * Durability of writes (SPEC §9): after fsync returns the server has the data even if the
 * daemon is `kill -9`ed right after; writes in a loop with `kill -9` at random points
 * (several seeds) are all on the server after the next mount replays the journal; and a
 * model-based random test (fast-check) compares the mount with a plain directory, then
 * compares that directory with a `git clone` of the server and a fresh mount.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import * as fsp from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import fc from "fast-check";
import { fixture } from "./helpers/fixture.js";
import { cleanupMount, diffTrees, mesa, run, statListing, waitFor } from "./helpers/mount.js";
import { cloneRepo, type Daemon, importSmallRepo, waitPushed } from "./helpers/write.js";

async function kill9(d: Daemon): Promise<void> {
  const { pid } = await d.status();
  process.kill(pid, "SIGKILL");
  assert.ok(await waitFor(async () => (await run("kill", ["-0", String(pid)])).code !== 0, 10_000));
  await cleanupMount(d.mnt);
}

test("after fsync returns the server has the data, even when the daemon is killed right after", async (t) => {
  const fx = fixture(t, "write-fsync");
  const dir = fx.dir;
  const serve = await fx.serve();
  await importSmallRepo(serve, dir, "dur");
  const d = await fx.daemon(serve);
  const script =
    "const fs=require('fs');const fd=fs.openSync('durable.txt','w');fs.writeSync(fd,'must survive\\n');fs.fsyncSync(fd);";
  const r = await d.sh("dur", `node -e "${script}"`);
  assert.equal(r.code, 0, r.stderr);
  await kill9(d);
  const clone = cloneRepo(serve, "dur", join(dir, "clone"));
  assert.equal(readFileSync(join(clone, "durable.txt"), "utf8"), "must survive\n");
});

/** Writes files in a loop; logs each index once its writes returned. */
const WRITER = `
const fs = require("fs");
const [root, log, prefix] = process.argv.slice(2);
const logFd = fs.openSync(log, "a");
for (let i = 0; i < 1000000; i++) {
  try {
    fs.writeFileSync(root + "/" + prefix + "-" + (i % 40) + ".txt", prefix + " " + i + "\\n");
    fs.appendFileSync(root + "/" + prefix + "-log.txt", i + "\\n");
  } catch (e) {
    process.exit(0);
  }
  fs.writeSync(logFd, i + "\\n");
}
`;

test("kill -9 at random points while writing (3 seeds): every write that returned is on the server", async (t) => {
  const fx = fixture(t, "write-crash");
  const dir = fx.dir;
  const serve = await fx.serve();
  await importSmallRepo(serve, dir, "crash");
  const writer = join(dir, "writer.cjs");
  writeFileSync(writer, WRITER);
  const seeds = [11, 22, 33];
  const done = new Map<number, number>();
  for (const seed of seeds) {
    const d = await fx.daemon(serve);
    mkdirSync(join(dir, "logs"), { recursive: true });
    const log = join(dir, "logs", `s${seed}.log`);
    const child = spawn(process.execPath, [writer, d.root("crash"), log, `s${seed}`], { stdio: "ignore" });
    const exited = new Promise<void>((res) => child.once("exit", () => res()));
    const delay = 300 + ((seed * 7919) % 1200);
    await new Promise((r) => setTimeout(r, delay));
    await kill9(d);
    const timer = setTimeout(() => child.kill("SIGKILL"), 15_000);
    await exited;
    clearTimeout(timer);
    const lines = readFileSync(log, "utf8").split("\n").filter(Boolean);
    done.set(seed, lines.length === 0 ? -1 : Number(lines[lines.length - 1]));
    t.diagnostic(`seed ${seed}: killed after ${delay} ms, ${lines.length} writes returned`);
  }
  const d = await fx.daemon(serve);
  await waitPushed(d, "crash", 60_000);
  // Our own pushes found on the server after a crash are adopted, never "conflicts".
  assert.deepEqual((await d.status()).writes.find((w) => w.repo === "crash")?.conflicts, []);
  const clone = cloneRepo(serve, "crash", join(dir, "clone"));
  for (const seed of seeds) {
    const last = done.get(seed) as number;
    assert.ok(last >= 0, `seed ${seed}: no write returned before the kill`);
    // Each file holds its last returned write; the one in flight at the kill may also be
    // truncated (writeFile = open with O_TRUNC, then write) or complete.
    const inFlight = (last + 1) % 40;
    for (let k = 0; k < 40 && k <= last; k++) {
      const lastK = last - ((last - k) % 40);
      const text = readFileSync(join(clone, `s${seed}-${k}.txt`), "utf8");
      const allowed =
        k === inFlight ? ["", `s${seed} ${lastK + 40}\n`, `s${seed} ${lastK}\n`] : [`s${seed} ${lastK}\n`];
      assert.ok(
        allowed.includes(text),
        `seed ${seed} file ${k}: ${JSON.stringify(text)}, allowed ${JSON.stringify(allowed)}`,
      );
    }
    const appended = readFileSync(join(clone, `s${seed}-log.txt`), "utf8")
      .split("\n")
      .filter(Boolean)
      .map(Number);
    assert.ok(
      appended.length >= last + 1,
      `seed ${seed}: ${appended.length} appends on the server, ${last + 1} returned`,
    );
    assert.deepEqual(
      appended.slice(0, last + 1),
      Array.from({ length: last + 1 }, (_, i) => i),
    );
  }
});

type Op =
  | { t: "write" | "append"; p: string; data: string }
  | { t: "mkdir" | "rmdir" | "unlink"; p: string }
  | { t: "rename"; from: string; to: string }
  | { t: "symlink"; target: string; p: string }
  | { t: "chmod"; p: string; mode: number }
  | { t: "truncate"; p: string; len: number };

const name = fc.constantFrom("a", "b", "c", "d/a", "d/b", "a/c", "b/d");
const op: fc.Arbitrary<Op> = fc.oneof(
  fc.record({
    t: fc.constantFrom("write" as const, "append" as const),
    p: name,
    data: fc.string({ maxLength: 20 }),
  }),
  fc.record({ t: fc.constantFrom("mkdir" as const, "rmdir" as const, "unlink" as const), p: name }),
  fc.record({ t: fc.constant("rename" as const), from: name, to: name }),
  fc.record({ t: fc.constant("symlink" as const), target: fc.constantFrom("a", "../a", "nowhere"), p: name }),
  fc.record({ t: fc.constant("chmod" as const), p: name, mode: fc.constantFrom(0o644, 0o755) }),
  fc.record({ t: fc.constant("truncate" as const), p: name, len: fc.nat(30) }),
);

async function apply(root: string, o: Op): Promise<string> {
  const at = (p: string) => join(root, p);
  try {
    switch (o.t) {
      case "write":
        await fsp.writeFile(at(o.p), o.data);
        break;
      case "append":
        await fsp.appendFile(at(o.p), o.data);
        break;
      case "mkdir":
        await fsp.mkdir(at(o.p));
        break;
      case "rmdir":
        await fsp.rmdir(at(o.p));
        break;
      case "unlink":
        await fsp.unlink(at(o.p));
        break;
      case "rename":
        await fsp.rename(at(o.from), at(o.to));
        break;
      case "symlink":
        await fsp.symlink(o.target, at(o.p));
        break;
      case "chmod":
        await fsp.chmod(at(o.p), o.mode);
        break;
      case "truncate":
        await fsp.truncate(at(o.p), o.len);
        break;
    }
    return "ok";
  } catch (err) {
    return (err as NodeJS.ErrnoException).code ?? "error";
  }
}

// A smoke test through FUSE and the kernel: test/workspace-model.test.ts is the main model test
// (the same filesystem core in-process, many more runs, crash and concurrent-writer cases).
test("model test: random operations on the mount and on a plain directory give the same tree, also after a remount", async (t) => {
  const fx = fixture(t, "write-model");
  const dir = fx.dir;
  const serve = await fx.serve();
  await importSmallRepo(serve, dir, "model");
  let d = await fx.daemon(serve);
  const plain = join(dir, "plain");
  mkdirSync(plain);
  let run_ = 0;
  const compare = async (a: string, b: string) => {
    assert.deepEqual(await statListing(a), await statListing(b));
    assert.equal(await diffTrees(a, b), "");
  };
  await fc.assert(
    fc.asyncProperty(fc.array(op, { minLength: 1, maxLength: 25 }), async (ops) => {
      run_++;
      const m = join(d.root("model"), `run${run_}`);
      const p = join(plain, `run${run_}`);
      await fsp.mkdir(m);
      await fsp.mkdir(p);
      for (const o of ops)
        assert.equal(await apply(m, o), await apply(p, o), `${JSON.stringify(o)} in run${run_}`);
      await compare(p, m);
    }),
    { numRuns: 8, seed: 4242, endOnFailure: true },
  );
  await waitPushed(d, "model");
  const down = await mesa(["unmount"], d.env);
  assert.equal(down.code, 0, down.stderr);

  // What the server has, not what the local overlay replays: a `git clone`, and a mount with a
  // fresh data dir (no overlay). Git keeps no empty directories, so the model drops them too.
  const expected = join(dir, "expected");
  assert.equal((await run("cp", ["-a", plain, expected])).code, 0);
  assert.equal((await run("find", [expected, "-mindepth", "1", "-type", "d", "-empty", "-delete"])).code, 0);
  const clone = cloneRepo(serve, "model", join(dir, "clone"));
  for (let i = 1; i <= run_; i++) {
    const want = join(expected, `run${i}`);
    if (!existsSync(want)) {
      assert.equal(existsSync(join(clone, `run${i}`)), false, `run${i} should be absent`);
      continue;
    }
    await compare(want, join(clone, `run${i}`));
  }
  d = await fx.daemon(serve, { name: "fresh" });
  for (let i = 1; i <= run_; i++) {
    const want = join(expected, `run${i}`);
    if (existsSync(want)) await compare(want, join(d.root("model"), `run${i}`));
  }
});
