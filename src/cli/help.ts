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
