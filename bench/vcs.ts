/**
 * VCS client benchmark: `node dist/bench/vcs.js [files=20000]`.
 * Builds a repository of generated files, serves it with the real `git http-backend` on
 * 127.0.0.1 and measures, side by side with the git CLI against the same server:
 * - pack parsing throughput (objects/s, MB/s) of a local full pack;
 * - all trees (one fetch, blob:none) + all blob sizes (object-info);
 * - all blobs (batched wants): batches of 1000 and 5000, and 2 batches in flight;
 * - `git clone --filter=blob:none --no-checkout` and `git clone --depth 1`.
 */
import { spawn } from "node:child_process";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { entryType, GitRemote, type Oid, PackParser } from "../src/vcs/index.js";
import { serveGit } from "../test/helpers/git-http.js";
import { gitRaw, makeBigRepo, removeDir, tempDir } from "../test/helpers/repos.js";

const files = Number(process.argv[2] ?? 20_000);

/** Wall time and this process's CPU time (the client's share; the server runs in child processes). */
async function timed<T>(fn: () => Promise<T>): Promise<[T, number, number]> {
  const t = performance.now();
  const c = process.cpuUsage();
  const v = await fn();
  return [v, performance.now() - t, cpuMs(c)];
}

/** Async on purpose: the server runs in this process, a synchronous spawn would deadlock it. */
function gitClone(args: string[], dest: string): Promise<number> {
  const t = performance.now();
  return new Promise((resolve, reject) => {
    const child = spawn("git", ["-c", "protocol.version=2", "clone", "-q", ...args, dest], {
      env: { PATH: process.env.PATH, HOME: process.env.HOME, GIT_CONFIG_NOSYSTEM: "1" },
      stdio: ["ignore", "ignore", "pipe"],
    });
    let stderr = "";
    child.stderr.on("data", (d: Buffer) => {
      stderr += d.toString();
    });
    child.on("close", (code) =>
      code === 0 ? resolve(performance.now() - t) : reject(new Error(`git clone: ${stderr}`)),
    );
  });
}

function cpuMs(since: NodeJS.CpuUsage): number {
  const u = process.cpuUsage(since);
  return (u.user + u.system) / 1000;
}

async function main(): Promise<void> {
  const root = tempDir("mesa-bench-");
  try {
    const t0 = performance.now();
    const big = makeBigRepo(root, files, "org/big.git");
    console.log(`generated ${files} files in ${((performance.now() - t0) / 1000).toFixed(1)} s`);

    // Pack parsing throughput, without network: a full pack from pack-objects, fed in 64 KiB chunks.
    const pack = gitRaw(
      big.bare,
      ["pack-objects", "--stdout", "--revs", "-q", "--delta-base-offset"],
      "refs/heads/main\n",
    );
    let parsed = 0;
    const tp = performance.now();
    const cp = process.cpuUsage();
    for (let i = 0; i < 3; i++) {
      const p = new PackParser();
      for (let o = 0; o < pack.length; o += 65536) p.push(pack.subarray(o, o + 65536));
      parsed = p.end().size;
    }
    const parseMs = (performance.now() - tp) / 3;
    const parseCpu = cpuMs(cp) / 3;
    console.log(
      `pack parse: ${parsed} objects (${(pack.length / 1e6).toFixed(1)} MB pack) in ${parseMs.toFixed(0)} ms wall, ` +
        `${parseCpu.toFixed(0)} ms CPU = ${Math.round(parsed / (parseMs / 1000))} objects/s wall, ` +
        `${Math.round(parsed / (parseCpu / 1000))} objects/s CPU`,
    );

    const server = await serveGit(root);
    const url = `${server.url}/org/big.git`;
    const remote = new GitRemote({ url, timeoutMs: 120_000 });
    try {
      const [meta, metaMs, metaCpu] = await timed(async () => {
        const refs = await remote.lsRefs();
        const { trees } = await remote.fetchCommitTrees(refs.head!.oid!);
        const blobs: Oid[] = [];
        for (const entries of trees.values())
          for (const e of entries) if (entryType(e.mode) === "blob") blobs.push(e.oid);
        const sizes = await remote.objectSizes(blobs);
        return { trees: trees.size, blobs, totalSize: [...sizes.values()].reduce((a, b) => a + b, 0) };
      });
      console.log(
        `mesa: ls-refs + all trees (${meta.trees}) + all sizes (${meta.blobs.length} blobs, ` +
          `${(meta.totalSize / 1e6).toFixed(1)} MB): ${metaMs.toFixed(0)} ms (client CPU ${metaCpu.toFixed(0)} ms), ${remote.stats.requests} requests`,
      );
      const [got, blobMs, blobCpu] = await timed(() => remote.fetchBlobs(meta.blobs, { batchSize: 1000 }));
      console.log(
        `mesa: all blobs, batches of 1000, sequential: ${blobMs.toFixed(0)} ms ` +
          `(client CPU ${blobCpu.toFixed(0)} ms, ${Math.round(got.size / (blobMs / 1000))} blobs/s)`,
      );
      // Larger batches amortize upload-pack's per-request cost (it searches deltas among the wants).
      const [, bigBatchMs] = await timed(() => remote.fetchBlobs(meta.blobs, { batchSize: 5000 }));
      console.log(`mesa: all blobs, batches of 5000, sequential: ${bigBatchMs.toFixed(0)} ms`);
      const batches: Oid[][] = [];
      for (let i = 0; i < meta.blobs.length; i += 2500) batches.push(meta.blobs.slice(i, i + 2500));
      const [, parMs] = await timed(async () => {
        let next = 0;
        const worker = async () => {
          while (next < batches.length) await remote.fetchBlobs(batches[next++]!);
        };
        await Promise.all([worker(), worker()]);
      });
      console.log(`mesa: all blobs, batches of 2500, 2 in flight: ${parMs.toFixed(0)} ms`);
      console.log(`mesa: total trees+sizes+blobs (sequential): ${(metaMs + blobMs).toFixed(0)} ms`);

      const filterMs = await gitClone(
        ["--filter=blob:none", "--no-checkout", url],
        join(root, "clone-filter"),
      );
      console.log(`git clone --filter=blob:none --no-checkout: ${filterMs.toFixed(0)} ms`);
      const depthMs = await gitClone(["--depth", "1", url], join(root, "clone-depth"));
      console.log(`git clone --depth 1 (with checkout): ${depthMs.toFixed(0)} ms`);
      const depthNoCoMs = await gitClone(
        ["--depth", "1", "--no-checkout", url],
        join(root, "clone-depth-nco"),
      );
      console.log(`git clone --depth 1 --no-checkout: ${depthNoCoMs.toFixed(0)} ms`);
    } finally {
      await remote.close();
      await server.close();
    }
  } finally {
    removeDir(root);
  }
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
