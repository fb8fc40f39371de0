/**
 * `mesa repo open|close <repo> --org <org>`: record the choice in config.toml (when a file
 * is in use) and tell the running daemon, which mounts or drops the repo live.
 */
import { readFile } from "node:fs/promises";
import type { Command } from "commander";
import { parse, stringify } from "smol-toml";
import { writeFileAtomic } from "../atomic-file.js";
import { loadConfig } from "../config/load.js";
import type { Config } from "../config/types.js";
import { MesaError } from "../errors.js";
import { validateOrgName, validateRepoName } from "../names.js";
import { controlRequest } from "./control.js";
import { runtimePaths } from "./paths.js";
import { livePid } from "./pidfile.js";

type Table = Record<string, unknown>;

function table(parent: Table, key: string): Table {
  const v = parent[key];
  if (v && typeof v === "object" && !Array.isArray(v)) return v as Table;
  const t: Table = {};
  parent[key] = t;
  return t;
}

/**
 * Open: an explicit-mode org gains `[organizations.O.repos.R]`. Close: that table goes.
 * In `all` mode every repo is mounted anyway, so the file is left alone.
 * Returns whether the file changed. (Comments in the file are not preserved by the rewrite.)
 */
async function editConfig(config: Config, org: string, repo: string, open: boolean): Promise<boolean> {
  if (!config.file) return false;
  const doc = parse(await readFile(config.file, "utf8")) as Table;
  const orgs = table(doc, "organizations");
  const existing = orgs[org] as Table | undefined;
  const mode = (existing?.mount as string | undefined) ?? "all";
  if (mode !== "explicit") return false;
  const repos = table(existing as Table, "repos");
  if (open === repo in repos) return false;
  if (open) repos[repo] = {};
  else delete repos[repo];
  await writeFileAtomic(config.file, Buffer.from(stringify(doc)));
  return true;
}

async function openClose(cmd: Command, repo: string, org: string | undefined, open: boolean): Promise<void> {
  const g = cmd.optsWithGlobals() as { configPath?: string };
  const config = loadConfig({ configPath: g.configPath });
  const o =
    org ??
    config.env.org ??
    (Object.keys(config.organizations).length === 1 ? Object.keys(config.organizations)[0] : undefined);
  if (!o) throw new MesaError("USAGE", "which organization? pass --org <org>");
  validateOrgName(o);
  validateRepoName(repo);
  const saved = await editConfig(config, o, repo, open);
  const pid = await livePid(runtimePaths(config).pidFile);
  const lines: string[] = [];
  if (saved) lines.push(`${open ? "added" : "removed"} ${o}/${repo} in ${config.file}`);
  if (pid !== undefined) {
    await controlRequest(
      runtimePaths(config).socket,
      { cmd: open ? "repo-open" : "repo-close", org: o, repo },
      120_000,
    );
    lines.push(`${open ? "mounted" : "unmounted"} ${o}/${repo} at ${config.mountPoint}/${o}/${repo}`);
  } else lines.push("mesa is not running; the change applies at the next `mesa mount`");
  process.stdout.write(`${lines.join("\n")}\n`);
}

/** Adds `open` and `close` to the `repo` command group. */
export function registerRepoOpenClose(repoCmd: Command): void {
  repoCmd
    .command("open")
    .description("mount a repo (records it in config.toml for explicit orgs, tells the daemon)")
    .argument("<repo>", "repository name")
    .option("--org <org>", "organization (default MESA_ORG or the only configured one)")
    .action((repo: string, opts: { org?: string }, cmd: Command) => openClose(cmd, repo, opts.org, true));
  repoCmd
    .command("close")
    .description("unmount a repo (removes it from config.toml for explicit orgs, tells the daemon)")
    .argument("<repo>", "repository name")
    .option("--org <org>", "organization (default MESA_ORG or the only configured one)")
    .action((repo: string, opts: { org?: string }, cmd: Command) => openClose(cmd, repo, opts.org, false));
}
