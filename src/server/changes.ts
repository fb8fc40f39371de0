import { readFile, rename, rm, writeFile } from "node:fs/promises";
import path from "node:path";
import {
  type Commit,
  changeIdFromOid,
  isChangeId,
  parseCommit,
  ROOT_CHANGE_ID,
  type Signature,
  serializeCommit,
} from "../vcs/objects.js";
import { badRequest, conflict, notFound } from "./errors.js";
import { git, OID_RE, runGit } from "./git.js";
import type { DataDir } from "./storage.js";

/**
 * Mesa changes on top of Git: each commit carries a `change-id` header (or gets one derived
 * from its oid); `refs/mesa/changes/<id>` holds each change's current commit so amended
 * changes stay reachable; bookmarks are `refs/heads/*`.
 */
export const CHANGE_REF_PREFIX = "refs/mesa/changes/";

export function changeIdOf(oid: string, c: Commit): string {
  return c.changeId ?? changeIdFromOid(oid);
}

/** Reads commit objects with one `git cat-file --batch`. Unknown or non-commit oids are skipped. */
export async function readCommits(gitDir: string, oids: string[]): Promise<Map<string, Commit>> {
  const out = new Map<string, Commit>();
  const unique = [...new Set(oids)].filter((o) => OID_RE.test(o));
  if (unique.length === 0) return out;
  const buf = await git(gitDir, ["cat-file", "--batch"], { input: `${unique.join("\n")}\n` });
  let pos = 0;
  while (pos < buf.length) {
    const nl = buf.indexOf(0x0a, pos);
    if (nl < 0) break;
    const header = buf.toString("utf8", pos, nl).split(" ");
    pos = nl + 1;
    if (header[1] === "missing" || header.length < 3) continue;
    const size = Number(header[2]);
    const body = buf.subarray(pos, pos + size);
    pos += size + 1;
    if (header[1] === "commit") out.set(header[0]!, parseCommit(body));
  }
  return out;
}

/** The commit a revision (e.g. `refs/heads/main`) names, read in one cat-file; undefined if none. */
export async function readCommitAt(
  gitDir: string,
  rev: string,
): Promise<{ oid: string; commit: Commit } | undefined> {
  const buf = await git(gitDir, ["cat-file", "--batch"], { input: `${rev}\n` });
  const nl = buf.indexOf(0x0a);
  const header = buf.toString("utf8", 0, nl < 0 ? buf.length : nl).split(" ");
  if (header.length !== 3 || header[1] !== "commit") return undefined;
  return { oid: header[0]!, commit: parseCommit(buf.subarray(nl + 1, nl + 1 + Number(header[2]))) };
}

/** The change ids of `oids` (commits), in a map by oid. */
export async function changeIdsOf(gitDir: string, oids: string[]): Promise<Map<string, string>> {
  const commits = await readCommits(gitDir, oids);
  const ids = new Map<string, string>();
  for (const [oid, c] of commits) ids.set(oid, changeIdOf(oid, c));
  return ids;
}

/**
 * Points `refs/mesa/changes/<id>` at every commit reachable from a branch that no change ref
 * reaches yet (after a push or an import). Descendants come first in topological order, so
 * when one change has several new commits the newest one wins; a change ref that already
 * points at a more recently committed version (an amend pushed by a mount) is left alone.
 */
export function indexChanges(gitDir: string, opts: { privateRepo?: boolean } = {}): Promise<number> {
  // One indexing at a time per repo: two at once (pushes in a row, a lookup's re-index) could
  // each read the change refs before the other wrote them and put an older version back.
  const run = (indexing.get(gitDir) ?? Promise.resolve()).then(async () => {
    for (let attempt = 0; attempt < 3; attempt++) {
      const n = await indexOnce(gitDir, opts);
      if (n !== undefined) return n;
    }
    throw conflict("changes kept moving while they were indexed; retry");
  });
  const tail = run.catch(() => undefined);
  indexing.set(gitDir, tail);
  void tail.then(() => {
    if (indexing.get(gitDir) === tail) indexing.delete(gitDir);
  });
  return run;
}

const indexing = new Map<string, Promise<unknown>>();

/** The number of change refs set, or undefined when another writer moved one meanwhile. */
async function indexOnce(gitDir: string, opts: { privateRepo?: boolean }): Promise<number | undefined> {
  const revs = await git(
    gitDir,
    ["rev-list", "--topo-order", "--branches", "--not", `--glob=${CHANGE_REF_PREFIX}*`],
    {
      timeoutMs: 600_000,
    },
  );
  const oids = revs.toString("utf8").split("\n").filter(Boolean);
  if (oids.length === 0) return 0;
  const found = new Map<string, { oid: string; time: number }>();
  // Batches keep each cat-file's output bounded for big imports.
  for (let i = 0; i < oids.length; i += 5000) {
    const batch = oids.slice(i, i + 5000);
    const commits = await readCommits(gitDir, batch);
    for (const oid of batch) {
      const c = commits.get(oid);
      if (!c) continue;
      const id = changeIdOf(oid, c);
      if (!found.has(id)) found.set(id, { oid, time: c.committer.timestamp });
    }
  }
  const current = await existingChangeRefs(gitDir, [...found.keys()]);
  const currentCommits = await readCommits(gitDir, [...current.values()]);
  const updates: Array<[string, string, string]> = [];
  for (const [id, { oid, time }] of found) {
    const cur = current.get(id);
    const curCommit = cur ? currentCommits.get(cur) : undefined;
    if (cur === oid || (curCommit && curCommit.committer.timestamp > time)) continue;
    updates.push([`${CHANGE_REF_PREFIX}${id}`, oid, cur ?? NO_REF]);
  }
  if (updates.length === 0) return 0;
  if (opts.privateRepo) await addPackedRefs(gitDir, updates);
  else {
    // Compare-and-swap on every ref, all or nothing: a change amended meanwhile (REST) wins and
    // the caller indexes again.
    const cmds = updates.map(([ref, oid, old]) => `update ${ref} ${oid} ${old}\n`).join("");
    const r = await runGit(gitDir, ["update-ref", "--stdin"], { input: cmds, timeoutMs: 600_000 });
    if (r.code !== 0) return undefined;
  }
  return updates.length;
}

/** The old value that tells `update-ref` a ref must not exist yet. */
const NO_REF = "0".repeat(40);

/** Current commits of the given change ids' refs, looked up the cheaper way for the count. */
async function existingChangeRefs(gitDir: string, ids: string[]): Promise<Map<string, string>> {
  const current = new Map<string, string>();
  if (ids.length > 200) {
    // Many new changes (an import, a big push): listing every change ref beats one lookup each.
    const all = await git(gitDir, ["for-each-ref", "--format=%(objectname) %(refname)", CHANGE_REF_PREFIX], {
      timeoutMs: 600_000,
    });
    const wanted = new Set(ids);
    for (const line of all.toString("utf8").split("\n")) {
      const id = line.slice(41 + CHANGE_REF_PREFIX.length);
      if (wanted.has(id)) current.set(id, line.slice(0, 40));
    }
    return current;
  }
  const existing = await git(gitDir, ["cat-file", "--batch-check=%(objectname)"], {
    input: ids.map((id) => `${CHANGE_REF_PREFIX}${id}\n`).join(""),
  });
  existing
    .toString("utf8")
    .split("\n")
    .slice(0, ids.length)
    .forEach((line, i) => {
      if (OID_RE.test(line)) current.set(ids[i]!, line);
    });
  return current;
}

/**
 * Adds refs straight into `packed-refs`: one file write instead of a loose ref file (and its
 * lock) per ref, which makes importing a long history seconds instead of minutes. Only for a
 * repo nobody else can see yet (an import in tmp/); git itself packs the existing refs first.
 */
async function addPackedRefs(gitDir: string, refs: Array<[string, string, string]>): Promise<void> {
  await git(gitDir, ["pack-refs", "--all"]);
  const file = path.join(gitDir, "packed-refs");
  let text = "";
  try {
    text = await readFile(file, "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
  }
  // Records: a "<oid> <ref>" line plus an optional "^<peeled oid>" line for annotated tags.
  const records = new Map<string, string>();
  let last: string | undefined;
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    if (line.startsWith("^") && last) records.set(last, `${records.get(last)}${line}\n`);
    else {
      last = line.slice(41);
      records.set(last, `${line}\n`);
    }
  }
  for (const [ref, oid] of refs) records.set(ref, `${oid} ${ref}\n`);
  // packed-refs is sorted by the bytes of the ref names.
  const names = [...records.keys()]
    .map((n) => ({ n, b: Buffer.from(n, "utf8") }))
    .sort((x, y) => Buffer.compare(x.b, y.b));
  const body = `# pack-refs with: peeled fully-peeled sorted \n${names.map((x) => records.get(x.n)).join("")}`;
  await writeFile(`${file}.new`, body);
  await rename(`${file}.new`, file);
}

/** The current commit of a change, or undefined. */
export async function changeCommit(gitDir: string, changeId: string): Promise<string | undefined> {
  if (!isChangeId(changeId)) return undefined;
  const r = await runGit(gitDir, ["rev-parse", "-q", "--verify", `${CHANGE_REF_PREFIX}${changeId}^{commit}`]);
  return r.code === 0 ? r.stdout.toString("utf8").trim() : undefined;
}

/** Like changeCommit, but re-indexes once on a miss (a push whose indexing was cut short). */
export async function resolveChange(gitDir: string, changeId: string): Promise<string> {
  if (!isChangeId(changeId)) throw badRequest(`invalid change id ${JSON.stringify(changeId)}`);
  let oid = await changeCommit(gitDir, changeId);
  if (!oid) {
    await indexChanges(gitDir);
    oid = await changeCommit(gitDir, changeId);
  }
  if (!oid) throw notFound(`change ${changeId} not found`);
  return oid;
}

/** The commit a branch points at, or undefined when it does not exist. */
export async function bookmarkCommit(gitDir: string, name: string): Promise<string | undefined> {
  const r = await runGit(gitDir, ["rev-parse", "-q", "--verify", `refs/heads/${name}^{commit}`]);
  return r.code === 0 ? r.stdout.toString("utf8").trim() : undefined;
}

export async function isAncestor(gitDir: string, ancestor: string, descendant: string): Promise<boolean> {
  const r = await runGit(gitDir, ["merge-base", "--is-ancestor", ancestor, descendant]);
  if (r.code === 0) return true;
  if (r.code === 1) return false;
  throw new Error(`git merge-base failed: ${r.stderr.trim()}`);
}

// ---- JSON shape of a change ---------------------------------------------------------

export interface ChangeJson {
  id: string;
  current_commit_oid: string;
  message: string;
  author: { name: string; email: string; date: string };
  committer: { name: string; email: string; date: string };
  parents: string[];
  created_at: string;
  updated_at: string;
}

const sigJson = (s: Signature) => ({
  name: s.name,
  email: s.email,
  date: new Date(s.timestamp * 1000).toISOString(),
});

/** Change JSON for the given commits (their parents' change ids are read in one batch). */
export async function changesJson(gitDir: string, oids: string[]): Promise<ChangeJson[]> {
  const commits = await readCommits(gitDir, oids);
  const parentIds = await changeIdsOf(
    gitDir,
    [...commits.values()].flatMap((c) => c.parents),
  );
  const out: ChangeJson[] = [];
  for (const oid of oids) {
    const c = commits.get(oid);
    if (!c) continue;
    out.push({
      id: changeIdOf(oid, c),
      current_commit_oid: oid,
      message: c.message,
      author: sigJson(c.author),
      committer: sigJson(c.committer),
      parents:
        c.parents.length === 0
          ? [ROOT_CHANGE_ID]
          : c.parents.map((p) => parentIds.get(p) ?? changeIdFromOid(p)),
      created_at: sigJson(c.author).date,
      updated_at: sigJson(c.committer).date,
    });
  }
  return out;
}

// ---- writing trees and commits ------------------------------------------------------

export type FileOp =
  | { action: "upsert"; path: string; content: Buffer; mode?: "100644" | "100755" | "120000" }
  | { action: "delete"; path: string };

/** Repo paths as the API accepts them: relative, `/`-separated, no empty/`.`/`..`/`.git` parts. */
export function checkRepoPath(p: string): string {
  const parts = p.split("/");
  if (
    p.length === 0 ||
    p.length > 4096 ||
    /[\0\n\r\t]/.test(p) ||
    parts.some((s) => s === "" || s === "." || s === ".." || s.toLowerCase() === ".git")
  ) {
    throw badRequest(`invalid path ${JSON.stringify(p)}`);
  }
  return p;
}

const literal = (p: string) => `:(literal)${p}`;

/**
 * The tree of `baseTree` (undefined = empty) with `ops` applied, built in a private
 * index file so concurrent requests never share state. Blobs are written as needed.
 */
export async function applyFileOps(
  data: DataDir,
  gitDir: string,
  baseTree: string | undefined,
  ops: FileOp[],
) {
  const tmp = await data.tempDir("index");
  const env = { GIT_INDEX_FILE: path.join(tmp, "index") };
  try {
    await git(gitDir, baseTree ? ["read-tree", baseTree] : ["read-tree", "--empty"], { env });
    if (ops.length === 0) return await treeOf();
    // Modes of files being overwritten without an explicit mode are kept.
    const needMode = ops.filter((o) => o.action === "upsert" && !o.mode).map((o) => literal(o.path));
    const modes = new Map<string, string>();
    if (needMode.length > 0) {
      const ls = await git(gitDir, ["ls-files", "-s", "-z", "--", ...needMode], { env });
      for (const rec of ls.toString("utf8").split("\0").filter(Boolean)) {
        const tab = rec.indexOf("\t");
        modes.set(rec.slice(tab + 1), rec.split(" ")[0]!);
      }
    }
    for (const op of ops) checkRepoPath(op.path);
    // All blobs are written by one git: contents go to files next to the private index.
    const blobFiles: string[] = [];
    for (const op of ops) {
      if (op.action !== "upsert") continue;
      const file = path.join(tmp, `blob-${blobFiles.length}`);
      await writeFile(file, op.content);
      blobFiles.push(file);
    }
    const blobOids =
      blobFiles.length === 0
        ? []
        : (
            await git(gitDir, ["hash-object", "-w", "--no-filters", "--stdin-paths"], {
              input: `${blobFiles.join("\n")}\n`,
            })
          )
            .toString("utf8")
            .split("\n")
            .filter(Boolean);
    if (blobOids.length !== blobFiles.length) throw new Error("git hash-object returned too few oids");
    let info = "";
    let nextBlob = 0;
    for (const op of ops) {
      if (op.action === "delete") {
        const ls = await git(gitDir, ["ls-files", "-z", "--", literal(op.path)], { env });
        const hits = ls.toString("utf8").split("\0").filter(Boolean);
        if (hits.length === 0) throw badRequest(`cannot delete ${JSON.stringify(op.path)}: no such path`);
        for (const h of hits) info += `0 ${"0".repeat(40)}\t${h}\0`;
        continue;
      }
      const oid = blobOids[nextBlob++]!;
      const old = modes.get(op.path);
      const mode = op.mode ?? (old === "100755" ? "100755" : "100644");
      info += `${mode} ${oid}\t${op.path}\0`;
    }
    await git(gitDir, ["update-index", "--add", "--replace", "-z", "--index-info"], { input: info, env });
    return await treeOf();
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }

  async function treeOf(): Promise<string> {
    return (await git(gitDir, ["write-tree"], { env })).toString("utf8").trim();
  }
}

/** Writes a commit object (with its change-id header) and returns its oid. */
export async function writeCommit(gitDir: string, c: Commit): Promise<string> {
  const out = await git(gitDir, ["hash-object", "-t", "commit", "-w", "--stdin"], {
    input: serializeCommit(c),
  });
  return out.toString("utf8").trim();
}

export async function treeOfCommit(gitDir: string, oid: string): Promise<string> {
  return (await git(gitDir, ["rev-parse", `${oid}^{tree}`])).toString("utf8").trim();
}

/** CAS ref update (`old` = "" means the ref must not exist). False when someone else won. */
export async function casRef(gitDir: string, ref: string, next: string, old: string): Promise<boolean> {
  const r = await runGit(gitDir, ["update-ref", ref, next, old]);
  return r.code === 0;
}

export async function casDeleteRef(gitDir: string, ref: string, old: string): Promise<boolean> {
  const r = await runGit(gitDir, ["update-ref", "-d", ref, old]);
  return r.code === 0;
}
