/**
 * What each command's `--help` ends with: examples and the environment variables it reads.
 */
import type { Command } from "commander";

export interface HelpExtras {
  examples?: string[];
  /** Variable name → what it does for this command. */
  env?: Record<string, string>;
}

/** Variables every command that reaches a server or the daemon reads. */
export const COMMON_ENV: Record<string, string> = {
  MESA_SERVICE_URL: "base URL of the server (default http://127.0.0.1:7878)",
  MESA_ORG: "organization used when --org is not given",
  MESA_API_KEY: "API key or access token (with MESA_ORG: for that org only)",
  MESA_ORGS: "org:key[,org:key…]: keys per org, stored in the secret store",
  MESA_VAULT_PASSPHRASE: "passphrase of the encrypted secret vault",
};

export function withHelp(cmd: Command, extras: HelpExtras): Command {
  const parts: string[] = [];
  if (extras.examples?.length) parts.push(`Examples:\n${extras.examples.map((e) => `  $ ${e}`).join("\n")}`);
  const env = Object.entries(extras.env ?? {});
  if (env.length > 0) {
    const width = Math.max(...env.map(([k]) => k.length));
    parts.push(`Environment:\n${env.map(([k, v]) => `  ${k.padEnd(width)}  ${v}`).join("\n")}`);
  }
  if (parts.length > 0) cmd.addHelpText("after", `\n${parts.join("\n\n")}`);
  return cmd;
}

const CONFIG_ENV: Record<string, string> = {
  MESA_NO_CONFIG_FILE: "1: read no config file",
  "MESA_*": "every setting (see docs/configuration.md)",
};

/** Examples and variables of the commands whose files do not add their own, by command path. */
export const HELP_EXTRAS: Record<string, HelpExtras> = {
  version: { examples: ["mesa version"] },
  config: { examples: ["mesa config show", "mesa config show --json"], env: CONFIG_ENV },
  "config show": {
    examples: ["mesa config show", "mesa -c ./config.toml config show --json"],
    env: CONFIG_ENV,
  },
  auth: { examples: ["mesa auth set-key --org acme < key.txt", "mesa auth list"] },
  "auth set-key": {
    examples: [
      "mesa auth set-key --org acme < key.txt",
      "mesa auth set-key --org acme --repo app",
      "mesa auth set-key",
    ],
    env: {
      MESA_SECRETS_BACKEND: "keychain | encrypted-file | plaintext-file",
      MESA_VAULT_PASSPHRASE: COMMON_ENV.MESA_VAULT_PASSPHRASE,
    },
  },
  "auth list": {
    examples: ["mesa auth list", "mesa auth list --json"],
    env: {
      MESA_SECRETS_BACKEND: "which store to list",
      MESA_VAULT_PASSPHRASE: COMMON_ENV.MESA_VAULT_PASSPHRASE,
    },
  },
  "auth remove": {
    examples: ["mesa auth remove --org acme", "mesa auth remove"],
    env: { MESA_SECRETS_BACKEND: "which store", MESA_VAULT_PASSPHRASE: COMMON_ENV.MESA_VAULT_PASSPHRASE },
  },
  token: { examples: ["mesa token create --org acme --scope read --ttl 600"] },
  "token create": {
    examples: [
      "mesa token create --org acme",
      "MESA_ORG=acme mesa token create --repo app --scope read --ttl 600",
    ],
    env: COMMON_ENV,
  },
  serve: {
    examples: ["mesa serve", "mesa serve --listen 0.0.0.0:7878 --data-dir /srv/mesa --org acme"],
  },
  "serve import": {
    examples: [
      "mesa serve import acme/app https://github.com/acme/app.git",
      "mesa serve import acme/lib ./lib --quiet",
    ],
  },
  "serve admin-key": {
    examples: [
      "mesa serve admin-key --org acme",
      "mesa serve admin-key --org acme --name ops --data-dir /srv/mesa",
    ],
  },
  doctor: {
    examples: ["mesa doctor", "mesa doctor --json | jq '.checks[] | select(.ok | not)'"],
    env: { ...COMMON_ENV, MESA_MOUNT_POINT: "the mount point it checks" },
  },
  quickstart: {
    examples: ["mesa quickstart", "mesa quickstart --stop"],
    env: { MESA_SERVICE_URL: "where the local server listens (default http://127.0.0.1:7878)" },
  },
  repo: { examples: ["mesa repo list --all", "mesa repo open app --org acme"], env: COMMON_ENV },
  bookmark: { examples: ["mesa bookmark list", "mesa bookmark move feat --to lzym"], env: COMMON_ENV },
  "dump-default-mesaignore": { examples: ["mesa dump-default-mesaignore > ~/.config/mesa/mesaignore"] },
  help: { examples: ["mesa help repo list", "mesa help show"] },
};

/** Adds HELP_EXTRAS to the commands of `program` they name. */
export function addHelpExtras(program: Command): void {
  const walk = (cmd: Command, path: string) => {
    for (const c of cmd.commands) {
      const p = path ? `${path} ${c.name()}` : c.name();
      const extras = HELP_EXTRAS[p];
      if (extras) withHelp(c, extras);
      walk(c, p);
    }
  };
  walk(program, "");
}
