/**
 * Shared by `mesa new/log/show/bookmark`: which repo a command is about (--org/--repo, else
 * the repo directory of the mount the shell is in, else the only configured one) and clients
 * for it with the credential of the environment, the running daemon or the store.
 */
import { realpathSync } from "node:fs";
import { relative, resolve } from "node:path";
import type { Command } from "commander";
import { loadConfig } from "../config/load.js";
import type { Config } from "../config/types.js";
import { MesaError } from "../errors.js";
import { validateOrgName, validateRepoName } from "../names.js";
import type { GitRemote } from "../vcs/remote.js";
import type { RestClient } from "../vcs/rest.js";
import { globalOptions } from "./context.js";
import { connectionFor } from "./credentials.js";

export interface RepoTarget {
  config: Config;
  org?: string;
  repo?: string;
}

/** The org/repo of the cwd when it is inside `<mount point>/<org>/<repo>`. */
export function repoFromCwd(
  mountPoint: string,
  cwd = process.cwd(),
): { org: string; repo: string } | undefined {
  let mp = resolve(mountPoint);
  try {
    mp = realpathSync(mp);
  } catch {
    // not mounted: compare the plain path
  }
  const rel = relative(mp, resolve(cwd));
  if (rel === "" || rel.startsWith("..")) return undefined;
  const [org, repo] = rel.split("/");
  return org && repo ? { org, repo } : undefined;
}

/** org/repo from the options, the cwd, or (for org) MESA_ORG / the only configured org. */
export function target(cmd: Command, opts: { org?: string; repo?: string }): RepoTarget {
  const config = loadConfig({ configPath: globalOptions(cmd).configPath });
  const here = repoFromCwd(config.mountPoint);
  const org = opts.org ?? here?.org ?? config.env.org ?? single(Object.keys(config.organizations));
  const repo = opts.repo ?? (here && here.org === org ? here.repo : undefined);
  return {
    config,
    org: org === undefined ? undefined : validateOrgName(org),
    repo: repo === undefined ? undefined : validateRepoName(repo),
  };
}

function single(xs: string[]): string | undefined {
  return xs.length === 1 ? xs[0] : undefined;
}

/** Both names are needed: a clear usage error otherwise. */
export function requireRepo(t: RepoTarget): { org: string; repo: string } {
  if (!t.org || !t.repo)
    throw new MesaError(
      "USAGE",
      "which repository? pass --org and --repo (--org defaults to MESA_ORG), or run the command inside <mount point>/<org>/<repo>",
    );
  return { org: t.org, repo: t.repo };
}

export async function clients(
  cmd: Command,
  t: RepoTarget,
): Promise<{ org: string; repo: string; rest: RestClient; git: GitRemote; close(): Promise<void> }> {
  const { org, repo } = requireRepo(t);
  const { credential, serviceUrl } = await connectionFor(t.config, org, {
    nonInteractive: globalOptions(cmd).nonInteractive,
    repo,
  });
  const [{ RestClient }, { GitRemote }] = await Promise.all([
    import("../vcs/rest.js"),
    import("../vcs/remote.js"),
  ]);
  const rest = new RestClient({ serviceUrl, credential });
  const git = new GitRemote({ url: `${serviceUrl.replace(/\/+$/, "")}/${org}/${repo}.git`, credential });
  return {
    org,
    repo,
    rest,
    git,
    async close() {
      await rest.close();
      await git.close();
    },
  };
}
