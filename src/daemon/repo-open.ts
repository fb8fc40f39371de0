/**
 * `mesa repo open|close <repo> --org <org>`: record the choice in config.toml (when a file
 * is in use and the org mounts an explicit list), editing only that repo's entry, and tell
 * the running daemon, which mounts or drops the repo live. A repo that does not exist on the
 * server is refused before anything is written.
 */
import { readFile } from "node:fs/promises";
import type { Command } from "commander";
import { writeFileAtomic } from "../atomic-file.js";
import { connectionFor } from "../cli/credentials.js";
import { withHelp } from "../cli/help.js";
import { addRepoEntry, removeRepoEntry } from "../config/edit.js";
import { loadConfig } from "../config/load.js";
import type { Config } from "../config/types.js";
import { isMesaError, MesaError } from "../errors.js";
import { validateOrgName, validateRepoName } from "../names.js";
import { BOOKMARK_REF_PREFIX } from "../vcs/refs.js";
import { controlRequest } from "./control.js";
import { runningDaemon } from "./liveness.js";

/** Whether config.toml gains (open) or loses (close) the entry; false when nothing changes. */
async function editConfig(config: Config, org: string, repo: string, open: boolean): Promise<boolean> {
  if (!config.file || config.sources[`organizations.${org}`] !== "file") return false;
  if (config.organizations[org]?.mount !== "explicit") return false;
  const has = repo in (config.organizations[org]?.repos ?? {});
  if (open === has) return false;
  const text = await readFile(config.file, "utf8");
  const next = open
    ? addRepoEntry(config.file, text, org, repo)
    : removeRepoEntry(config.file, text, org, repo);
  await writeFileAtomic(config.file, Buffer.from(next));
  return true;
}

/** Refuses a repo the server does not have (one ls-refs), so a typo is never recorded. */
async function checkExists(
  config: Config,
  org: string,
  repo: string,
  nonInteractive: boolean,
): Promise<void> {
  const { credential, serviceUrl } = await connectionFor(config, org, { nonInteractive, repo });
  const { GitRemote } = await import("../vcs/remote.js");
  const git = new GitRemote({
    url: `${serviceUrl.replace(/\/+$/, "")}/${org}/${repo}.git`,
    credential,
  });
  try {
    await git.lsRefs({ prefixes: [BOOKMARK_REF_PREFIX] });
  } catch (err) {
    if (isMesaError(err, "NOT_FOUND"))
      throw new MesaError("NOT_FOUND", `repository ${org}/${repo} does not exist on ${serviceUrl}`, {
        hint: `see \`mesa repo list --all --org ${org}\`; nothing was changed`,
      });
    throw err;
  } finally {
    await git.close();
  }
}

async function openClose(cmd: Command, repo: string, org: string | undefined, open: boolean): Promise<void> {
  const g = cmd.optsWithGlobals() as { configPath?: string; nonInteractive?: boolean };
  const config = loadConfig({ configPath: g.configPath });
  const o =
    org ??
    config.env.org ??
    (Object.keys(config.organizations).length === 1 ? Object.keys(config.organizations)[0] : undefined);
  if (!o) throw new MesaError("USAGE", "which organization? pass --org <org> (or set MESA_ORG)");
  validateOrgName(o);
  validateRepoName(repo);
  if (open) await checkExists(config, o, repo, g.nonInteractive === true);
  const saved = await editConfig(config, o, repo, open);
  const daemon = await runningDaemon(config);
  const lines: string[] = [];
  if (saved) lines.push(`${open ? "added" : "removed"} ${o}/${repo} in ${config.file}`);
  if (daemon) {
    await controlRequest(daemon.socket, { cmd: open ? "repo-open" : "repo-close", org: o, repo }, 120_000);
    lines.push(`${open ? "mounted" : "unmounted"} ${o}/${repo} at ${config.mountPoint}/${o}/${repo}`);
  } else lines.push("mesa is not running; the change applies at the next `mesa mount`");
  process.stdout.write(`${lines.join("\n")}\n`);
}

/** Adds `open` and `close` to the `repo` command group. */
export function registerRepoOpenClose(repoCmd: Command): void {
  withHelp(
    repoCmd
      .command("open")
      .description("mount a repo (records it in config.toml for explicit orgs, tells the daemon)")
      .argument("<repo>", "repository name")
      .option("--org <org>", "organization (default MESA_ORG or the only configured one)"),
    {
      examples: ["mesa repo open app --org acme"],
      env: { MESA_ORG: "organization used when --org is not given" },
    },
  ).action((repo: string, opts: { org?: string }, cmd: Command) => openClose(cmd, repo, opts.org, true));
  withHelp(
    repoCmd
      .command("close")
      .description("unmount a repo (removes it from config.toml for explicit orgs, tells the daemon)")
      .argument("<repo>", "repository name")
      .option("--org <org>", "organization (default MESA_ORG or the only configured one)"),
    {
      examples: ["mesa repo close app --org acme"],
      env: { MESA_ORG: "organization used when --org is not given" },
    },
  ).action((repo: string, opts: { org?: string }, cmd: Command) => openClose(cmd, repo, opts.org, false));
}
