import type { Command } from "commander";
import { parseScopes } from "../auth/keys.js";
import { loadConfig } from "../config/load.js";
import { MesaError } from "../errors.js";
import { validateOrgName, validateRepoName } from "../names.js";
import { applyEnvOrgs, envCredential, openSecretStore, resolveCredential } from "../secrets/index.js";
import { globalOptions } from "./context.js";

function parseTtl(text: string, max: number): number {
  if (!/^\d+$/.test(text))
    throw new MesaError("INVALID_ARGUMENT", `--ttl takes whole seconds, got ${JSON.stringify(text)}`);
  const ttl = Number(text);
  if (ttl < 1 || ttl > max)
    throw new MesaError("INVALID_ARGUMENT", `token TTL ${ttl} s is out of range: use 1 to ${max} seconds`);
  return ttl;
}

export function register(program: Command): void {
  const token = program.command("token").description("access tokens");
  token
    .command("create")
    .description("mint a short-lived access token locally from the stored key and print it")
    .option("--org <org>", "organization the token is for (default MESA_ORG)")
    .option(
      "--repo <repo>",
      "limit the token to this repository (repeatable)",
      (v, acc: string[]) => [...acc, v],
      [],
    )
    .option("--scope <scopes>", "comma-separated scopes: read, write, admin", "read,write")
    .option(
      "--ttl <seconds>",
      "lifetime in seconds (API keys: 1–86400, default 3600; private keys: 1–14400, default 900)",
    )
    .action(async (opts: { org?: string; repo: string[]; scope: string; ttl?: string }, cmd: Command) => {
      const g = globalOptions(cmd);
      const config = loadConfig({ configPath: g.configPath });
      const named = opts.org ?? config.env.org;
      if (named === undefined)
        throw new MesaError("USAGE", "which organization? pass --org <org> (or set MESA_ORG)");
      const org = validateOrgName(named);
      const repos =
        opts.repo.length === 0 ? null : [...new Set(opts.repo.map((r) => `${org}/${validateRepoName(r)}`))];
      const scopes = parseScopes(opts.scope);
      // Signing and the server lookup are loaded when a token is made, not for every command.
      const [{ API_KEY_TTL }, { mintAccessToken }, { whoamiKeyId }] = await Promise.all([
        import("../auth/tokens.js"),
        import("../auth/mint.js"),
        import("../vcs/rest.js"),
      ]);
      const ttlSeconds = opts.ttl === undefined ? undefined : parseTtl(opts.ttl, API_KEY_TTL.max);
      // MESA_API_KEY needs no secret store: don't probe backends (or warn) for nothing.
      let credential = envCredential(config, org);
      if (credential === undefined) {
        const store = await openSecretStore(config, { nonInteractive: g.nonInteractive });
        await applyEnvOrgs(config, store);
        const only = opts.repo.length === 1 ? opts.repo[0] : undefined;
        credential = await resolveCredential(config, store, org, only);
      }
      const jwt = await mintAccessToken(credential, { org, repos, scopes, ttlSeconds }, (key) =>
        whoamiKeyId(config.serviceUrl, key),
      );
      process.stdout.write(`${jwt}\n`);
    });
}
