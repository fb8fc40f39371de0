/**
 * `mesa new [-m MSG]` (seal the working change, via the running daemon), `mesa log` (changes
 * of a bookmark, REST) and `mesa show [REV]` (one change and its diff, over Git), and
 * `mesa dump-default-mesaignore`.
 */
import type { Command } from "commander";
import { controlRequest } from "../daemon/control.js";
import type { DaemonStatus } from "../daemon/daemon.js";
import { runningDaemon } from "../daemon/liveness.js";
import { isMesaError, MesaError } from "../errors.js";
import { type Commit, changeIdFromOid, isChangeId, type Oid, type TreeEntry } from "../vcs/objects.js";
import { BOOKMARK_REF_PREFIX, refOid, resolveRef } from "../vcs/refs.js";
import type { GitRemote } from "../vcs/remote.js";
import type { RestClient } from "../vcs/rest.js";
import { DEFAULT_MESAIGNORE } from "../workspace/mesaignore.js";
import type { WriterStatus } from "../workspace/writer.js";
import { type FileSide, filePatch } from "./git-patch.js";
import { COMMON_ENV, withHelp } from "./help.js";
import { printJson } from "./json.js";
import { clients, type RepoTarget, requireRepo, target } from "./mounted.js";

interface RepoOpts {
  org?: string;
  repo?: string;
}

async function daemonWriter(t: RepoTarget, org: string, repo: string): Promise<WriterStatus | undefined> {
  const daemon = await runningDaemon(t.config);
  if (!daemon) return undefined;
  const s = (await controlRequest(daemon.socket, { cmd: "status" })) as DaemonStatus;
  return (s.writes as WriterStatus[] | undefined)?.find(
    (w) => w.org === org && w.repo === repo && "ref" in w,
  );
}

/** REV → commit: "@" (the working change, else the mounted bookmark), else what resolveRef accepts. */
async function resolveRev(
  t: RepoTarget,
  c: { org: string; repo: string; rest: RestClient; git: GitRemote },
  rev: string,
): Promise<Oid> {
  if (rev === "@") {
    const w = await daemonWriter(t, c.org, c.repo);
    if (w?.commit) return w.commit;
    const known = w ? await refOid(c.git, w.ref) : null;
    if (known) return known;
    const { head } = await c.git.lsRefs({ prefixes: [BOOKMARK_REF_PREFIX] });
    if (head?.oid) return head.oid;
    throw new MesaError("NOT_FOUND", `${c.org}/${c.repo} has no bookmarks (it is empty)`);
  }
  return (await resolveRef({ git: c.git, rest: c.rest, org: c.org, repo: c.repo }, rev)).commit;
}

type Flat = Map<string, FileSide>;

function flatten(trees: Map<Oid, TreeEntry[]>, root: Oid, prefix = "", out: Flat = new Map()): Flat {
  for (const e of trees.get(root) ?? []) {
    const p = prefix ? `${prefix}/${e.name}` : e.name;
    if (e.mode === "40000") flatten(trees, e.oid, p, out);
    else out.set(p, { mode: e.mode, oid: e.oid });
  }
  return out;
}

function firstLine(msg: string): string {
  return msg.split("\n")[0] || "(no description)";
}

/** The change id `log` prints for the same commit: its header, else the one derived from its oid. */
function changeIdOfCommit(oid: Oid, c: Commit): string {
  return c.changeId ?? changeIdFromOid(oid);
}

function header(oid: Oid, c: Commit): string {
  const when = new Date(c.author.timestamp * 1000).toISOString();
  const msg = c.message.trim() ? c.message.replace(/\n$/, "").replace(/^/gm, "    ") : "    (no description)";
  return `Commit ID: ${oid}\nChange ID: ${changeIdOfCommit(oid, c)}\nAuthor: ${c.author.name} <${c.author.email}> (${when})\n\n${msg}\n`;
}

function fileStatus(
  before: FileSide | undefined,
  after: FileSide | undefined,
): "added" | "deleted" | "modified" {
  return !before ? "added" : !after ? "deleted" : "modified";
}

const REPO_ENV: Record<string, string> = {
  ...COMMON_ENV,
  MESA_MOUNT_POINT: "mount root; inside <mount point>/<org>/<repo> --org/--repo are implied",
};

export function register(program: Command): void {
  withHelp(
    program
      .command("new")
      .description("seal the working change of a mounted repo; the next write starts a new change on top")
      .option("--org <org>", "organization (default: from the current directory, else MESA_ORG)")
      .option("--repo <repo>", "repository (default: from the current directory)")
      .option("-m, --message <message>", "description of the new change"),
    {
      examples: ["cd ~/.local/share/mesa/mnt/acme/app && mesa new -m 'fix the parser'"],
      env: { MESA_ORG: REPO_ENV.MESA_ORG, MESA_MOUNT_POINT: REPO_ENV.MESA_MOUNT_POINT },
    },
  ).action(async (opts: RepoOpts & { message?: string }, cmd: Command) => {
    const t = target(cmd, opts);
    const daemon = await runningDaemon(t.config);
    if (!daemon)
      throw new MesaError("DAEMON", "mesa is not running", { hint: "start it with `mesa mount -d`" });
    const r = (await controlRequest(
      daemon.socket,
      { cmd: "new", org: t.org, repo: t.repo, message: opts.message },
      120_000,
    )) as { org: string; repo: string; sealed?: string; commit?: string };
    process.stdout.write(
      r.sealed
        ? `${r.org}/${r.repo}: sealed change ${r.sealed} (commit ${r.commit?.slice(0, 12)}); the next write starts a new change\n`
        : `${r.org}/${r.repo}: nothing to seal; the next write starts a new change\n`,
    );
  });

  withHelp(
    program
      .command("edit")
      .description("check out an existing change in a mounted repo: later writes amend it")
      .argument("<change-id>", "the change to edit (32 letters k-z, as `mesa log` shows)")
      .option("--org <org>", "organization (default: from the current directory, else MESA_ORG)")
      .option("--repo <repo>", "repository (default: from the current directory)"),
    {
      examples: [
        "cd ~/.local/share/mesa/mnt/acme/app && mesa edit $(mesa log --json | jq -r '.changes[1].change_id')",
      ],
      env: { MESA_ORG: REPO_ENV.MESA_ORG, MESA_MOUNT_POINT: REPO_ENV.MESA_MOUNT_POINT },
    },
  ).action(async (changeId: string, opts: RepoOpts, cmd: Command) => {
    if (!isChangeId(changeId))
      throw new MesaError("USAGE", `'${changeId}' is not a change id`, {
        hint: "a change id is 32 letters k-z; `mesa log` lists them",
      });
    const t = target(cmd, opts);
    const daemon = await runningDaemon(t.config);
    if (!daemon)
      throw new MesaError("DAEMON", "mesa is not running", { hint: "start it with `mesa mount -d`" });
    const r = (await controlRequest(
      daemon.socket,
      { cmd: "edit", changeId, org: t.org, repo: t.repo },
      120_000,
    )) as { org: string; repo: string; changeId: string; commit: string };
    process.stdout.write(
      `${r.org}/${r.repo}: editing change ${r.changeId} (commit ${r.commit.slice(0, 12)}); writes amend it\n`,
    );
  });

  withHelp(
    program
      .command("log")
      .description("changes of a bookmark of a mounted repo, newest first")
      .option("--org <org>", "organization (default: from the current directory, else MESA_ORG)")
      .option("--repo <repo>", "repository (default: from the current directory)")
      .option("-b, --bookmark <name>", "bookmark (default: the repo's default bookmark)")
      .option("-n, --limit <n>", "at most this many changes", "20")
      .option("--json", "print JSON (see docs/cli.md)"),
    {
      examples: [
        "mesa log",
        "mesa log --org acme --repo app -b feat -n 5",
        "mesa log --json | jq -r '.changes[0].change_id'",
      ],
      env: REPO_ENV,
    },
  ).action(async (opts: RepoOpts & { bookmark?: string; limit: string; json?: boolean }, cmd: Command) => {
    const limit = Number(opts.limit);
    if (!Number.isInteger(limit) || limit < 1)
      throw new MesaError("USAGE", `--limit must be a positive whole number, not '${opts.limit}'`);
    const c = await clients(cmd, target(cmd, opts));
    try {
      const changes = [];
      for await (const ch of c.rest.listChanges(c.org, c.repo, opts.bookmark)) {
        changes.push(ch);
        if (changes.length >= limit) break;
      }
      if (opts.json)
        return printJson({
          org: c.org,
          repo: c.repo,
          bookmark: opts.bookmark ?? null,
          changes: changes.map((ch) => ({
            changeId: ch.id,
            commitId: ch.current_commit_oid,
            author: { name: ch.author.name, email: ch.author.email },
            updatedAt: ch.updated_at,
            description: ch.message,
          })),
        });
      const lines = changes.map(
        (ch) =>
          `${ch.id.slice(0, 12)} ${ch.current_commit_oid.slice(0, 12)} ${ch.author.name} ${ch.updated_at}  ${firstLine(ch.message)}`,
      );
      process.stdout.write(lines.length > 0 ? `${lines.join("\n")}\n` : "no changes\n");
    } finally {
      await c.close();
    }
  });

  withHelp(
    program
      .command("show")
      .description("a change (default @, the working change) and what it changed")
      .argument(
        "[rev]",
        "@, a bookmark, or a change or commit id (a unique prefix of 4+ characters is enough)",
        "@",
      )
      .option("--org <org>", "organization (default: from the current directory, else MESA_ORG)")
      .option("--repo <repo>", "repository (default: from the current directory)")
      .option("--name-only", "list the changed paths only")
      .option("--no-patch", "show the description only")
      .option("--git", "show the diff in Git's format (`git apply` accepts it)")
      .option("--json", "print JSON (see docs/cli.md)"),
    {
      examples: [
        "mesa show",
        "mesa show lzym --name-only",
        "mesa show main --git > change.patch && git apply change.patch",
      ],
      env: REPO_ENV,
    },
  ).action(
    async (
      rev: string,
      opts: RepoOpts & { nameOnly?: boolean; patch: boolean; git?: boolean; json?: boolean },
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
        if (opts.json)
          return printJson({
            org: c.org,
            repo: c.repo,
            commitId: oid,
            changeId: changeIdOfCommit(oid, commit),
            parents: commit.parents,
            author: {
              name: commit.author.name,
              email: commit.author.email,
              date: new Date(commit.author.timestamp * 1000).toISOString(),
            },
            description: commit.message,
            files: changed.map((p) => ({
              path: p,
              status: fileStatus(before.get(p), after.get(p)),
              oldMode: before.get(p)?.mode ?? null,
              newMode: after.get(p)?.mode ?? null,
            })),
          });
        if (opts.nameOnly) {
          process.stdout.write(changed.map((p) => `${p}\n`).join(""));
          return;
        }
        let out = header(oid, commit);
        if (opts.patch && !opts.git)
          out += `\n${changed.map((p) => `${fileStatus(before.get(p), after.get(p))[0].toUpperCase()} ${p}`).join("\n")}\n`;
        else if (opts.patch) {
          const want = changed
            .flatMap((p) => [before.get(p), after.get(p)])
            .filter((e): e is FileSide => e !== undefined && e.mode !== "160000");
          const blobs = await c.git.fetchBlobs([...new Set(want.map((e) => e.oid))]);
          // A blank line between the description and the first patch, as `git show` has.
          out += "\n";
          for (const p of changed) out += filePatch(p, before.get(p), after.get(p), blobs);
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
