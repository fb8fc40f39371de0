import { formatRev } from "./revs.js";
import { getSetting, SETTINGS, type Source } from "./settings.js";
import { formatSize } from "./size.js";
import type { Config } from "./types.js";

/** One line of `mesa config show`: a key, its effective value and where it came from. */
export interface ShownValue {
  key: string;
  value: string | number | boolean | null;
  source: Source;
}

export const REDACTED = "[redacted]";

/**
 * The effective configuration as flat key/value/source rows. Credentials from the
 * environment are listed by variable name with their values redacted.
 */
export function describeConfig(config: Config): ShownValue[] {
  const rows: ShownValue[] = [];
  for (const s of SETTINGS) {
    const value = getSetting(config, s);
    rows.push({
      key: s.key,
      value: value === undefined ? null : (value as ShownValue["value"]),
      source: config.sources[s.key] ?? "default",
    });
  }
  for (const org of Object.values(config.organizations)) {
    const orgSource = config.sources[`organizations.${org.name}`] ?? "file";
    rows.push({ key: `organizations.${org.name}.mount`, value: org.mount, source: orgSource });
    for (const [name, repo] of Object.entries(org.repos)) {
      const base = `organizations.${org.name}.repos.${name}`;
      const repoSource = config.sources[base] ?? orgSource;
      if (repo.rev)
        rows.push({
          key: `${base}.rev`,
          value: formatRev(repo.rev),
          source: config.sources[`${base}.rev`] ?? repoSource,
        });
      rows.push({ key: `${base}.read-only`, value: repo.readOnly, source: repoSource });
      if (repo.branchedFrom) {
        const as = repo.branchedFrom.as ? ` as ${repo.branchedFrom.as}` : "";
        rows.push({
          key: `${base}.branched-from`,
          value: `${repo.branchedFrom.bookmark}${as}`,
          source: repoSource,
        });
      }
    }
  }
  const env = config.env;
  if (env.org) rows.push({ key: "MESA_ORG", value: env.org, source: "env" });
  if (env.apiKey) rows.push({ key: "MESA_API_KEY", value: REDACTED, source: "env" });
  if (env.orgs.length > 0)
    rows.push({
      key: "MESA_ORGS",
      value: env.orgs.map((o) => `${o.org}:${REDACTED}`).join(","),
      source: "env",
    });
  if (env.vaultPassphrase) rows.push({ key: "MESA_VAULT_PASSPHRASE", value: REDACTED, source: "env" });
  return rows;
}

const SIZE_KEYS = new Set(SETTINGS.filter((s) => s.kind === "size").map((s) => s.key));

/** Aligned text: `key  value  (source)`, sizes in human units. */
export function formatConfigText(config: Config): string {
  const rows = describeConfig(config);
  const shown = rows.map((r) => ({
    ...r,
    text:
      r.value === null ? "(unset)" : SIZE_KEYS.has(r.key) ? formatSize(r.value as number) : String(r.value),
  }));
  const w1 = Math.max(...shown.map((r) => r.key.length));
  const w2 = Math.max(...shown.map((r) => r.text.length));
  const head = `# config file: ${config.file ?? "(none)"}\n`;
  return (
    head + shown.map((r) => `${r.key.padEnd(w1)}  ${r.text.padEnd(w2)}  (${r.source})`).join("\n") + "\n"
  );
}

export function formatConfigJson(config: Config): string {
  const values: Record<string, { value: ShownValue["value"]; source: Source }> = {};
  for (const r of describeConfig(config)) values[r.key] = { value: r.value, source: r.source };
  return `${JSON.stringify({ file: config.file ?? null, values }, null, 2)}\n`;
}
