/**
 * Test fixture process: mounts one snapshot built from a local Git repo with the real `git`
 * CLI (no server), so the FUSE adapter and workspace filesystem are tested on their own.
 * Usage: node snapshot-mount.js <repoDir> <mountPoint> <org> <repo>; prints "ready" then
 * serves until SIGTERM. It runs as its own process: the test never touches a mount it serves.
 */
import { execFileSync } from "node:child_process";
import { mountFileSystem } from "../../src/fuse/adapter.js";
import { WorkspaceFileSystem } from "../../src/workspace/filesystem.js";
import type { RepoSnapshot, SnapshotEntry } from "../../src/workspace/snapshot.js";

function git(repo: string, args: string[]): Buffer {
  return execFileSync("git", ["-C", repo, ...args], { maxBuffer: 1 << 30 });
}

export function snapshotFromGit(repoDir: string, org: string, repo: string): RepoSnapshot {
  const commitOid = git(repoDir, ["rev-parse", "HEAD"]).toString().trim();
  const rootTree = git(repoDir, ["rev-parse", "HEAD^{tree}"]).toString().trim();
  const commitTime = new Date(Number(git(repoDir, ["show", "-s", "--format=%ct", "HEAD"]).toString()) * 1000);
  const trees = new Map<string, SnapshotEntry[]>();
  const treeOids = git(repoDir, ["ls-tree", "-r", "-t", "-z", "--format=%(objecttype) %(objectname)", "HEAD"])
    .toString()
    .split("\0")
    .filter((l) => l.startsWith("tree "))
    .map((l) => l.slice(5));
  for (const t of [rootTree, ...treeOids]) {
    const entries = git(repoDir, ["ls-tree", "-z", t])
      .toString()
      .split("\0")
      .filter((l) => l.length > 0)
      .map((l) => {
        const tab = l.indexOf("\t");
        const [mode, , oid] = l.slice(0, tab).split(" ");
        return { mode: mode === "040000" ? "40000" : mode, name: l.slice(tab + 1), oid };
      });
    trees.set(t, entries);
  }
  const sizes = new Map<string, number>();
  const symlinks = new Map<string, string>();
  for (const line of git(repoDir, ["ls-tree", "-r", "-l", "-z", "HEAD"]).toString().split("\0")) {
    if (!line) continue;
    const [mode, , oid, size] = line.slice(0, line.indexOf("\t")).split(/ +/);
    sizes.set(oid, Number(size));
    if (mode === "120000") symlinks.set(oid, git(repoDir, ["cat-file", "blob", oid]).toString("utf8"));
  }
  return {
    org,
    repo,
    revision: "default:HEAD",
    commitOid,
    commitTime,
    rootTree,
    trees,
    sizes,
    symlinks,
    readOnly: true,
  };
}

async function main(): Promise<void> {
  const [repoDir, mountPoint, org, repo] = process.argv.slice(2);
  const snap = snapshotFromGit(repoDir, org, repo);
  const fs = new WorkspaceFileSystem(
    {
      read: async (_s, oid, offset, length) =>
        git(repoDir, ["cat-file", "blob", oid]).subarray(offset, offset + length),
      pin: () => undefined,
      unpin: () => undefined,
    },
    { uid: process.getuid?.() ?? 0, gid: process.getgid?.() ?? 0, readTimeoutMs: 10_000, prefetchDepth: 0 },
  );
  fs.setRepo(snap);
  const m = await mountFileSystem(mountPoint, fs);
  process.stdout.write("ready\n");
  process.on("SIGTERM", () => void m.unmount().finally(() => process.exit(0)));
}

if (process.argv[1]?.endsWith("snapshot-mount.js")) {
  main().catch((err) => {
    process.stderr.write(`${(err as Error).message}\n`);
    process.exit(1);
  });
}
