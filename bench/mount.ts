/**
 * Benchmark: a mesa mount against a local checkout, both served by `mesa serve` on loopback.
 * Usage: node dist/bench/mount.js [--no-prefetch] [repo-path …]  (default: a generated 20,000-file repo with a
 * 100 MB file). Prints one table per repo: mount-to-ready vs clone time, first byte, find,
 * ls -lR and grep -r cold and warm, reading the largest file, and the daemon's peak RSS.
 * "cold" means a fresh mount with an empty cache for mesa, and dropped page caches for disk.
 */
import { execFileSync } from "node:child_process";
import { existsSync, readFileSync, rmSync } from "node:fs";
import { basename, join } from "node:path";
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

async function sh(script: string, timeoutMs = 600_000): Promise<void> {
  const r = await run("sh", ["-c", script], { timeoutMs });
  if (r.code !== 0 && r.code !== 1) throw new Error(`${script}: exit ${r.code}: ${r.stderr.slice(0, 500)}`);
}

function dropCaches(): void {
  try {
    execFileSync("sh", ["-c", "sync; echo 3 > /proc/sys/vm/drop_caches"]);
  } catch {
    // not root: "cold" disk numbers are then warm-ish; the table says so
  }
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
    const firstMesa = await timed(() => sh(`head -c 1 '${root}/README.md' > /dev/null`));
    dropCaches();
    const firstDisk = await timed(() => sh(`head -c 1 '${clone}/README.md' > /dev/null`));
    rows.push({ metric: "first byte of README.md (cold)", mesa: firstMesa, clone: firstDisk });

    for (const [name, cmd] of [
      ["find", (d: string) => `find '${d}' -path '*/.git' -prune -o -print > /dev/null`],
      ["ls -lR", (d: string) => `ls -lR '${d}' > /dev/null`],
      ["grep -r", (d: string) => `grep -r --exclude-dir=.git -c zzzz-not-there '${d}' > /dev/null`],
    ] as const) {
      await freshMount();
      const cold = await timed(() => sh(cmd(root)));
      const warm = await timed(() => sh(cmd(root)));
      dropCaches();
      const diskCold = await timed(() => sh(cmd(clone)));
      const diskWarm = await timed(() => sh(cmd(clone)));
      rows.push({ metric: `${name} cold`, mesa: cold, clone: diskCold });
      rows.push({ metric: `${name} warm`, mesa: warm, clone: diskWarm });
    }

    await freshMount();
    const readMesa = await timed(() => sh(`cat '${root}/${big}' > /dev/null`));
    dropCaches();
    const readDisk = await timed(() => sh(`cat '${clone}/${big}' > /dev/null`));
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
