/**
 * `mesa repo list [--all] [--json]` (compat.md §1): ● the repos the running daemon mounts,
 * ○ the ones it does not — configured ones, and with --all every repo the backend has.
 */
import type { Command } from "commander";
import { configuredOrgs, loadConfig } from "../config/load.js";
import { controlRequest } from "../daemon/control.js";
import type { DaemonStatus } from "../daemon/daemon.js";
import { runningDaemon } from "../daemon/liveness.js";
import { registerRepoOpenClose } from "../daemon/repo-open.js";
import { MesaError } from "../errors.js";
import { validateOrgName } from "../names.js";
import { globalOptions } from "./context.js";
import { connectionFor } from "./credentials.js";
import { COMMON_ENV, withHelp } from "./help.js";
import { printJson } from "./json.js";

async function backendRepos(serviceUrl: string, org: string, credential: string): Promise<string[] | null> {
  const { RestClient } = await import("../vcs/rest.js");
  const client = new RestClient({ serviceUrl, credential, timeoutMs: 15_000 });
  try {
    const names: string[] = [];
    for await (const repo of client.listRepos(org)) names.push(repo.name);
    return names.sort();
  } catch (err) {
    // A plain Git server has no REST API to list repos: only configured ones are known.
    if (err instanceof MesaError && err.code === "NOT_FOUND" && err.details?.apiCode === undefined)
      return null;
    throw err;
  } finally {
    await client.close();
  }
}

interface Listed {
  org: string;
  repo: string;
  mounted: boolean;
  revision: string | null;
}

export function register(program: Command): void {
  const repo = program.command("repo").description("repositories of the configured organizations");
  withHelp(
    repo
      .command("list")
      .description(
        "● repos mounted now, ○ repos not mounted (configured ones; with --all every repo on the server)",
      )
      .option("--all", "also list the server's repos that are not mounted")
      .option("--org <org>", "only this organization")
      .option("--json", "print JSON (see docs/cli.md)"),
    {
      examples: [
        "mesa repo list",
        "mesa repo list --all --org acme",
        "mesa repo list --json | jq -r '.repos[].repo'",
      ],
      env: COMMON_ENV,
    },
  ).action(async (opts: { all?: boolean; org?: string; json?: boolean }, cmd: Command) => {
    const g = globalOptions(cmd);
    const config = loadConfig({ configPath: g.configPath });
    const daemon = await runningDaemon(config);
    const status = daemon
      ? ((await controlRequest(daemon.socket, { cmd: "status" })) as DaemonStatus)
      : undefined;
    // The running daemon knows its orgs even when nothing names them here (MESA_ORGS, quickstart).
    const orgs = opts.org
      ? [validateOrgName(opts.org)]
      : [...new Set([...configuredOrgs(config), ...(status?.orgs ?? [])])].sort();
    if (orgs.length === 0)
      throw new MesaError("CONFIG_INVALID", "no organization is configured and mesa is not running", {
        hint: "pass --org, set MESA_ORG (and MESA_API_KEY), or add [organizations.<org>] to config.toml",
      });
    const listed: Listed[] = [];
    for (const org of orgs) {
      const orgConfig = config.organizations[org];
      const mounted = new Map(
        (status?.repos ?? []).filter((r) => r.org === org).map((r) => [r.repo, r.revision]),
      );
      const names = new Set([...mounted.keys(), ...Object.keys(orgConfig?.repos ?? {})]);
      if (opts.all || (!status && (orgConfig?.mount ?? "all") === "all")) {
        const { credential, serviceUrl } = await connectionFor(config, org, {
          nonInteractive: g.nonInteractive,
        });
        for (const name of (await backendRepos(serviceUrl, org, credential)) ?? []) names.add(name);
      }
      for (const name of [...names].sort())
        listed.push({ org, repo: name, mounted: mounted.has(name), revision: mounted.get(name) ?? null });
    }
    if (opts.json) return printJson({ running: status !== undefined, repos: listed });
    if (!status)
      process.stderr.write("mesa is not running: nothing is mounted (start it with `mesa mount -d`)\n");
    process.stdout.write(
      listed.length > 0
        ? `${listed.map((r) => `${r.mounted ? "●" : "○"} ${r.org}/${r.repo}${r.revision ? `  ${r.revision}` : ""}`).join("\n")}\n`
        : "no repositories\n",
    );
  });
  registerRepoOpenClose(repo);
}
