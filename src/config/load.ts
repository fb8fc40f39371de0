import { homedir } from "node:os";
import { dirname, resolve } from "node:path";
import { MesaError } from "../errors.js";
import { noConfigFile, readEnv } from "./env.js";
import { type FileValues, findConfigFile, readConfigFile } from "./file.js";
import { expandPath } from "./paths.js";
import { type Defaults, SETTINGS, type Source, setSetting } from "./settings.js";
import type { Config, OrgConfig, RepoConfig } from "./types.js";

export interface LoadOptions {
  /** --config-path; when given the file must exist. */
  configPath?: string;
  env?: NodeJS.ProcessEnv;
  /** Home directory for `~` and the default paths; default $HOME. */
  home?: string;
  /** Base of relative paths given in the environment; default process.cwd(). */
  cwd?: string;
}

/**
 * defaults < config.toml < MESA_* environment, per key (SPEC §5). Every problem in the
 * file and the environment is collected and reported in one CONFIG_INVALID error, each
 * as `<file>: <key>: <reason>` (`environment: MESA_X: <reason>` for variables).
 */
export function loadConfig(opts: LoadOptions = {}): Config {
  const env = opts.env ?? process.env;
  const home = resolve(opts.home ?? (env.HOME || homedir()));
  const cwd = opts.cwd ?? process.cwd();
  const problems: string[] = [];

  let file: string | undefined;
  if (opts.configPath !== undefined) file = resolve(cwd, expandOrKeep(opts.configPath, home, cwd));
  else if (!noConfigFile(env, problems)) file = findConfigFile(env, home);
  const fileValues = file ? readConfigFile(file, problems) : undefined;
  const envValues = readEnv(env, problems);

  const sources: Config["sources"] = {};
  // Values in winning order, with the directory relative paths are resolved against.
  const pick = (key: string): { value: unknown; source: Source; base: string } | undefined => {
    if (envValues.settings.has(key)) return { value: envValues.settings.get(key), source: "env", base: cwd };
    if (fileValues?.settings.has(key))
      return { value: fileValues.settings.get(key), source: "file", base: dirname(file!) };
    return undefined;
  };

  const config = {
    secrets: {},
    cache: {},
    prefetch: {},
    daemon: {},
    organizations: {},
    env: envValues.credentials,
    sources,
    ...(file && fileValues ? { file } : {}),
  } as Config;

  // data-dir first: the other defaults live under it.
  const order = [...SETTINGS].sort((a, b) => Number(b.key === "data-dir") - Number(a.key === "data-dir"));
  const defaults: Defaults = { home, dataDir: "", env };
  for (const s of order) {
    const chosen = pick(s.key);
    let value = chosen ? chosen.value : s.default(defaults);
    if (chosen && s.kind === "path") {
      const expanded = expandPath(value as string, home, chosen.base);
      if (typeof expanded !== "string") {
        const where = chosen.source === "env" ? `environment: ${s.env}` : `${file}: ${s.key}`;
        problems.push(`${where}: ${expanded.problem}`);
        continue;
      }
      value = expanded;
    }
    setSetting(config, s, value);
    sources[s.key] = chosen?.source ?? "default";
    if (s.key === "data-dir") defaults.dataDir = value as string;
  }

  if (problems.length > 0) throw configError(problems);
  config.organizations = mergeOrganizations(fileValues, envValues, sources);
  return config;
}

function expandOrKeep(path: string, home: string, cwd: string): string {
  const expanded = expandPath(path, home, cwd);
  return typeof expanded === "string" ? expanded : path;
}

export function configError(problems: string[]): MesaError {
  const n = problems.length;
  return new MesaError(
    "CONFIG_INVALID",
    `invalid configuration (${n} problem${n === 1 ? "" : "s"}; config.example.toml documents every key):\n  ${problems.join("\n  ")}`,
    { details: { problems } },
  );
}

/** [organizations] from the file, then orgs named by MESA_ORG, MESA_ORGS and MESA_REPO_REVS. */
function mergeOrganizations(
  fileValues: FileValues | undefined,
  envValues: ReturnType<typeof readEnv>,
  sources: Config["sources"],
): Record<string, OrgConfig> {
  const orgs: Record<string, { mount: OrgConfig["mount"]; repos: Record<string, Partial<RepoConfig>> }> = {};
  for (const [name, o] of Object.entries(fileValues?.organizations ?? {})) {
    orgs[name] = { mount: o.mount ?? "all", repos: { ...o.repos } };
    sources[`organizations.${name}`] = "file";
    for (const repo of Object.keys(o.repos)) sources[`organizations.${name}.repos.${repo}`] = "file";
  }
  // Orgs only named in the environment mount every repo, like the original's MESA_ORG.
  const addOrg = (name: string) => {
    if (orgs[name]) return;
    orgs[name] = { mount: "all", repos: {} };
    sources[`organizations.${name}`] = "env";
  };
  if (envValues.credentials.org) addOrg(envValues.credentials.org);
  for (const { org } of envValues.credentials.orgs) addOrg(org);
  for (const { org, repo, rev } of envValues.repoRevs) {
    addOrg(org);
    const existing = orgs[org]!.repos[repo];
    if (!existing) sources[`organizations.${org}.repos.${repo}`] = "env";
    // A pin replaces the file's revision choice, including a branched-from fork.
    orgs[org]!.repos[repo] = { readOnly: existing?.readOnly, rev };
    sources[`organizations.${org}.repos.${repo}.rev`] = "env";
  }
  const out: Record<string, OrgConfig> = {};
  for (const [name, o] of Object.entries(orgs)) {
    const repos: Record<string, RepoConfig> = {};
    for (const [repo, r] of Object.entries(o.repos)) {
      // Change-id pins are immutable history: always read-only.
      const pinned = r.rev !== undefined && "changeId" in r.rev;
      repos[repo] = { ...r, readOnly: pinned || (r.readOnly ?? false) };
    }
    out[name] = { name, mount: o.mount, repos };
  }
  return out;
}

/** Every org to mount: from config and from credentials given in the environment. */
export function configuredOrgs(config: Config): string[] {
  const orgs = new Set(Object.keys(config.organizations));
  if (config.env.org) orgs.add(config.env.org);
  for (const o of config.env.orgs) orgs.add(o.org);
  return [...orgs].sort();
}
