/**
 * `mesa new [-m MSG]` (seal the working change, via the running daemon), `mesa edit <change-id>`
 * (check out an existing change, likewise), `mesa log` (changes
 * of a bookmark, REST) and `mesa show [REV]` (one change and its diff, over Git), and
 * `mesa dump-default-mesaignore`.
 */
import type { Command } from "commander";
import { controlRequest } from "../daemon/control.js";
import type { DaemonStatus } from "../daemon/daemon.js";
import { runtimePaths } from "../daemon/paths.js";
import type { WriterStatus } from "../daemon/persister.js";
import { livePid } from "../daemon/pidfile.js";
import { isMesaError, MesaError } from "../errors.js";
import { isText, lineDiff } from "../fuse/conflict.js";
import { DEFAULT_MESAIGNORE } from "../fuse/mesaignore.js";
import { type Commit, isChangeId, isOid, type Oid, type TreeEntry } from "../vcs/objects.js";
import type { GitRemote } from "../vcs/remote.js";
import type { RestClient } from "../vcs/rest.js";
import { clients, type RepoTarget, requireRepo, target } from "./mounted.js";

interface RepoOpts {
  org?: string;
  repo?: string;
}

async function daemonWriter(t: RepoTarget, org: string, repo: string): Promise<WriterStatus | undefined> {
  const paths = runtimePaths(t.config);
  if ((await livePid(paths.pidFile)) === undefined) return undefined;
  const s = (await controlRequest(paths.socket, { cmd: "status" })) as DaemonStatus;
  return (s.writes as WriterStatus[] | undefined)?.find(
    (w) => w.org === org && w.repo === repo && "ref" in w,
  );
}

/** REV → commit: "@" (the working change, else the mounted bookmark), a change id, a bookmark, an oid. */
async function resolveRev(
  t: RepoTarget,
  c: { org: string; repo: string; rest: RestClient; git: GitRemote },
  rev: string,
): Promise<Oid> {
  if (rev === "@") {
    const w = await daemonWriter(t, c.org, c.repo);
    if (w?.commit) return w.commit;
    if (w) {
      const { refs } = await c.git.lsRefs({ prefixes: [w.ref] });
      const hit = refs.find((r) => r.name === w.ref);
      if (hit) return hit.oid;
    }
    const { head } = await c.git.lsRefs({ prefixes: ["refs/heads/"] });
    if (head?.oid) return head.oid;
    throw new MesaError("NOT_FOUND", `${c.org}/${c.repo} has no bookmarks (it is empty)`);
  }
  if (isOid(rev)) return rev;
  if (isChangeId(rev)) return (await c.rest.getChange(c.org, c.repo, rev)).current_commit_oid;
  const ref = `refs/heads/${rev}`;
  const { refs } = await c.git.lsRefs({ prefixes: [ref] });
  const hit = refs.find((r) => r.name === ref);
  if (!hit) throw new MesaError("NOT_FOUND", `no bookmark or change '${rev}' in ${c.org}/${c.repo}`);
  return hit.oid;
}

type Flat = Map<string, { mode: string; oid: Oid }>;

function flatten(trees: Map<Oid, TreeEntry[]>, root: Oid, prefix = "", out: Flat = new Map()): Flat {
  for (const e of trees.get(root) ?? []) {
    const p = prefix ? `${prefix}/${e.name}` : e.name;
    if (e.mode === "40000") flatten(trees, e.oid, p, out);
    else out.set(p, { mode: e.mode, oid: e.oid });
  }
  return out;
}

function hunks(a: string[], b: string[]): string[] {
  const d = lineDiff(a, b);
  const out: string[] = [];
  const CONTEXT = 3;
  let i = 0;
  let oldLine = 1;
  let newLine = 1;
  while (i < d.length) {
    if (d[i][0] === " ") {
      i++;
      oldLine++;
      newLine++;
      continue;
    }
    // Start a hunk CONTEXT lines back; extend it while changes are close together.
    let start = i;
    let back = 0;
    while (start > 0 && back < CONTEXT && d[start - 1][0] === " ") {
      start--;
      back++;
    }
    let end = i;
    let gap = 0;
    while (end < d.length) {
      if (d[end][0] === " ") {
        gap++;
        if (gap > CONTEXT * 2) break;
      } else gap = 0;
      end++;
    }
    end -= Math.max(0, gap - CONTEXT);
    const body = d.slice(start, end);
    const os = oldLine - back;
    const ns = newLine - back;
    const oc = body.filter((l) => l[0] !== "+").length;
    const nc = body.filter((l) => l[0] !== "-").length;
    out.push(`@@ -${oc === 0 ? os - 1 : os},${oc} +${nc === 0 ? ns - 1 : ns},${nc} @@`, ...body);
    for (let k = i; k < end; k++) {
      if (d[k][0] !== "+") oldLine++;
      if (d[k][0] !== "-") newLine++;
    }
    i = end;
  }
  return out;
}

function splitLines(b: Buffer): string[] {
  const t = b.toString("utf8");
  if (t === "") return [];
  const l = t.split("\n");
  if (l[l.length - 1] === "") l.pop();
  return l;
}

function firstLine(msg: string): string {
  return msg.split("\n")[0] || "(no description)";
}

function header(oid: Oid, c: Commit): string {
  const when = new Date(c.author.timestamp * 1000).toISOString();
  const msg = c.message.trim() ? c.message.replace(/\n$/, "").replace(/^/gm, "    ") : "    (no description)";
  return `Commit ID: ${oid}\nChange ID: ${c.changeId ?? "(none)"}\nAuthor: ${c.author.name} <${c.author.email}> (${when})\n\n${msg}\n`;
}

export function register(program: Command): void {
  program
    .command("new")
    .description("seal the working change of a mounted repo; the next write starts a new change on top")
    .option("--org <org>", "organization (default: from the current directory)")
    .option("--repo <repo>", "repository (default: from the current directory)")
    .option("-m, --message <message>", "description of the new change")
    .action(async (opts: RepoOpts & { message?: string }, cmd: Command) => {
      const t = target(cmd, opts);
      const paths = runtimePaths(t.config);
      if ((await livePid(paths.pidFile)) === undefined)
        throw new MesaError("DAEMON", "mesa is not running", { hint: "start it with `mesa mount -d`" });
      const r = (await controlRequest(
        paths.socket,
        { cmd: "new", org: t.org, repo: t.repo, message: opts.message },
        120_000,
      )) as { org: string; repo: string; sealed?: string; commit?: string };
      process.stdout.write(
        r.sealed
          ? `${r.org}/${r.repo}: sealed change ${r.sealed} (commit ${r.commit?.slice(0, 12)}); the next write starts a new change\n`
          : `${r.org}/${r.repo}: nothing to seal; the next write starts a new change\n`,
      );
    });

  program
    .command("edit")
    .description("check out an existing change in a mounted repo: later writes amend it")
    .argument("<change-id>", "the change to edit (32 letters k-z, as `mesa log` shows)")
    .option("--org <org>", "organization (default: from the current directory)")
    .option("--repo <repo>", "repository (default: from the current directory)")
    .action(async (changeId: string, opts: RepoOpts, cmd: Command) => {
      if (!isChangeId(changeId))
        throw new MesaError("USAGE", `'${changeId}' is not a change id`, {
          hint: "a change id is 32 letters k-z; `mesa log` lists them",
        });
      const t = target(cmd, opts);
      const paths = runtimePaths(t.config);
      if ((await livePid(paths.pidFile)) === undefined)
        throw new MesaError("DAEMON", "mesa is not running", { hint: "start it with `mesa mount -d`" });
      const r = (await controlRequest(
        paths.socket,
        { cmd: "edit", changeId, org: t.org, repo: t.repo },
        120_000,
      )) as { org: string; repo: string; changeId: string; commit: string };
      process.stdout.write(
        `${r.org}/${r.repo}: editing change ${r.changeId} (commit ${r.commit.slice(0, 12)}); writes amend it\n`,
      );
    });

  program
    .command("log")
    .description("changes of a bookmark of a mounted repo, newest first")
    .option("--org <org>", "organization (default: from the current directory)")
    .option("--repo <repo>", "repository (default: from the current directory)")
    .option("-b, --bookmark <name>", "bookmark (default: the repo's default bookmark)")
    .option("-n, --limit <n>", "at most this many changes", "20")
    .action(async (opts: RepoOpts & { bookmark?: string; limit: string }, cmd: Command) => {
      const limit = Number(opts.limit);
      if (!Number.isInteger(limit) || limit < 1)
        throw new MesaError("USAGE", `--limit must be a positive whole number, not '${opts.limit}'`);
      const c = await clients(cmd, target(cmd, opts));
      try {
        const lines: string[] = [];
        for await (const ch of c.rest.listChanges(c.org, c.repo, opts.bookmark)) {
          lines.push(
            `${ch.id.slice(0, 12)} ${ch.current_commit_oid.slice(0, 12)} ${ch.author.name} ${ch.updated_at}  ${firstLine(ch.message)}`,
          );
          if (lines.length >= limit) break;
        }
        process.stdout.write(lines.length > 0 ? `${lines.join("\n")}\n` : "no changes\n");
      } finally {
        await c.close();
      }
    });

  program
    .command("show")
    .description("a change (default @, the working change) and what it changed")
    .argument("[rev]", "bookmark, change id, commit oid or @", "@")
    .option("--org <org>", "organization (default: from the current directory)")
    .option("--repo <repo>", "repository (default: from the current directory)")
    .option("--name-only", "list the changed paths only")
    .option("--no-patch", "show the description only")
    .option("--git", "show the diff in Git's format")
    .action(
      async (
        rev: string,
        opts: RepoOpts & { nameOnly?: boolean; patch: boolean; git?: boolean },
        cmd: Command,
      ) => {
        const t = target(cmd, opts);
        requireRepo(t);
        const c = await clients(cmd, t);
        try {
          const oid = await resolveRev(t, c, rev);
          const { commit, trees } = await c.git.fetchCommitTrees(oid).catch((err) => {
            throw isMesaError(err) ? err : new MesaError("NOT_FOUND", `commit ${oid} not found`);
          });
          const after = flatten(trees, commit.tree);
          const before: Flat = commit.parents[0]
            ? await c.git.fetchCommitTrees(commit.parents[0]).then((p) => flatten(p.trees, p.commit.tree))
            : new Map();
          const paths = [...new Set([...before.keys(), ...after.keys()])].sort();
          const changed = paths.filter(
            (p) => before.get(p)?.oid !== after.get(p)?.oid || before.get(p)?.mode !== after.get(p)?.mode,
          );
          if (opts.nameOnly) {
            process.stdout.write(changed.map((p) => `${p}\n`).join(""));
            return;
          }
          let out = header(oid, commit);
          if (opts.patch && !opts.git)
            out += `\n${changed.map((p) => `${!before.has(p) ? "A" : !after.has(p) ? "D" : "M"} ${p}`).join("\n")}\n`;
          else if (opts.patch) {
            const want = changed
              .flatMap((p) => [before.get(p), after.get(p)])
              .filter((e) => e && e.mode !== "160000");
            const blobs = await c.git.fetchBlobs([...new Set(want.map((e) => (e as { oid: Oid }).oid))]);
            for (const p of changed) {
              const b = before.get(p);
              const a = after.get(p);
              out += `diff --git a/${p} b/${p}\n`;
              if (!b) out += `new file mode ${a?.mode}\n`;
              else if (!a) out += `deleted file mode ${b.mode}\n`;
              else if (b.mode !== a.mode) out += `old mode ${b.mode}\nnew mode ${a.mode}\n`;
              const bb = b ? (blobs.get(b.oid) ?? Buffer.alloc(0)) : Buffer.alloc(0);
              const ab = a ? (blobs.get(a.oid) ?? Buffer.alloc(0)) : Buffer.alloc(0);
              if (b?.oid === a?.oid) continue;
              if (!isText(bb) || !isText(ab)) {
                out += `Binary files ${b ? `a/${p}` : "/dev/null"} and ${a ? `b/${p}` : "/dev/null"} differ\n`;
                continue;
              }
              out += `--- ${b ? `a/${p}` : "/dev/null"}\n+++ ${a ? `b/${p}` : "/dev/null"}\n`;
              const h = hunks(splitLines(bb), splitLines(ab));
              if (h.length > 0) out += `${h.join("\n")}\n`;
            }
          }
          process.stdout.write(out);
        } finally {
          await c.close();
        }
      },
    );

  program
    .command("dump-default-mesaignore")
    .description("print the built-in .mesaignore (paths that stay local and are never pushed)")
    .action(() => {
      process.stdout.write(DEFAULT_MESAIGNORE);
    });
}
