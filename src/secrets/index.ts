import { existsSync } from "node:fs";
import { join } from "node:path";
import { validateKeyText } from "../auth/keys.js";
import type { Config, SecretBackendName } from "../config/types.js";
import { MesaError } from "../errors.js";
import { FileStore, plaintextCodec } from "./file-store.js";
import { KeychainStore, probeKeychain } from "./keychain.js";
import { lookupOrder, parseScopeName, type SecretScope, scopeName } from "./scope.js";
import { passphraseAvailable, vaultCodec } from "./vault.js";

export { lookupOrder, parseScopeName, type SecretScope, scopeFromOptions, scopeName } from "./scope.js";

/** API keys by scope, in one of the three backends of SPEC §6. */
export interface SecretStore {
  readonly backend: SecretBackendName;
  /** File path or keychain description, for messages (never a key). */
  readonly location: string;
  get(scope: SecretScope): Promise<string | undefined>;
  /** True when the key was written (false when the store already held it). */
  set(scope: SecretScope, key: string): Promise<boolean>;
  /** False when there was no key to remove. */
  remove(scope: SecretScope): Promise<boolean>;
  list(): Promise<SecretScope[]>;
}

export interface OpenOptions {
  /** Never prompt on the terminal (for the vault passphrase). */
  nonInteractive?: boolean;
  /** Where the warning about keys written unencrypted goes; default stderr. */
  warn?: (message: string) => void;
}

export const vaultPath = (config: Pick<Config, "dataDir">) => join(config.dataDir, "secrets.vault.age");
export const plaintextPath = (config: Pick<Config, "dataDir">) =>
  join(config.dataDir, "secrets.plaintext.toml");

const stderrWarning = (m: string) => process.stderr.write(`mesa: warning: ${m}\n`);

/**
 * `onWrite` runs after a key was actually written: the plaintext fallback warns there, and
 * only there, so reading keys (or a key from MESA_API_KEY) never warns.
 */
function fileBacked(store: FileStore, onWrite?: () => void): SecretStore {
  return {
    backend: store.codec.backend,
    location: store.codec.path,
    get: async (scope) => (await store.read()).get(scopeName(scope)),
    async set(scope, key) {
      const name = scopeName(scope);
      validateKeyText(key);
      const written = await store.update((e) => {
        if (e.get(name) === key) return false;
        e.set(name, key);
        return true;
      });
      if (written) onWrite?.();
      return written;
    },
    remove: (scope) => {
      const name = scopeName(scope);
      return store.update((e) => e.delete(name));
    },
    list: async () => sortScopes([...(await store.read()).keys()]),
  };
}

function keychainBacked(): SecretStore {
  const kc = new KeychainStore();
  return {
    backend: "keychain",
    location: kc.location,
    get: (scope) => kc.get(scopeName(scope)),
    async set(scope, key) {
      const name = scopeName(scope);
      validateKeyText(key);
      if ((await kc.get(name)) === key) return false;
      await kc.set(name, key);
      return true;
    },
    remove: (scope) => kc.remove(scopeName(scope)),
    list: async () => sortScopes(await kc.names()),
  };
}

function sortScopes(names: string[]): SecretScope[] {
  return names
    .sort()
    .map((n) => parseScopeName(n))
    .filter((s): s is SecretScope => s !== undefined);
}

/**
 * SPEC §6 default when `[secrets] backend` is unset: the keychain when a round trip
 * works; else an existing vault (so keys stored earlier stay found); else encrypted-file
 * when a passphrase can be had (MESA_VAULT_PASSPHRASE or a terminal) and no plaintext
 * file exists yet; else plaintext-file, with a warning each time a key is written to it.
 */
export async function chooseBackend(config: Config, opts: OpenOptions): Promise<SecretBackendName> {
  if (await probeKeychain()) return "keychain";
  if (existsSync(vaultPath(config))) return "encrypted-file";
  const src = { env: config.env.vaultPassphrase, nonInteractive: opts.nonInteractive === true };
  if (!existsSync(plaintextPath(config)) && passphraseAvailable(src)) return "encrypted-file";
  return "plaintext-file";
}

export async function openSecretStore(config: Config, opts: OpenOptions = {}): Promise<SecretStore> {
  const chosen = config.secrets.backend;
  const backend = chosen ?? (await chooseBackend(config, opts));
  if (backend === "keychain") {
    // Chosen explicitly: fail now with the fix rather than at the first key.
    if (config.secrets.backend && !(await probeKeychain()))
      throw new MesaError("SECRET_STORE_UNAVAILABLE", "the OS keychain is not reachable", {
        hint: 'start a Secret Service (e.g. gnome-keyring, unlocked) or set [secrets] backend = "encrypted-file" or "plaintext-file"',
      });
    return keychainBacked();
  }
  if (backend === "encrypted-file")
    return fileBacked(
      new FileStore(
        vaultCodec(vaultPath(config), {
          env: config.env.vaultPassphrase,
          nonInteractive: opts.nonInteractive === true,
        }),
      ),
    );
  // A plaintext file the user chose needs no warning; a fallback does, when it is written.
  const warn = opts.warn ?? stderrWarning;
  return fileBacked(
    new FileStore(plaintextCodec(plaintextPath(config))),
    chosen
      ? undefined
      : () =>
          warn(
            `no OS keychain is reachable and no vault passphrase is available: keys are stored unencrypted in ${plaintextPath(config)} (mode 0600); set [secrets] backend (or MESA_SECRETS_BACKEND) to choose`,
          ),
  );
}

/**
 * The credential for org O (and repo R): MESA_API_KEY when MESA_ORG is unset or is O;
 * else the store's `orgs/O/repos/R`, `orgs/O`, `global`, first found (SPEC §6).
 */
export async function resolveCredential(
  config: Config,
  store: SecretStore,
  org: string,
  repo?: string,
): Promise<string> {
  const direct = envCredential(config, org);
  if (direct !== undefined) return direct;
  for (const scope of lookupOrder(org, repo)) {
    const key = await store.get(scope);
    if (key !== undefined) return key;
  }
  throw new MesaError("NO_API_KEY", `no API key found in the secret store for organization '${org}'`, {
    hint: `run \`mesa auth set-key --org ${org}\``,
  });
}

/**
 * The key the environment gives for `org`, so no store is needed: its MESA_ORGS entry, else
 * MESA_API_KEY when MESA_ORG is unset or is `org`.
 */
export function envCredential(config: Config, org: string): string | undefined {
  const listed = config.env.orgs.find((o) => o.org === org);
  if (listed) return listed.key;
  const { apiKey, org: envOrg } = config.env;
  return apiKey !== undefined && (envOrg === undefined || envOrg === org) ? apiKey : undefined;
}

/**
 * MESA_ORGS=org:key,…: stores each key as `orgs/<org>` before the command proceeds, and says
 * once (on stderr) where a key was written; nothing when the store already held it.
 */
export async function applyEnvOrgs(
  config: Config,
  store: SecretStore,
  say: (line: string) => void = (l) => process.stderr.write(`mesa: ${l}\n`),
): Promise<void> {
  for (const { org, key } of config.env.orgs)
    if (await store.set({ kind: "org", org }, key))
      say(`stored the key for orgs/${org} in ${store.backend} (${store.location})`);
}
