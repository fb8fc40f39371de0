/**
 * runningDaemon: a daemon runs only when its recorded pid is alive, not a zombie, and its
 * control socket accepts a connection.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { runningDaemon } from "../src/daemon/liveness.js";
import { waitFor } from "./helpers/mount.js";

test("liveness: alive with a socket runs; a zombie, a dead pid or a silent socket does not", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "mesa-liveness-"));
  const config = { daemon: { runtimeDir: dir } } as Parameters<typeof runningDaemon>[0];
  const server = createServer((c) => c.end());
  await new Promise<void>((r) => server.listen(join(dir, "mesa.sock"), r));
  // `sleep 0 &` exits and is never reaped by the `sleep 5` its shell became: a zombie.
  const parent = spawn("sh", ["-c", "sleep 0 & echo $!; exec sleep 5"], {
    stdio: ["ignore", "pipe", "ignore"],
  });
  t.after(() => {
    parent.kill("SIGKILL");
    server.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const zombie = Number(
    await new Promise<string>((r) => parent.stdout.once("data", (b: Buffer) => r(b.toString()))),
  );
  const pidFile = join(dir, "mesa.pid");

  writeFileSync(pidFile, `${process.pid}\n`);
  assert.deepEqual(await runningDaemon(config), { pid: process.pid, socket: join(dir, "mesa.sock") });

  writeFileSync(pidFile, `${zombie}\n`);
  const state = () => readFileSync(`/proc/${zombie}/stat`, "utf8").split(") ")[1]?.[0];
  assert.ok(await waitFor(() => state() === "Z", 5000), "the test process became a zombie");
  assert.equal(await runningDaemon(config), undefined);

  writeFileSync(pidFile, "999999999\n");
  assert.equal(await runningDaemon(config), undefined);

  writeFileSync(pidFile, `${process.pid}\n`);
  await new Promise<void>((r) => server.close(() => r()));
  assert.equal(await runningDaemon(config), undefined, "nothing answers on the socket");
});
