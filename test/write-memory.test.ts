/**
 * Writing a large file streams through bounded memory: the daemon's peak RSS (VmHWM in
 * /proc/<pid>/status) stays under 300 MB while a 2 GB file is written with `conv=fsync`
 * (content into the overlay file, hashing and the pushed pack streamed from disk), and the
 * server then has the whole file.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { fixture } from "./helpers/fixture.js";
import { gitSync, run } from "./helpers/mount.js";
import { importSmallRepo, waitPushed } from "./helpers/write.js";

const MB = 1024 * 1024;
const FILE_MB = Number(process.env.MESA_TEST_BIG_FILE_MB ?? 2048);
const PEAK_LIMIT = 300 * MB;

function peakRss(pid: number): number {
  const kb = /^VmHWM:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1];
  assert.ok(kb, "no VmHWM in /proc/<pid>/status");
  return Number(kb) * 1024;
}

test(`writing a ${FILE_MB} MB file with conv=fsync keeps the daemon under 300 MB peak RSS`, async (t) => {
  const fx = fixture(t, "bigwrite");
  const dir = fx.dir;
  const serve = await fx.serve();
  await importSmallRepo(serve, dir, "big");
  const d = await fx.daemon(serve, { env: { MESA_PREFETCH_ENABLED: "false" } });
  const pid = (await d.status()).pid;

  const dd = await d.sh(
    "big",
    `dd if=/dev/zero of=big.bin bs=1M count=${FILE_MB} conv=fsync status=none`,
    15 * 60_000,
  );
  assert.equal(dd.code, 0, dd.stderr);
  await waitPushed(d, "big", 10 * 60_000);
  const peak = peakRss(pid);
  t.diagnostic(`peak RSS ${Math.round(peak / MB)} MB for a ${FILE_MB} MB file`);
  assert.ok(peak < PEAK_LIMIT, `peak RSS ${Math.round(peak / MB)} MB ≥ 300 MB`);

  // The server has exactly the bytes written: the blob oid of FILE_MB MiB of zeros.
  const gitDir = join(serve.dataDir, "repos", serve.org, "big.git");
  const onServer = gitSync(dir, ["--git-dir", gitDir, "rev-parse", "main:big.bin"]).trim();
  const zeros = await run("sh", ["-c", `head -c ${FILE_MB * MB} /dev/zero | git hash-object --stdin`], {
    timeoutMs: 300_000,
  });
  assert.equal(onServer, zeros.stdout.trim());
});
