/**
 * Repository metadata cached on disk by oid, so mounting a commit seen before needs no tree
 * fetch and no object-info. Trees and commits are immutable, so entries never go stale.
 *
 *   <path>/snapshots/<commit>   everything one mounted commit needs, in one file (fast remount)
 *   <path>/sizes/ab.bin         blob sizes, append-only records (oid bytes, u64 size): most of
 *                               a new commit's blobs have a size known from an earlier one
 *
 * Values are encoded with v8.serialize; an unreadable file counts as absent and is removed.
 * Keep this directory outside the blob cache directory: it is not under the blob cache cap.
 */
import { appendFile, mkdir, readdir, readFile, rm, truncate } from "node:fs/promises";
import { join } from "node:path";
import { deserialize, serialize } from "node:v8";
import { writeFileAtomic } from "../atomic-file.js";
import { MesaError } from "../errors.js";
import type { Logger } from "../log.js";
import type { TreeEntry } from "../vcs/objects.js";
import { assertOid } from "./verify.js";

export type { TreeEntry };

/** What a mounted commit needs: its root tree, every tree below it, and every blob's size. */
export interface TreeSnapshot {
  commit: string;
  tree: string;
  trees: Map<string, TreeEntry[]>;
  sizes: Map<string, number>;
  /** Committer time of the commit, seconds since the epoch (file times in the mount). */
  commitTime?: number;
}

const TREE_MODES = new Set(["100644", "100755", "120000", "40000", "160000"]);

function isNotFound(err: unknown): boolean {
  return (err as NodeJS.ErrnoException)?.code === "ENOENT";
}

function isEntries(v: unknown): v is TreeEntry[] {
  return (
    Array.isArray(v) &&
    v.every(
      (e) =>
        e !== null &&
        typeof e === "object" &&
        typeof e.name === "string" &&
        typeof e.oid === "string" &&
        TREE_MODES.has(e.mode),
    )
  );
}

export class TreeStore {
  readonly path: string;
  private readonly logger?: Logger;

  constructor(opts: { path: string; logger?: Logger }) {
    this.path = opts.path;
    this.logger = opts.logger;
  }

  /**
   * Creates the directories, removes temp files left by a crash and cuts a size record torn
   * by a crash, so records appended later stay aligned.
   */
  async open(): Promise<void> {
    for (const d of ["snapshots", "sizes"]) await mkdir(join(this.path, d), { recursive: true });
    const snaps = join(this.path, "snapshots");
    for (const name of await readdir(snaps))
      if (name.includes(".tmp-")) await rm(join(snaps, name), { force: true });
    for (const name of await readdir(join(this.path, "sizes"))) {
      const m = /^([0-9a-f]{2})\.bin$/.exec(name);
      if (!m) continue;
      const { end, length } = await this.scanSizes(m[1]!);
      if (end < length) await truncate(this.sizesFile(m[1]!), end);
    }
  }

  async getSnapshot(commit: string): Promise<TreeSnapshot | undefined> {
    assertOid(commit);
    const file = join(this.path, "snapshots", commit);
    const v = await this.readValue(file);
    if (v === undefined) return undefined;
    const s = v as {
      commit?: unknown;
      tree?: unknown;
      trees?: unknown;
      sizes?: unknown;
      commitTime?: unknown;
    };
    if (
      s.commit === commit &&
      typeof s.tree === "string" &&
      s.trees instanceof Map &&
      s.sizes instanceof Map &&
      [...s.trees.values()].every(isEntries)
    )
      return {
        commit,
        tree: s.tree,
        trees: s.trees,
        sizes: s.sizes,
        ...(typeof s.commitTime === "number" ? { commitTime: s.commitTime } : {}),
      } as TreeSnapshot;
    this.logger?.warn({ file }, "unreadable metadata cache file; removed");
    await rm(file, { force: true });
    return undefined;
  }

  async putSnapshot(s: TreeSnapshot): Promise<void> {
    assertOid(s.commit);
    assertOid(s.tree);
    if (!s.trees.has(s.tree))
      throw new MesaError("INVALID_ARGUMENT", `snapshot of ${s.commit} lacks its root tree ${s.tree}`);
    for (const [oid, entries] of s.trees)
      if (!isEntries(entries)) throw new MesaError("INVALID_ARGUMENT", `tree ${oid} has malformed entries`);
    if (s.commitTime !== undefined && !Number.isFinite(s.commitTime))
      throw new MesaError("INVALID_ARGUMENT", `bad commit time for ${s.commit}`);
    const data = serialize({
      commit: s.commit,
      tree: s.tree,
      trees: s.trees,
      sizes: s.sizes,
      commitTime: s.commitTime,
    });
    await writeFileAtomic(join(this.path, "snapshots", s.commit), data);
  }

  /** Sizes known for `oids` (unknown ones are absent from the result). */
  async getSizes(oids: Iterable<string>): Promise<Map<string, number>> {
    const byPrefix = new Map<string, string[]>();
    for (const oid of oids) {
      assertOid(oid);
      const p = oid.slice(0, 2);
      const list = byPrefix.get(p);
      if (list) list.push(oid);
      else byPrefix.set(p, [oid]);
    }
    const out = new Map<string, number>();
    for (const [prefix, list] of byPrefix) {
      const known = await this.readSizes(prefix);
      for (const oid of list) {
        const n = known.get(oid);
        if (n !== undefined) out.set(oid, n);
      }
    }
    return out;
  }

  async putSizes(sizes: Map<string, number>): Promise<void> {
    const byPrefix = new Map<string, Array<[string, number]>>();
    for (const [oid, size] of sizes) {
      assertOid(oid);
      if (!Number.isSafeInteger(size) || size < 0)
        throw new MesaError("INVALID_ARGUMENT", `bad size ${size} for blob ${oid}`);
      const p = oid.slice(0, 2);
      const list = byPrefix.get(p);
      if (list) list.push([oid, size]);
      else byPrefix.set(p, [[oid, size]]);
    }
    for (const [prefix, list] of byPrefix) {
      const known = await this.readSizes(prefix);
      const fresh = list.filter(([oid]) => !known.has(oid));
      if (fresh.length === 0) continue;
      // One buffer and one append per prefix: records from concurrent writers never interleave
      // mid-record (and 40,000 small buffers would each be a separate allocation).
      const out = Buffer.allocUnsafe(fresh.reduce((n, [oid]) => n + 1 + oid.length / 2 + 8, 0));
      let at = 0;
      for (const [oid, size] of fresh) {
        out[at] = oid.length / 2;
        at += 1 + out.write(oid, at + 1, "hex");
        out.writeUInt32BE(Math.floor(size / 2 ** 32), at);
        out.writeUInt32BE(size >>> 0, at + 4);
        at += 8;
      }
      await appendFile(this.sizesFile(prefix), out);
    }
  }

  private async readSizes(prefix: string): Promise<Map<string, number>> {
    return (await this.scanSizes(prefix)).sizes;
  }

  /** Parses a sizes file; `end` is where the whole records end. */
  private async scanSizes(
    prefix: string,
  ): Promise<{ sizes: Map<string, number>; end: number; length: number }> {
    const out = new Map<string, number>();
    let buf: Buffer;
    try {
      buf = await readFile(this.sizesFile(prefix));
    } catch (err) {
      if (isNotFound(err)) return { sizes: out, end: 0, length: 0 };
      throw err;
    }
    let pos = 0;
    // A record cut short by a crash ends the file; everything before it is whole.
    while (pos < buf.length) {
      const len = buf[pos];
      if ((len !== 20 && len !== 32) || pos + 1 + len + 8 > buf.length) break;
      const oid = buf.toString("hex", pos + 1, pos + 1 + len);
      out.set(oid, buf.readUInt32BE(pos + 1 + len) * 2 ** 32 + buf.readUInt32BE(pos + 5 + len));
      pos += 1 + len + 8;
    }
    return { sizes: out, end: pos, length: buf.length };
  }

  private async readValue(file: string): Promise<unknown> {
    let buf: Buffer;
    try {
      buf = await readFile(file);
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
    try {
      return deserialize(buf);
    } catch {
      this.logger?.warn({ file }, "unreadable metadata cache file; removed");
      await rm(file, { force: true });
      return undefined;
    }
  }

  private sizesFile(prefix: string): string {
    return join(this.path, "sizes", `${prefix}.bin`);
  }
}
