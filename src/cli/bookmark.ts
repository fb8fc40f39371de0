/** `mesa bookmark list|create|move` over the REST API (compat.md §6). */
import type { Command } from "commander";
import { MesaError } from "../errors.js";
import { isChangeId } from "../vcs/objects.js";
import type { RestClient } from "../vcs/rest.js";
import { clients, target } from "./mounted.js";

interface RepoOpts {
  org?: string;
  repo?: string;
}

/** A change id, or a bookmark whose change is meant. */
async function changeOf(rest: RestClient, org: string, repo: string, rev: string): Promise<string> {
  if (isChangeId(rev)) return rev;
  for await (const b of rest.listBookmarks(org, repo)) if (b.name === rev) return b.change_id;
  throw new MesaError("NOT_FOUND", `no bookmark or change '${rev}' in ${org}/${repo}`);
}

function repoOptions(cmd: Command): Command {
  return cmd
    .option("--org <org>", "organization (default: from the current directory)")
    .option("--repo <repo>", "repository (default: from the current directory)");
}

export function register(program: Command): void {
  const bookmark = program.command("bookmark").description("bookmarks (branches) of a repo");

  repoOptions(bookmark.command("list").description("list bookmarks and the change each points at")).action(
    async (opts: RepoOpts, cmd: Command) => {
      const c = await clients(cmd, target(cmd, opts));
      try {
        const lines: string[] = [];
        for await (const b of c.rest.listBookmarks(c.org, c.repo))
          lines.push(`${b.name}: ${b.change_id}${b.is_default ? " (default)" : ""}`);
        process.stdout.write(lines.length > 0 ? `${lines.join("\n")}\n` : "no bookmarks\n");
      } finally {
        await c.close();
      }
    },
  );

  repoOptions(
    bookmark
      .command("create")
      .description("create a bookmark at a change")
      .argument("<name>", "bookmark name")
      .requiredOption("-r, --revision <rev>", "change id or bookmark to point at"),
  ).action(async (name: string, opts: RepoOpts & { revision: string }, cmd: Command) => {
    const c = await clients(cmd, target(cmd, opts));
    try {
      const change = await changeOf(c.rest, c.org, c.repo, opts.revision);
      const b = await c.rest.createBookmark(c.org, c.repo, name, change);
      process.stdout.write(`created bookmark ${b.name} at ${b.change_id}\n`);
    } finally {
      await c.close();
    }
  });

  repoOptions(
    bookmark
      .command("move")
      .description("move a bookmark to another change (forward only unless --allow-backwards)")
      .argument("<name>", "bookmark name")
      .requiredOption("-t, --to <rev>", "change id or bookmark to move to")
      .option("--allow-backwards", "allow moving to a change that is not a descendant"),
  ).action(async (name: string, opts: RepoOpts & { to: string; allowBackwards?: boolean }, cmd: Command) => {
    const c = await clients(cmd, target(cmd, opts));
    try {
      const change = await changeOf(c.rest, c.org, c.repo, opts.to);
      const b = await c.rest.moveBookmark(c.org, c.repo, name, change, {
        allowBackwards: opts.allowBackwards,
      });
      process.stdout.write(`moved bookmark ${b.name} from ${b.from_change_id} to ${b.change_id}\n`);
    } finally {
      await c.close();
    }
  });
}
