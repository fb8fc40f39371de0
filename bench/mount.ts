/**
 * Benchmark: a mesa mount against a local checkout, both served by `mesa serve` on loopback.
 * Usage: node dist/bench/mount.js [--no-prefetch] [repo-path …]  (default: a generated 20,000-file repo with a
 * 100 MB file). Prints one table per repo: mount-to-ready vs clone time, first byte, find,
 * ls -lR and grep -r cold and warm, reading the largest file, and the daemon's peak RSS.
 * "cold" means a fresh mount with an empty cache for mesa, and dropped page caches for disk (the
 * bench stops when they cannot be dropped). Warm and disk rows start once the prefetcher is idle.
 * Every command's output through the mount is compared with the same command's on the clone.
 */
import { execFileSync } from "node:child_process";
import { existsSync, readFileSync, rmSync } from "node:fs";
import { basename, join } from "node:path";
import { controlRequest } from "../src/daemon/control.js";
import { generateRepo, mesa, mesaEnv, run, stopSandbox, tempDir } from "../test/helpers/mount.js";
import { type ServeHandle, startServe } from "../test/helpers/serve.js";

interface Row {
  metric: string;
  mesa?: number;
  clone?: number;
  note?: string;
}

async function timed(fn: () => Promise<unknown>): Promise<number> {
  const t = process.hrtime.bigint();
  await fn();
  return Number(process.hrtime.bigint() - t) / 1e6;
}

/** Runs a shell command; its exit code must be `expect` (0 unless said), else the bench stops. */
async function sh(script: string, opts: { expect?: number; timeoutMs?: number } = {}): Promise<string> {
  const r = await run("sh", ["-c", script], { timeoutMs: opts.timeoutMs ?? 600_000 });
  if (r.code !== (opts.expect ?? 0))
    throw new Error(`${script}: exit ${r.code} (expected ${opts.expect ?? 0}): ${r.stderr.slice(0, 500)}`);
  return r.stdout;
}

/**
 * Empties the page cache so "cold" disk rows are cold. Failing (not root, a container) stops
 * the bench: a table whose cold disk rows are warm would compare the wrong things.
 */
function dropCaches(): void {
  try {
    execFileSync("sh", ["-c", "sync; echo 3 > /proc/sys/vm/drop_caches"], {
      stdio: ["ignore", "ignore", "pipe"],
    });
  } catch (err) {
    throw new Error(
      `cannot drop the page cache (${String((err as { stderr?: Buffer }).stderr ?? err).trim()}): run the bench as root on a machine that allows it`,
    );
  }
}

/** Waits until the daemon's prefetcher has nothing queued or in flight (bounded), so warm and disk rows do not share the CPU with it. */
async function prefetchIdle(socket: string, timeoutMs = 30 * 60_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  for (let quiet = 0; Date.now() < end; ) {
    const stats = (await controlRequest(socket, { cmd: "stats" })) as {
      cache?: { prefetch?: { queued: number; inFlight: number } };
    };
    const p = stats.cache?.prefetch;
    if (!p) throw new Error("the daemon's stats have no prefetch section");
    // Idle twice in a row: a directory listing may queue more right after.
    quiet = p.queued === 0 && p.inFlight === 0 ? quiet + 1 : 0;
    if (quiet >= 2) return;
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`the prefetcher did not go idle within ${timeoutMs / 1000} s`);
}

/** The same command's output under the mount and under the clone, made comparable. */
function sameOutput(what: string, mesaOut: string, diskOut: string): void {
  if (mesaOut !== diskOut) {
    const a = mesaOut.split("\n");
    const b = diskOut.split("\n");
    const i = a.findIndex((l, k) => l !== b[k]);
    throw new Error(
      `${what}: the mount's output differs from the clone's at line ${i + 1}: ${JSON.stringify(a[i])} vs ${JSON.stringify(b[i])}`,
    );
  }
}

/** Output lines relative to `root`, sorted (find and grep list paths in directory order). */
function relativeSorted(out: string, root: string): string {
  return out
    .split("\n")
    .filter((l) => l.length > 0)
    .map((l) => l.split(`${root}/`).join("").split(root).join("."))
    .sort()
    .join("\n");
}

/** `ls -lR --time-style=+T` reduced to what both trees share: headers, and type, mode, size and name of files and links. */
function lsComparable(out: string, root: string): string {
  return out
    .split("\n")
    .filter((l) => l.length > 0 && !l.startsWith("total "))
    .map((l) => {
      if (l.endsWith(":") && l.startsWith(root)) return l.slice(root.length) || ".";
      const m = /^(\S+)\s+\d+\s+\S+\s+\S+\s+(\d+)\s+T\s(.*)$/.exec(l);
      if (!m) return `? ${l}`;
      // Directory sizes and link counts are each filesystem's own business.
      return m[1]!.startsWith("d") ? `d ${m[3]}` : `${m[1]!.slice(0, 10)} ${m[2]} ${m[3]}`;
    })
    .join("\n");
}

function peakRss(pid: number): number {
  const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return m ? Number(m[1]) * 1024 : 0;
}

function largestFile(dir: string): string {
  const out = execFileSync("sh", [
    "-c",
    `cd "${dir}" && find . -path ./.git -prune -o -type f -printf '%s %P\\n' | sort -n | tail -1`,
  ])
    .toString()
    .trim();
  return out.slice(out.indexOf(" ") + 1);
}

/** `--no-prefetch` runs mesa with the prefetcher off, to separate its cost from the mount's. */
const extraEnv: Record<string, string> = process.argv.includes("--no-prefetch")
  ? { MESA_PREFETCH_ENABLED: "false" }
  : {};

async function benchRepo(serve: ServeHandle, src: string, slug: string, work: string): Promise<Row[]> {
  const rows: Row[] = [];
  const repo = slug.split("/")[1];
  await serve.importRepo(slug, src);
  const auth = `http.extraHeader=Authorization: Basic ${Buffer.from(`mesa:${serve.adminKey}`).toString("base64")}`;
  const url = `${serve.url}/${slug}.git`;

  // Local disk: clones.
  const clone = join(work, "clone");
  const cloneMs = await timed(() => sh(`git -c '${auth}' clone -q --depth 1 '${url}' '${clone}'`));
  const blobless = join(work, "blobless");
  const bloblessMs = await timed(() =>
    sh(`git -c '${auth}' clone -q --filter=blob:none '${url}' '${blobless}'`),
  );
  rmSync(blobless, { recursive: true, force: true });
  const big = largestFile(clone);

  // mesa: mount-to-ready (fresh cache), then first byte.
  const env = mesaEnv(join(work, "mesa"), {
    MESA_ORG: "local",
    MESA_API_KEY: serve.adminKey,
    MESA_SERVICE_URL: serve.url,
    ...extraEnv,
  });
  const root = join(env.MESA_MOUNT_POINT as string, "local", repo);
  const socket = join(env.MESA_RUNTIME_DIR as string, "mesa.sock");
  const freshMount = async (): Promise<number> => {
    await stopSandbox(env);
    rmSync(env.MESA_CACHE_PATH as string, { recursive: true, force: true });
    rmSync(join(env.MESA_DATA_DIR as string, "metadata"), { recursive: true, force: true });
    return timed(async () => {
      const r = await mesa(["mount", "-d"], env, 300_000);
      if (r.code !== 0) throw new Error(`mount -d failed: ${r.stderr}`);
    });
  };
  try {
    const mountMs = await freshMount();
    rows.push({ metric: "ready (mount -d / clone --depth 1)", mesa: mountMs, clone: cloneMs });
    rows.push({ metric: "clone --filter=blob:none", clone: bloblessMs, note: "for reference" });
    let firstOut = "";
    const firstMesa = await timed(async () => {
      firstOut = await sh(`head -c 1 '${root}/README.md'`);
    });
    dropCaches();
    let firstDiskOut = "";
    const firstDisk = await timed(async () => {
      firstDiskOut = await sh(`head -c 1 '${clone}/README.md'`);
    });
    sameOutput("head -c 1 README.md", firstOut, firstDiskOut);
    rows.push({ metric: "first byte of README.md (cold)", mesa: firstMesa, clone: firstDisk });

    // Each command's output is kept and compared with the clone's: a broken mount cannot print fast rows.
    // grep finds nothing (exit 1) but lists every file with its count, so every file was read.
    for (const [name, cmd, expect, comparable] of [
      ["find", (d: string) => `find '${d}' -path '*/.git' -prune -o -print`, 0, relativeSorted],
      ["ls -lR", (d: string) => `ls -lR --time-style=+T --ignore=.git '${d}'`, 0, lsComparable],
      ["grep -r", (d: string) => `grep -r --exclude-dir=.git -c zzzz-not-there '${d}'`, 1, relativeSorted],
    ] as const) {
      await freshMount();
      let coldOut = "";
      let warmOut = "";
      let diskColdOut = "";
      let diskWarmOut = "";
      const cold = await timed(async () => {
        coldOut = await sh(cmd(root), { expect });
      });
      await prefetchIdle(socket);
      const warm = await timed(async () => {
        warmOut = await sh(cmd(root), { expect });
      });
      dropCaches();
      const diskCold = await timed(async () => {
        diskColdOut = await sh(cmd(clone), { expect });
      });
      const diskWarm = await timed(async () => {
        diskWarmOut = await sh(cmd(clone), { expect });
      });
      const want = comparable(diskColdOut, clone);
      sameOutput(`${name} cold`, comparable(coldOut, root), want);
      sameOutput(`${name} warm`, comparable(warmOut, root), want);
      sameOutput(`${name} disk warm`, comparable(diskWarmOut, clone), want);
      rows.push({ metric: `${name} cold`, mesa: cold, clone: diskCold });
      rows.push({ metric: `${name} warm`, mesa: warm, clone: diskWarm });
    }

    await freshMount();
    const readMesa = await timed(() => sh(`cat '${root}/${big}' > /dev/null`));
    await prefetchIdle(socket);
    dropCaches();
    const readDisk = await timed(() => sh(`cat '${clone}/${big}' > /dev/null`));
    // Checked after timing: the bytes read through the mount are the clone's.
    await sh(`cmp '${root}/${big}' '${clone}/${big}'`);
    const size = Number(execFileSync("stat", ["-c", "%s", join(clone, big)]).toString());
    rows.push({
      metric: `read ${big} (${(size / 1e6).toFixed(1)} MB, cold)`,
      mesa: readMesa,
      clone: readDisk,
    });
    const pid = Number(readFileSync(join(env.MESA_RUNTIME_DIR as string, "mesa.pid"), "utf8"));
    rows.push({ metric: "daemon peak RSS (MB)", note: (peakRss(pid) / 1e6).toFixed(0) });
  } finally {
    await stopSandbox(env);
  }
  return rows;
}

function printTable(title: string, rows: Row[]): void {
  const ms = (v?: number) =>
    v === undefined ? "" : v >= 1000 ? `${(v / 1000).toFixed(2)} s` : `${v.toFixed(0)} ms`;
  const lines = [
    `\n${title}`,
    "| metric | mesa | local disk (git clone) | mesa / disk |",
    "|---|---:|---:|---:|",
    ...rows.map((r) => {
      const ratio = r.mesa !== undefined && r.clone ? `${(r.mesa / r.clone).toFixed(2)}×` : (r.note ?? "");
      return `| ${r.metric} | ${ms(r.mesa)} | ${ms(r.clone)} | ${ratio} |`;
    }),
  ];
  process.stdout.write(`${lines.join("\n")}\n`);
}

async function main(): Promise<void> {
  const inputs = process.argv.slice(2).filter((a) => a !== "--no-prefetch");
  const work = tempDir("bench");
  const serve = await startServe({ startTimeoutMs: 60_000 });
  try {
    if (inputs.length === 0) {
      const src = join(work, "gen");
      process.stderr.write("generating a 20,000-file repo with a 100 MB file…\n");
      generateRepo(src, { files: 20_000, bigFileBytes: 100 * 1024 * 1024 });
      printTable(
        "generated repo: 20,000 files + 100 MB file",
        await benchRepo(serve, src, "local/gen", join(work, "g")),
      );
    }
    for (const [i, p] of inputs.entries()) {
      if (!existsSync(p)) throw new Error(`${p} does not exist`);
      const name = `repo${i}`;
      printTable(`${p}`, await benchRepo(serve, p, `local/${name}`, join(work, `r${i}-${basename(p)}`)));
    }
  } finally {
    await serve.stop();
    rmSync(work, { recursive: true, force: true });
  }
}

main().catch((err) => {
  process.stderr.write(`bench failed: ${(err as Error).message}\n`);
  process.exit(1);
});
