/**
 * Quickstart's secrets backend, chosen once and written down: later commands read it from the
 * config file instead of guessing again (and warning again about the plaintext file).
 */
import { existsSync } from "node:fs";
import { join } from "node:path";
import { writeFileAtomic } from "../atomic-file.js";
import { noConfigFile } from "../config/env.js";
import type { Config, SecretBackendName } from "../config/types.js";
import { chooseBackend } from "../secrets/index.js";

export interface BackendChoice {
  backend: SecretBackendName;
  /** The config file this call created to record the choice, if any. */
  recordedIn?: string;
}

/**
 * The backend the user set (config or MESA_SECRETS_BACKEND) wins. Otherwise the same choice
 * as any command (keychain, an existing vault, a vault passphrase, else the 0600 plaintext
 * file), recorded in a new config file when the user has none. An existing config file is
 * never rewritten.
 */
export async function chooseQuickstartBackend(
  config: Config,
  opts: { nonInteractive?: boolean; home: string; env: NodeJS.ProcessEnv },
): Promise<BackendChoice> {
  if (config.secrets.backend) return { backend: config.secrets.backend };
  const backend = await chooseBackend(config, { nonInteractive: opts.nonInteractive, warn: () => undefined });
  config.secrets.backend = backend;
  // A config file already read, or config files switched off: nothing to record the choice in.
  if (config.file || noConfigFile(opts.env, [])) return { backend };
  const dir = opts.env.XDG_CONFIG_HOME || join(opts.home, ".config");
  const file = join(dir, "mesa", "config.toml");
  if (existsSync(file)) return { backend };
  const text = `# Written by \`mesa quickstart\`: where API keys are stored (see docs/configuration.md).\n[secrets]\nbackend = "${backend}"\n`;
  await writeFileAtomic(file, text, { mode: 0o600, dirMode: 0o700 });
  return { backend, recordedIn: file };
}
