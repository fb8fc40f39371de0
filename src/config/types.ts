/**
 * The validated, typed configuration every part of mesa reads. Produced by `loadConfig`
 * from defaults < config.toml < MESA_* environment (SPEC §5, compat.md §2).
 */
export type SecretBackendName = "keychain" | "encrypted-file" | "plaintext-file";

/** A repo's revision: a bookmark (follows it) or a change id (pinned, read-only). */
export type RevSpec = { bookmark: string } | { changeId: string };

export interface RepoConfig {
  rev?: RevSpec;
  readOnly: boolean;
  /** Fork a new change (and bookmark `as`, when given) from `bookmark` at mount time. */
  branchedFrom?: { bookmark: string; as?: string };
}

export interface OrgConfig {
  name: string;
  /** all: list repos from the backend (repos below override per repo); explicit: only those below. */
  mount: "all" | "explicit";
  repos: Record<string, RepoConfig>;
}

export interface Config {
  /** Root of the FUSE mount; repos appear at <mountPoint>/<org>/<repo>. */
  mountPoint: string;
  uid: number;
  gid: number;
  /** Base URL of the backend: REST at <serviceUrl>/v1, Git at <serviceUrl>/<org>/<repo>.git. */
  serviceUrl: string;
  /** mesa's own data dir (~/.local/share/mesa): secrets files, overlay, journal. */
  dataDir: string;
  secrets: { backend?: SecretBackendName };
  cache: { enabled: boolean; path: string; maxSize: number; maxMemorySize: number };
  prefetch: { enabled: boolean; maxDepth: number | null; maxConcurrency: number; cachePressureLimit: number };
  daemon: {
    logFile: string;
    logColor: "auto" | "always" | "never";
    runtimeDir: string;
    /** How often mounted refs are polled for others' updates, in milliseconds. */
    pollIntervalMs: number;
    /** TTL of the access token the daemon mints per mount session, in seconds. */
    tokenTtlSeconds: number;
    /** Mount the repos that load when others fail, instead of failing the mount. */
    allowPartial: boolean;
  };
  /** Global .mesaignore; undefined = built-in defaults. */
  mesaignorePath?: string;
  organizations: Record<string, OrgConfig>;
  /** Credentials given through the environment; never written to disk by the config layer. */
  env: {
    org?: string;
    apiKey?: string;
    orgs: Array<{ org: string; key: string }>;
    vaultPassphrase?: string;
  };
  /** Where each effective value came from, keyed by dotted path (e.g. "cache.max-size"). */
  sources: Record<string, "default" | "file" | "env">;
  /** The config file that was read, if any. */
  file?: string;
}
