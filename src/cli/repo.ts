/**
 * `mesa repo list [--all]` (compat.md §1): the repos each configured org mounts (●) and,
 * with --all, the ones the backend has that are not mounted (○).
 */
import type { Command } from "commander";
import { loadConfig } from "../config/load.js";
import type { Config } from "../config/types.js";
import { registerRepoOpenClose } from "../daemon/repo-open.js";
import { MesaError } from "../errors.js";
import {
  applyEnvOrgs,
  envCredential,
  openSecretStore,
  resolveCredential,
  type SecretStore,
} from "../secrets/index.js";
import { RestClient } from "../vcs/rest.js";
import { globalOptions } from "./context.js";

/** Orgs named in the config file or the environment, sorted. */
function configuredOrgs(config: Config): string[] {
  const orgs = new Set(Object.keys(config.organizations));
  if (config.env.org) orgs.add(config.env.org);
  for (const { org } of config.env.orgs) orgs.add(org);
  return [...orgs].sort();
}

async function backendRepos(config: Config, org: string, credential: string): Promise<string[]> {
  const client = new RestClient({ serviceUrl: config.serviceUrl, credential, timeoutMs: 15_000 });
  try {
    const names: string[] = [];
    for await (const repo of client.listRepos(org)) names.push(repo.name);
    return names.sort();
  } finally {
    await client.close();
  }
}

export function register(program: Command): void {
  const repo = program.command("repo").description("repositories of the configured organizations");
  repo
    .command("list")
    .description("list mounted repos (●); with --all also the backend's other repos (○)")
    .option("--all", "also list repos on the backend that are not mounted")
    .action(async (opts: { all?: boolean }, cmd: Command) => {
      const g = globalOptions(cmd);
      const config = loadConfig({ configPath: g.configPath });
      const orgs = configuredOrgs(config);
      if (orgs.length === 0)
        throw new MesaError("CONFIG_INVALID", "no organization is configured", {
          hint: "set MESA_ORG (and MESA_API_KEY) or add [organizations.<org>] to config.toml",
        });
      let store: SecretStore | undefined;
      const credentialFor = async (org: string): Promise<string> => {
        const direct = config.env.orgs.length === 0 ? envCredential(config, org) : undefined;
        if (direct !== undefined) return direct;
        if (!store) {
          store = await openSecretStore(config, { nonInteractive: g.nonInteractive });
          await applyEnvOrgs(config, store);
        }
        return resolveCredential(config, store, org);
      };
      const lines: string[] = [];
      for (const org of orgs) {
        const orgConfig = config.organizations[org];
        const mode = orgConfig?.mount ?? "all";
        const explicit = Object.keys(orgConfig?.repos ?? {}).sort();
        const needBackend = opts.all === true || mode === "all";
        const available = needBackend ? await backendRepos(config, org, await credentialFor(org)) : [];
        const mounted = new Set(mode === "all" ? available : explicit);
        const names = [...new Set([...(opts.all ? available : []), ...mounted])].sort();
        for (const name of names) lines.push(`${mounted.has(name) ? "●" : "○"} ${org}/${name}`);
      }
      process.stdout.write(lines.length > 0 ? `${lines.join("\n")}\n` : "no repositories\n");
    });
  registerRepoOpenClose(repo);
}
