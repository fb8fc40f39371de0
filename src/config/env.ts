import { nameProblem } from "../names.js";
import { parseRev } from "./revs.js";
import { SETTINGS, type Setting } from "./settings.js";
import type { Config, RevSpec } from "./types.js";

/** What the MESA_* environment says, validated; absent variables are absent. */
export interface EnvValues {
  settings: Map<string, unknown>;
  credentials: Config["env"];
  repoRevs: Array<{ org: string; repo: string; rev: RevSpec }>;
}

const WHERE = "environment";

/** Empty variables count as unset, as in most shells' `VAR= cmd` idiom. */
function read(env: NodeJS.ProcessEnv, name: string): string | undefined {
  const v = env[name];
  return v === undefined || v === "" ? undefined : v;
}

export function parseBool(text: string): boolean | undefined {
  const t = text.trim().toLowerCase();
  if (["1", "true", "yes", "on"].includes(t)) return true;
  if (["0", "false", "no", "off"].includes(t)) return false;
  return undefined;
}

/** Turns the variable's text into the type the setting's schema expects. */
function fromEnv(s: Setting, text: string): unknown | { problem: string } {
  switch (s.kind) {
    case "bool": {
      const b = parseBool(text);
      return b ?? { problem: `expected true or false, got ${JSON.stringify(text)}` };
    }
    case "int":
      return /^\s*[+-]?\d+\s*$/.test(text)
        ? Number(text)
        : { problem: `expected a whole number, got ${JSON.stringify(text)}` };
    case "ratio": {
      const n = Number(text);
      return text.trim() !== "" && Number.isFinite(n)
        ? n
        : { problem: `expected a number, got ${JSON.stringify(text)}` };
    }
    default:
      return text;
  }
}

/** A key is one token: never echo it, even in an error. */
function keyProblem(key: string): string | undefined {
  if (key.length === 0) return "the key is empty";
  if (/\s/.test(key)) return "the key contains whitespace or a line break";
  if (key.length > 4096) return "the key is longer than 4096 characters";
  return undefined;
}

function parseOrgs(text: string, problems: string[]): Array<{ org: string; key: string }> {
  const out: Array<{ org: string; key: string }> = [];
  text.split(",").forEach((entry, i) => {
    const at = `${WHERE}: MESA_ORGS: entry ${i + 1}`;
    const colon = entry.indexOf(":");
    if (colon < 0) {
      problems.push(`${at}: expected org:key`);
      return;
    }
    const org = entry.slice(0, colon).trim();
    const key = entry.slice(colon + 1);
    const orgProblem = nameProblem(org);
    if (orgProblem) problems.push(`${at}: invalid organization name: it ${orgProblem}`);
    const kp = keyProblem(key);
    if (kp) problems.push(`${at}: ${kp}`);
    if (orgProblem || kp) return;
    if (out.some((o) => o.org === org)) problems.push(`${at}: organization '${org}' is listed twice`);
    else out.push({ org, key });
  });
  return out;
}

function parseRepoRevs(text: string, problems: string[]): EnvValues["repoRevs"] {
  const out: EnvValues["repoRevs"] = [];
  for (const raw of text.split(",")) {
    const entry = raw.trim();
    const at = `${WHERE}: MESA_REPO_REVS: entry ${JSON.stringify(entry)}`;
    const m = /^([^=]*)\/([^=/]*)=(bookmark|change-id):(.*)$/.exec(entry);
    if (!m) {
      problems.push(`${at}: expected org/repo=bookmark:NAME or org/repo=change-id:ID`);
      continue;
    }
    const [, org, repo, kind, value] = m as unknown as [
      string,
      string,
      string,
      "bookmark" | "change-id",
      string,
    ];
    const here: string[] = [];
    const op = nameProblem(org);
    if (op) here.push(`${at}: invalid organization name: it ${op}`);
    const rp = nameProblem(repo);
    if (rp) here.push(`${at}: invalid repository name: it ${rp}`);
    const rev = parseRev(kind, value);
    if (typeof rev === "string") here.push(`${at}: ${rev}`);
    if (here.length === 0 && out.some((r) => r.org === org && r.repo === repo))
      here.push(`${at}: ${org}/${repo} is pinned twice`);
    problems.push(...here);
    if (here.length === 0 && typeof rev !== "string") out.push({ org, repo, rev });
  }
  return out;
}

export function readEnv(env: NodeJS.ProcessEnv, problems: string[]): EnvValues {
  const settings = new Map<string, unknown>();
  for (const s of SETTINGS) {
    if (!s.env) continue;
    const text = read(env, s.env);
    if (text === undefined) continue;
    const raw = fromEnv(s, text);
    if (raw && typeof raw === "object" && "problem" in raw) {
      problems.push(`${WHERE}: ${s.env}: ${(raw as { problem: string }).problem}`);
      continue;
    }
    const result = s.schema.safeParse(raw);
    if (result.success) settings.set(s.key, result.data);
    else for (const issue of result.error.issues) problems.push(`${WHERE}: ${s.env}: ${issue.message}`);
  }

  const credentials: Config["env"] = { orgs: [] };
  const org = read(env, "MESA_ORG");
  if (org !== undefined) {
    const p = nameProblem(org);
    if (p) problems.push(`${WHERE}: MESA_ORG: invalid organization name: it ${p}`);
    else credentials.org = org;
  }
  const apiKey = read(env, "MESA_API_KEY");
  if (apiKey !== undefined) {
    const p = keyProblem(apiKey);
    if (p) problems.push(`${WHERE}: MESA_API_KEY: ${p}`);
    else credentials.apiKey = apiKey;
  }
  const orgs = read(env, "MESA_ORGS");
  if (orgs !== undefined) credentials.orgs = parseOrgs(orgs, problems);
  const passphrase = read(env, "MESA_VAULT_PASSPHRASE");
  if (passphrase !== undefined) credentials.vaultPassphrase = passphrase;

  const revs = read(env, "MESA_REPO_REVS");
  const repoRevs = revs === undefined ? [] : parseRepoRevs(revs, problems);
  return { settings, credentials, repoRevs };
}

/** MESA_NO_CONFIG_FILE: any true-ish value skips the config file search. */
export function noConfigFile(env: NodeJS.ProcessEnv, problems: string[]): boolean {
  const text = read(env, "MESA_NO_CONFIG_FILE");
  if (text === undefined) return false;
  const b = parseBool(text);
  if (b === undefined) {
    problems.push(`${WHERE}: MESA_NO_CONFIG_FILE: expected 1 or 0, got ${JSON.stringify(text)}`);
    return false;
  }
  return b;
}

/** Variables that carry secrets: read once at start, never handed on to a child process. */
export const SECRET_ENV_VARS = ["MESA_API_KEY", "MESA_ORGS", "MESA_VAULT_PASSPHRASE"] as const;

/** A copy of `env` without the secret variables, for child processes. */
export function envWithoutSecrets(env: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  const out = { ...env };
  for (const name of SECRET_ENV_VARS) delete out[name];
  return out;
}

/**
 * Removes the secret variables from this process's environment (the C environ too), once the
 * config has read them: children that inherit it implicitly (libfuse's `fusermount`) get none.
 */
export function dropSecretsFromEnv(): void {
  for (const name of SECRET_ENV_VARS) delete process.env[name];
}
