import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { parse as parseToml, TomlError } from "smol-toml";
import { z } from "zod";
import { nameProblem } from "../names.js";
import { bookmarkProblem, parseRevTable } from "./revs.js";
import { SETTINGS } from "./settings.js";
import { typeOf } from "./size.js";
import type { RepoConfig } from "./types.js";

/** What a config file says, validated; absent keys are absent. */
export interface FileValues {
  settings: Map<string, unknown>;
  organizations: Record<string, { mount?: "all" | "explicit"; repos: Record<string, Partial<RepoConfig>> }>;
}

/**
 * SPEC §5 search order: --config-path, then $XDG_CONFIG_HOME/mesa/config.toml,
 * ~/.config/mesa/config.toml, /etc/mesa/config.toml; first found. An explicit path
 * must exist. `MESA_NO_CONFIG_FILE` skips the search (an explicit path is still read).
 */
export function configCandidates(env: NodeJS.ProcessEnv, home: string): string[] {
  const out: string[] = [];
  if (env.XDG_CONFIG_HOME) out.push(join(env.XDG_CONFIG_HOME, "mesa", "config.toml"));
  out.push(join(home, ".config", "mesa", "config.toml"), "/etc/mesa/config.toml");
  return out;
}

export function findConfigFile(env: NodeJS.ProcessEnv, home: string): string | undefined {
  return configCandidates(env, home).find((p) => existsSync(p));
}

const bookmarkSchema = z.string().superRefine((name, ctx) => {
  const problem = bookmarkProblem(name);
  if (problem) ctx.addIssue({ code: "custom", message: problem });
});

const repoSchema = z
  .strictObject({
    rev: z
      .unknown()
      .transform((value, ctx) => {
        const rev = parseRevTable(value);
        if (typeof rev === "string") {
          ctx.addIssue({ code: "custom", message: rev });
          return z.NEVER;
        }
        return rev;
      })
      .optional(),
    "read-only": z.boolean().optional(),
    "branched-from": z.strictObject({ bookmark: bookmarkSchema, as: bookmarkSchema.optional() }).optional(),
  })
  .superRefine((repo, ctx) => {
    if (repo.rev && repo["branched-from"])
      ctx.addIssue({
        code: "custom",
        path: ["branched-from"],
        message: "rev and branched-from cannot both be set",
      });
    if (repo.rev && "changeId" in repo.rev && repo["read-only"] === false)
      ctx.addIssue({
        code: "custom",
        path: ["read-only"],
        message: "a revision pinned to a change id is always read-only",
      });
  });

const orgSchema = z.strictObject({
  mount: z.enum(["all", "explicit"]).optional(),
  repos: z.record(z.string(), repoSchema).optional(),
});

/** The file schema, derived from the settings table plus [organizations]. */
function fileSchema() {
  const sections = new Map<string, Record<string, z.ZodType>>([["", {}]]);
  for (const s of SETTINGS) {
    const dot = s.key.indexOf(".");
    const [section, key] = dot < 0 ? ["", s.key] : [s.key.slice(0, dot), s.key.slice(dot + 1)];
    if (!sections.has(section)) sections.set(section, {});
    sections.get(section)![key] = s.schema.optional();
  }
  const shape: Record<string, z.ZodType> = { ...sections.get("")! };
  for (const [name, keys] of sections) if (name) shape[name] = z.strictObject(keys).optional();
  shape.organizations = z.record(z.string(), orgSchema).optional();
  return z.strictObject(shape);
}

/** TOML-style dotted key, quoting parts that are not bare keys (org names may contain dots). */
export function dottedKey(path: ReadonlyArray<PropertyKey>): string {
  return path
    .map((p) => (typeof p === "string" && /^[A-Za-z0-9_-]+$/.test(p) ? p : JSON.stringify(String(p))))
    .join(".");
}

function issueProblems(issue: z.core.$ZodIssue): Array<{ key: string; reason: string }> {
  if (issue.code === "unrecognized_keys")
    return issue.keys.map((k) => ({ key: dottedKey([...issue.path, k]), reason: "unknown key" }));
  let reason = issue.message;
  if (issue.code === "invalid_type") reason = `expected ${issue.expected}, got ${typeOf(issue.input)}`;
  else if (issue.code === "invalid_value")
    reason = `must be one of ${issue.values.map((v) => JSON.stringify(v)).join(", ")}`;
  return [{ key: dottedKey(issue.path), reason }];
}

function nameProblems(doc: unknown): Array<{ key: string; reason: string }> {
  const out: Array<{ key: string; reason: string }> = [];
  const table = (v: unknown) =>
    v !== null && typeof v === "object" && !Array.isArray(v) ? (v as Record<string, unknown>) : {};
  for (const [org, o] of Object.entries(table(table(doc).organizations))) {
    const op = nameProblem(org);
    if (op)
      out.push({ key: dottedKey(["organizations", org]), reason: `invalid organization name: it ${op}` });
    for (const repo of Object.keys(table(table(o).repos))) {
      const rp = nameProblem(repo);
      if (rp)
        out.push({
          key: dottedKey(["organizations", org, "repos", repo]),
          reason: `invalid repository name: it ${rp}`,
        });
    }
  }
  return out;
}

/** Reads and validates one config file; every problem is appended to `problems`. */
export function readConfigFile(path: string, problems: string[]): FileValues | undefined {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    problems.push(`${path}: cannot read the file (${code === "ENOENT" ? "it does not exist" : code})`);
    return undefined;
  }
  let doc: unknown;
  try {
    doc = parseToml(text);
  } catch (err) {
    if (err instanceof TomlError) {
      const reason = err.message.split("\n")[0]!.replace(/^Invalid TOML document: /, "");
      problems.push(`${path}: line ${err.line}, column ${err.column}: ${reason}`);
      return undefined;
    }
    throw err;
  }
  const before = problems.length;
  // Names are checked on the raw document: zod skips refinements once a child has failed.
  for (const p of nameProblems(doc)) problems.push(`${path}: ${p.key}: ${p.reason}`);
  const result = fileSchema().safeParse(doc, { reportInput: true });
  if (!result.success || problems.length > before) {
    for (const issue of result.error?.issues ?? [])
      for (const p of issueProblems(issue)) problems.push(`${path}: ${p.key || "(document)"}: ${p.reason}`);
    return undefined;
  }
  const data = result.data as Record<string, unknown>;
  const settings = new Map<string, unknown>();
  for (const s of SETTINGS) {
    let node: unknown = data;
    for (const part of s.key.split(".")) node = (node as Record<string, unknown> | undefined)?.[part];
    if (node !== undefined) settings.set(s.key, node);
  }
  const organizations: FileValues["organizations"] = {};
  const orgs = (data.organizations ?? {}) as Record<string, z.infer<typeof orgSchema>>;
  for (const [org, o] of Object.entries(orgs)) {
    const repos: Record<string, Partial<RepoConfig>> = {};
    for (const [repo, r] of Object.entries(o.repos ?? {})) {
      const rc: Partial<RepoConfig> = {};
      if (r.rev) rc.rev = r.rev;
      if (r["read-only"] !== undefined) rc.readOnly = r["read-only"];
      if (r["branched-from"])
        rc.branchedFrom = {
          bookmark: r["branched-from"].bookmark,
          ...(r["branched-from"].as ? { as: r["branched-from"].as } : {}),
        };
      repos[repo] = rc;
    }
    organizations[org] = { mount: o.mount, repos };
  }
  return { settings, organizations };
}
