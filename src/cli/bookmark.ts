/** `mesa bookmark list|create|move` over the REST API (compat.md §6). */
import type { Command } from "commander";
import { isMesaError, MesaError } from "../errors.js";
import { changeIdOf, type RefSource, resolveRef } from "../vcs/refs.js";
import { COMMON_ENV, withHelp } from "./help.js";
import { printJson } from "./json.js";
import { clients, target } from "./mounted.js";

interface RepoOpts {
  org?: string;
  repo?: string;
}

/** The change a revision names: a bookmark's, or a (prefix of a) change or commit id. */
async function changeOf(src: RefSource, rev: string): Promise<string> {
  return changeIdOf(src, await resolveRef(src, rev));
}

function repoOptions(cmd: Command): Command {
  return cmd
    .option("--org <org>", "organization (default: from the current directory, else MESA_ORG)")
    .option("--repo <repo>", "repository (default: from the current directory)");
}

export function register(program: Command): void {
  const bookmark = program.command("bookmark").description("bookmarks (branches) of a repo");

  withHelp(
    repoOptions(
      bookmark
        .command("list")
        .description("list bookmarks and the change each points at")
        .option("--json", "print JSON (see docs/cli.md)"),
    ),
    { examples: ["mesa bookmark list", "mesa bookmark list --org acme --repo app --json"], env: COMMON_ENV },
  ).action(async (opts: RepoOpts & { json?: boolean }, cmd: Command) => {
    const c = await clients(cmd, target(cmd, opts));
    try {
      const all = [];
      for await (const b of c.rest.listBookmarks(c.org, c.repo)) all.push(b);
      if (opts.json)
        return printJson({
          org: c.org,
          repo: c.repo,
          bookmarks: all.map((b) => ({ name: b.name, changeId: b.change_id, isDefault: b.is_default })),
        });
      const lines = all.map((b) => `${b.name}: ${b.change_id}${b.is_default ? " (default)" : ""}`);
      process.stdout.write(lines.length > 0 ? `${lines.join("\n")}\n` : "no bookmarks\n");
    } finally {
      await c.close();
    }
  });

  withHelp(
    repoOptions(
      bookmark
        .command("create")
        .description("create a bookmark at a change")
        .argument("<name>", "bookmark name")
        .requiredOption("-r, --revision <rev>", "bookmark, or change or commit id (4+ character prefix)"),
    ),
    { examples: ["mesa bookmark create feat -r lzym"], env: COMMON_ENV },
  ).action(async (name: string, opts: RepoOpts & { revision: string }, cmd: Command) => {
    const c = await clients(cmd, target(cmd, opts));
    try {
      const change = await changeOf(c, opts.revision);
      const b = await c.rest.createBookmark(c.org, c.repo, name, change).catch((err) => {
        if (isMesaError(err, "CONFLICT") && !err.hint)
          throw new MesaError("CONFLICT", err.message, {
            hint: `to point it at ${opts.revision}: \`mesa bookmark move ${name} --to ${opts.revision}\``,
          });
        throw err;
      });
      process.stdout.write(`created bookmark ${b.name} at ${b.change_id}\n`);
    } finally {
      await c.close();
    }
  });

  withHelp(
    repoOptions(
      bookmark
        .command("move")
        .description("move a bookmark to another change (forward only unless --allow-backwards)")
        .argument("<name>", "bookmark name")
        .requiredOption("-t, --to <rev>", "bookmark, or change or commit id (4+ character prefix)")
        .option("--allow-backwards", "allow moving to a change that is not a descendant"),
    ),
    {
      examples: [
        "mesa bookmark move feat --to lzym",
        "mesa bookmark move main --to 1a2b3c4d --allow-backwards",
      ],
      env: COMMON_ENV,
    },
  ).action(async (name: string, opts: RepoOpts & { to: string; allowBackwards?: boolean }, cmd: Command) => {
    const c = await clients(cmd, target(cmd, opts));
    try {
      const change = await changeOf(c, opts.to);
      const b = await c.rest
        .moveBookmark(c.org, c.repo, name, change, { allowBackwards: opts.allowBackwards })
        .catch((err) => {
          // The server speaks of its API field; the user has a flag.
          if (isMesaError(err, "CONFLICT") && /allow_backwards/.test(err.message))
            throw new MesaError("CONFLICT", err.message.replace(/\s*\(pass allow_backwards to force\)/, ""), {
              hint: "pass --allow-backwards to move it anyway",
            });
          throw err;
        });
      process.stdout.write(`moved bookmark ${b.name} from ${b.from_change_id} to ${b.change_id}\n`);
    } finally {
      await c.close();
    }
  });
}
