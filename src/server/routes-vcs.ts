import { mkdir, rm } from "node:fs/promises";
import path from "node:path";
import type { FastifyInstance } from "fastify";
import { z } from "zod";
import { type Commit, newChangeId, ROOT_CHANGE_ID, signatureNow } from "../vcs/objects.js";
import type { Principal } from "./auth.js";
import {
  applyFileOps,
  bookmarkCommit,
  CHANGE_REF_PREFIX,
  casDeleteRef,
  casRef,
  changeIdsOf,
  changesJson,
  checkRepoPath,
  type FileOp,
  isAncestor,
  readCommits,
  resolveChange,
  treeOfCommit,
  writeCommit,
} from "./changes.js";
import { forRepo, parseBody, type ServerContext } from "./context.js";
import { ApiError, badRequest, conflict, notFound } from "./errors.js";
import { git, runGit } from "./git.js";
import { pageOf, pageOfFetched, parsePage } from "./pagination.js";
import { bookmarkName } from "./routes-org.js";
import { readRepoMeta } from "./storage.js";

/** Bookmarks, changes and content of one repo (compat.md §6). */
const BASE64_RE = /^[A-Za-z0-9+/_-]*={0,2}$/;
const changeId = z.string().regex(/^[k-z]{32}$/, "must be a change id (32 chars of k-z)");
const fileOp = z.union([
  z
    .object({
      path: z.string().min(1).max(4096),
      content: z.string().regex(BASE64_RE, "must be base64"),
      mode: z.enum(["100644", "100755", "120000"]).optional(),
      action: z.literal("upsert").optional(),
    })
    .strict(),
  z.object({ path: z.string().min(1).max(4096), action: z.literal("delete") }).strict(),
]);
const person = z.object({ name: z.string().min(1).max(200), email: z.string().max(200) }).strict();
const createChangeBody = z
  .object({
    base_change_id: changeId,
    message: z.string().max(1_000_000).optional(),
    author: person.optional(),
    files: z.array(fileOp).max(10_000).optional(),
  })
  .strict();
const patchChangeBody = z
  .object({
    message: z.string().max(1_000_000).optional(),
    files: z.array(fileOp).max(10_000).optional(),
    base_commit_oid: z
      .string()
      .regex(/^[0-9a-f]{40}$/)
      .optional(),
  })
  .strict();
const createBookmarkBody = z.object({ name: bookmarkName, change_id: changeId }).strict();
const moveBookmarkBody = z.object({ change_id: changeId, allow_backwards: z.boolean().optional() }).strict();
const mergeBody = z
  .object({
    target: bookmarkName,
    source: bookmarkName,
    delete_source: z.boolean().optional(),
    message: z.string().max(1_000_000).optional(),
  })
  .strict();

function toOps(files: z.infer<typeof fileOp>[] | undefined): FileOp[] {
  return (files ?? []).map((f) => {
    checkRepoPath(f.path);
    if (f.action === "delete") return { action: "delete", path: f.path };
    return { action: "upsert", path: f.path, content: Buffer.from(f.content, "base64"), mode: f.mode };
  });
}

/** Commit messages end with a newline, as git and jj write them. */
function normalizeMessage(m: string): string {
  return m === "" || m.endsWith("\n") ? m : `${m}\n`;
}

function serverSignature(p: Principal) {
  return signatureNow(p.keyName?.replace(/[<>\n\0]/g, "") || "mesa", `${p.keyId}@mesa.invalid`);
}

function bookmarkParam(params: unknown): string {
  const name = (params as { "*": string })["*"];
  const r = bookmarkName.safeParse(name);
  if (!r.success) throw notFound(`bookmark ${JSON.stringify(name)} not found`);
  return r.data;
}

export function registerVcsRoutes(app: FastifyInstance, ctx: ServerContext): void {
  // ---- bookmarks ----
  app.get("/v1/:org/:repo/bookmarks", async (req) => {
    const { gitDir } = await forRepo(ctx, req, "read");
    const q = req.query as Record<string, string | undefined>;
    const page = parsePage(q);
    if (q.glob !== undefined && !/^[^\x00-\x20\x7f\\]{1,255}$/.test(q.glob)) throw badRequest("invalid glob");
    const pattern = q.glob ? `refs/heads/${q.glob}` : "refs/heads";
    const out = await git(gitDir, [
      "for-each-ref",
      "--sort=refname",
      "--format=%(objectname) %(refname:strip=2)",
      pattern,
    ]);
    const rows = out
      .toString("utf8")
      .split("\n")
      .filter(Boolean)
      .map((l) => ({ oid: l.slice(0, 40), name: l.slice(41) }));
    const listed = pageOf("bookmarks", rows, page);
    const slice = listed.bookmarks as typeof rows;
    const ids = await changeIdsOf(
      gitDir,
      slice.map((r) => r.oid),
    );
    const def = (await readRepoMeta(gitDir)).defaultBookmark;
    return {
      ...listed,
      bookmarks: slice.map((r) => ({
        name: r.name,
        change_id: ids.get(r.oid) ?? null,
        is_default: r.name === def,
      })),
    };
  });

  app.post("/v1/:org/:repo/bookmarks", async (req, reply) => {
    const { gitDir } = await forRepo(ctx, req, "write");
    const body = parseBody(createBookmarkBody, req.body);
    const oid = await resolveChange(gitDir, body.change_id);
    if (!(await casRef(gitDir, `refs/heads/${body.name}`, oid, "")))
      throw conflict(`bookmark ${body.name} already exists`);
    const def = (await readRepoMeta(gitDir)).defaultBookmark;
    return reply
      .code(201)
      .send({ name: body.name, change_id: body.change_id, is_default: body.name === def });
  });

  app.post("/v1/:org/:repo/bookmarks/merge", async (req) => {
    const { p, gitDir } = await forRepo(ctx, req, "write");
    const body = parseBody(mergeBody, req.body);
    return mergeBookmarks(ctx, gitDir, p, body);
  });

  app.patch("/v1/:org/:repo/bookmarks/*", async (req) => {
    const { gitDir } = await forRepo(ctx, req, "write");
    const name = bookmarkParam(req.params);
    const body = parseBody(moveBookmarkBody, req.body);
    const old = await bookmarkCommit(gitDir, name);
    if (!old) throw notFound(`bookmark ${name} not found`);
    const next = await resolveChange(gitDir, body.change_id);
    const from = (await changeIdsOf(gitDir, [old])).get(old)!;
    if (old !== next) {
      if (!body.allow_backwards && !(await isAncestor(gitDir, old, next)))
        throw conflict(
          `moving ${name} to ${body.change_id} does not advance its history (pass allow_backwards to force)`,
          "NOT_FAST_FORWARD",
        );
      if (!(await casRef(gitDir, `refs/heads/${name}`, next, old)))
        throw conflict(`bookmark ${name} was moved by someone else; retry`);
    }
    const def = (await readRepoMeta(gitDir)).defaultBookmark;
    return { name, change_id: body.change_id, is_default: name === def, from_change_id: from };
  });

  app.delete("/v1/:org/:repo/bookmarks/*", async (req) => {
    const { gitDir } = await forRepo(ctx, req, "write");
    const name = bookmarkParam(req.params);
    const old = await bookmarkCommit(gitDir, name);
    if (!old) throw notFound(`bookmark ${name} not found`);
    if ((await readRepoMeta(gitDir)).defaultBookmark === name)
      throw conflict(`bookmark ${name} is the repository's default bookmark`);
    if (!(await casDeleteRef(gitDir, `refs/heads/${name}`, old)))
      throw conflict(`bookmark ${name} was moved by someone else; retry`);
    const id = (await changeIdsOf(gitDir, [old])).get(old)!;
    return { name, change_id: id, is_default: false, deleted: true };
  });

  // ---- changes ----
  app.get("/v1/:org/:repo/changes", async (req) => {
    const { gitDir } = await forRepo(ctx, req, "read");
    const q = req.query as Record<string, string | undefined>;
    const page = parsePage(q);
    const name = q.bookmark ?? (await readRepoMeta(gitDir)).defaultBookmark;
    if (!bookmarkName.safeParse(name).success) throw badRequest("invalid bookmark name");
    const head = await bookmarkCommit(gitDir, name);
    if (!head) {
      if (q.bookmark !== undefined) throw notFound(`bookmark ${name} not found`);
      return { changes: [], next_cursor: null, has_more: false };
    }
    const out = await git(gitDir, [
      "rev-list",
      "--topo-order",
      `--skip=${page.offset}`,
      `--max-count=${page.limit + 1}`,
      head,
    ]);
    const oids = out.toString("utf8").split("\n").filter(Boolean);
    return pageOfFetched("changes", await changesJson(gitDir, oids), page);
  });

  app.get("/v1/:org/:repo/changes/:id", async (req) => {
    const { gitDir } = await forRepo(ctx, req, "read");
    const { id } = req.params as { id: string };
    const oid = await resolveChange(gitDir, id);
    return (await changesJson(gitDir, [oid]))[0];
  });

  app.post("/v1/:org/:repo/changes", async (req, reply) => {
    const { p, gitDir } = await forRepo(ctx, req, "write");
    const body = parseBody(createChangeBody, req.body);
    const ops = toOps(body.files);
    const base =
      body.base_change_id === ROOT_CHANGE_ID ? undefined : await resolveChange(gitDir, body.base_change_id);
    const tree = await applyFileOps(
      ctx.data,
      gitDir,
      base ? await treeOfCommit(gitDir, base) : undefined,
      ops,
    );
    const committer = serverSignature(p);
    const author = body.author
      ? { ...committer, name: body.author.name, email: body.author.email }
      : committer;
    const id = newChangeId();
    const oid = await writeCommit(gitDir, {
      tree,
      parents: base ? [base] : [],
      author,
      committer,
      changeId: id,
      message: normalizeMessage(body.message ?? ""),
    });
    if (!(await casRef(gitDir, `${CHANGE_REF_PREFIX}${id}`, oid, "")))
      throw conflict("change id collision; retry");
    return reply.code(201).send((await changesJson(gitDir, [oid]))[0]);
  });

  app.patch("/v1/:org/:repo/changes/:id", async (req) => {
    const { p, gitDir } = await forRepo(ctx, req, "write");
    const { id } = req.params as { id: string };
    const body = parseBody(patchChangeBody, req.body);
    const ops = toOps(body.files);
    const cur = await resolveChange(gitDir, id);
    if (body.base_commit_oid && body.base_commit_oid !== cur)
      throw conflict(`change ${id} is now at ${cur}, not ${body.base_commit_oid}`, "STALE_BASE", {
        current_commit_oid: cur,
      });
    const c = (await readCommits(gitDir, [cur])).get(cur)!;
    const tree = ops.length > 0 ? await applyFileOps(ctx.data, gitDir, c.tree, ops) : c.tree;
    const amended: Commit = {
      ...c,
      tree,
      changeId: id,
      committer: serverSignature(p),
      message: body.message !== undefined ? normalizeMessage(body.message) : c.message,
    };
    const oid = await writeCommit(gitDir, amended);
    if (!(await casRef(gitDir, `${CHANGE_REF_PREFIX}${id}`, oid, cur)))
      throw conflict(`change ${id} was amended by someone else; retry`, "STALE_BASE");
    // Bookmarks follow the rewritten change, as in jj; a bookmark moved meanwhile stays put.
    const heads = await git(gitDir, [
      "for-each-ref",
      `--points-at=${cur}`,
      "--format=%(refname)",
      "refs/heads",
    ]);
    for (const ref of heads.toString("utf8").split("\n").filter(Boolean)) await casRef(gitDir, ref, oid, cur);
    return (await changesJson(gitDir, [oid]))[0];
  });

  // ---- content ----
  app.get("/v1/:org/:repo/content", async (req, reply) => {
    const { gitDir } = await forRepo(ctx, req, "read");
    const q = req.query as Record<string, string | undefined>;
    let depth = 1;
    if (q.depth !== undefined) {
      depth = Number(q.depth);
      if (!Number.isInteger(depth) || depth < 0 || depth > 10)
        throw badRequest("depth must be an integer from 0 to 10");
    }
    let commit: string | undefined;
    if (q.change_id) commit = await resolveChange(gitDir, q.change_id);
    else commit = await bookmarkCommit(gitDir, (await readRepoMeta(gitDir)).defaultBookmark);
    if (!commit) throw notFound("the repository has no commits");
    const p = (q.path ?? "").replace(/^\/+|\/+$/g, "");
    if (p !== "") checkRepoPath(p);
    let entry: { mode: string; type: string; oid: string; size: string };
    if (p === "") entry = { mode: "40000", type: "tree", oid: await treeOfCommit(gitDir, commit), size: "-" };
    else {
      const ls = await git(gitDir, ["ls-tree", "-l", "-z", commit, "--", p]);
      const rec = ls
        .toString("utf8")
        .split("\0")
        .find((r) => r.slice(r.indexOf("\t") + 1) === p);
      if (!rec) throw notFound(`path ${p} not found`);
      const [mode, type, oid, size] = rec.slice(0, rec.indexOf("\t")).split(/ +/);
      entry = { mode: mode!, type: type!, oid: oid!, size: size! };
    }
    const name = p === "" ? "" : p.slice(p.lastIndexOf("/") + 1);
    const wantsRaw = (req.headers.accept ?? "").includes("application/octet-stream");
    if (entry.type === "blob") {
      const bytes = await git(gitDir, ["cat-file", "blob", entry.oid], { timeoutMs: 300_000 });
      if (wantsRaw) return reply.type("application/octet-stream").send(bytes);
      return {
        type: entry.mode === "120000" ? "symlink" : "file",
        name,
        path: p,
        sha: entry.oid,
        size: bytes.length,
        encoding: "base64",
        content: bytes.toString("base64"),
        mode: entry.mode,
      };
    }
    if (entry.type !== "tree") throw badRequest(`path ${p} is a submodule`);
    if (wantsRaw) throw new ApiError(406, "NOT_ACCEPTABLE", `path ${p || "/"} is a directory`);
    const ls = await git(gitDir, ["ls-tree", "-l", "-z", ...(depth > 1 ? ["-r", "-t"] : []), entry.oid]);
    const entries: Array<Record<string, unknown>> = [];
    let childCount = 0;
    for (const rec of ls.toString("utf8").split("\0").filter(Boolean)) {
      const tab = rec.indexOf("\t");
      const rel = rec.slice(tab + 1);
      const level = rel.split("/").length;
      if (level === 1) childCount++;
      if (level > depth) continue;
      const [mode, type, oid, size] = rec.slice(0, tab).split(/ +/);
      const kind =
        type === "tree" ? "dir" : type === "commit" ? "submodule" : mode === "120000" ? "symlink" : "file";
      const e: Record<string, unknown> = {
        type: kind,
        name: rel.slice(rel.lastIndexOf("/") + 1),
        path: p === "" ? rel : `${p}/${rel}`,
        sha: oid,
      };
      if (type === "blob") {
        e.size = Number(size);
        e.mode = mode;
      }
      entries.push(e);
    }
    return { type: "dir", name, path: p, sha: entry.oid, child_count: childCount, entries };
  });
}

/** Merges bookmark `source` into `target`: no-op, fast-forward, or a merge commit. */
async function mergeBookmarks(
  ctx: ServerContext,
  gitDir: string,
  p: Principal,
  body: z.infer<typeof mergeBody>,
) {
  const t = await bookmarkCommit(gitDir, body.target);
  if (!t) throw notFound(`bookmark ${body.target} not found`);
  const s = await bookmarkCommit(gitDir, body.source);
  if (!s) throw notFound(`bookmark ${body.source} not found`);
  if (body.target === body.source) throw badRequest("target and source are the same bookmark");
  const def = (await readRepoMeta(gitDir)).defaultBookmark;
  if (body.delete_source && body.source === def)
    throw badRequest(`bookmark ${body.source} is the default bookmark and cannot be deleted`);
  let mergeType: "merge_commit" | "no_op" | "fast_forward";
  let result: string;
  if (await isAncestor(gitDir, s, t)) {
    mergeType = "no_op";
    result = t;
  } else if (await isAncestor(gitDir, t, s)) {
    mergeType = "fast_forward";
    result = s;
  } else {
    mergeType = "merge_commit";
    const tree = await mergeTree(ctx, gitDir, t, s);
    const sig = serverSignature(p);
    result = await writeCommit(gitDir, {
      tree,
      parents: [t, s],
      author: sig,
      committer: sig,
      changeId: newChangeId(),
      message: normalizeMessage(body.message ?? `Merge bookmark '${body.source}' into '${body.target}'`),
    });
  }
  if (result !== t && !(await casRef(gitDir, `refs/heads/${body.target}`, result, t)))
    throw conflict(`bookmark ${body.target} was moved by someone else; retry`);
  const ids = await changeIdsOf(gitDir, [result]);
  const changeIdOfResult = ids.get(result)!;
  if (mergeType === "merge_commit")
    await casRef(gitDir, `${CHANGE_REF_PREFIX}${changeIdOfResult}`, result, "");
  let sourceDeleted = false;
  if (body.delete_source) sourceDeleted = await casDeleteRef(gitDir, `refs/heads/${body.source}`, s);
  return {
    merge_type: mergeType,
    commit_oid: result,
    change_id: changeIdOfResult,
    target: body.target,
    source: body.source,
    source_deleted: sourceDeleted,
  };
}

/**
 * The merged tree of two commits. The trial merge writes into a scratch object directory,
 * so a conflict leaves nothing behind in the repo; a clean one is then redone for real.
 */
async function mergeTree(ctx: ServerContext, gitDir: string, a: string, b: string): Promise<string> {
  const tmp = await ctx.data.tempDir("merge");
  try {
    await mkdir(path.join(tmp, "objects"));
    const trial = await runGit(gitDir, ["merge-tree", "--write-tree", "--name-only", "--no-messages", a, b], {
      env: {
        GIT_OBJECT_DIRECTORY: path.join(tmp, "objects"),
        GIT_ALTERNATE_OBJECT_DIRECTORIES: path.join(gitDir, "objects"),
      },
    });
    if (trial.code === 1) {
      const paths = trial.stdout.toString("utf8").split("\n").slice(1).filter(Boolean);
      throw conflict("the bookmarks have conflicting changes", "MERGE_CONFLICT", {
        conflicting_paths: paths,
      });
    }
    if (trial.code !== 0) throw new Error(`git merge-tree failed: ${trial.stderr.trim()}`);
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
  const out = await git(gitDir, ["merge-tree", "--write-tree", "--no-messages", a, b]);
  return out.toString("utf8").split("\n")[0]!.trim();
}
