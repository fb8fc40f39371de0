/**
 * Adds or removes one repo entry of config.toml in place. No maintained TOML library on npm
 * edits a document while keeping its comments, order and inline tables (smol-toml and
 * @iarna/toml re-serialise everything), so this is a careful line edit of that one entry:
 * every other byte of the file stays as it was. The result is parsed again and must equal the
 * old document with exactly that change; anything the line edit cannot handle safely (an
 * inline `repos = { … }` table, a multi-line entry) is refused with the edit to make by hand.
 */
import { parse } from "smol-toml";
import { MesaError } from "../errors.js";

type Table = Record<string, unknown>;

const BARE = /^[A-Za-z0-9_-]+$/;
const keyText = (k: string) => (BARE.test(k) ? k : JSON.stringify(k));

/** The dotted key of a header line (`[a."b c".d]` → ["a","b c","d"]), or undefined. */
function headerKey(line: string): string[] | undefined {
  const m = /^\s*\[(?!\[)(.*)\]\s*(#.*)?$/.exec(line);
  if (!m) return undefined;
  const parts: string[] = [];
  const re = /\s*(?:"((?:[^"\\]|\\.)*)"|'([^']*)'|([A-Za-z0-9_-]+))\s*(\.|$)/y;
  let rest = m[1];
  while (rest.length > 0) {
    re.lastIndex = 0;
    const p = re.exec(rest);
    if (!p) return undefined;
    parts.push(p[1] !== undefined ? JSON.parse(`"${p[1]}"`) : (p[2] ?? p[3]));
    rest = rest.slice(p[0].length);
  }
  return parts;
}

const same = (a: string[] | undefined, b: string[]) =>
  !!a && a.length === b.length && a.every((x, i) => x === b[i]);

function reposOf(doc: Table, org: string): Table {
  const o = (doc.organizations as Table | undefined)?.[org] as Table | undefined;
  return (o?.repos as Table | undefined) ?? {};
}

function refuse(file: string, what: string): MesaError {
  return new MesaError("CONFIG_INVALID", `cannot edit ${file} safely: ${what}`, {
    hint: "make the change by hand; nothing was written",
  });
}

/** Checks that `after` parses to `before` with only repo `repo` of `org` added or removed. */
function verify(file: string, before: string, after: string, org: string, repo: string, open: boolean): void {
  const want = parse(before) as Table;
  const child = (t: Table, k: string): Table => {
    if (!t[k]) t[k] = {};
    return t[k] as Table;
  };
  const o = child(child(want, "organizations"), org);
  const repos = child(o, "repos");
  if (open) repos[repo] = {};
  else delete repos[repo];
  let got: Table;
  try {
    got = parse(after) as Table;
  } catch {
    throw refuse(file, `its [organizations.${org}] tables are written in a form this edit does not handle`);
  }
  // An org whose last repo was removed may keep an empty repos table; compare without it.
  const norm = (d: Table) => JSON.stringify(d, (_k, v) => v);
  if (!open && Object.keys(reposOf(got, org)).length === 0)
    delete ((got.organizations as Table)[org] as Table).repos;
  if (!open && Object.keys(repos).length === 0) delete o.repos;
  if (norm(got) !== norm(want))
    throw refuse(file, `${org}/${repo} is written in a form this edit does not handle`);
}

/** config.toml's text with `[organizations.<org>.repos.<repo>]` added (appended at the end). */
export function addRepoEntry(file: string, text: string, org: string, repo: string): string {
  const header = `[organizations.${keyText(org)}.repos.${keyText(repo)}]`;
  const sep = text === "" || text.endsWith("\n\n") ? "" : text.endsWith("\n") ? "\n" : "\n\n";
  const after = `${text}${sep}${header}\n`;
  verify(file, text, after, org, repo, true);
  return after;
}

/**
 * config.toml's text without repo's entry: its `[organizations.O.repos.R]` table with the comment
 * lines right above it (up to the comments that introduce the next table), or its one-line
 * `R = { … }` / `repos.R = { … }`.
 */
export function removeRepoEntry(file: string, text: string, org: string, repo: string): string {
  const lines = text.split("\n");
  const target = ["organizations", org, "repos", repo];
  let current: string[] = [];
  let start = -1;
  let end = -1;
  for (let i = 0; i < lines.length; i++) {
    const h = headerKey(lines[i]);
    if (h) {
      if (start >= 0 && end < 0) {
        end = i;
        // Comments and blank lines right above the next header belong to it.
        while (end - 1 > start && /^\s*(#.*)?$/.test(lines[end - 1])) end--;
        break;
      }
      current = h;
      if (same(h, target)) start = i;
      continue;
    }
    if (start >= 0) continue;
    const k = keyText(repo).replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
    const inRepos =
      same(current, ["organizations", org, "repos"]) && new RegExp(`^\\s*${k}\\s*=`).test(lines[i]);
    const inOrg =
      same(current, ["organizations", org]) && new RegExp(`^\\s*repos\\s*\\.\\s*${k}\\s*=`).test(lines[i]);
    if (inRepos || inOrg) {
      const after = [...lines.slice(0, i), ...lines.slice(i + 1)].join("\n");
      verify(file, text, after, org, repo, false);
      return after;
    }
  }
  if (start < 0) throw refuse(file, `no entry of its own for ${org}/${repo} was found`);
  // The last table runs to the end of the file, whose final newline stays.
  if (end < 0) end = lines[lines.length - 1] === "" ? lines.length - 1 : lines.length;
  // The comment lines right above the header introduce this entry: they go with it.
  while (start > 0 && /^\s*#/.test(lines[start - 1])) start--;
  // Keep one blank line between what was before and after the removed table.
  const before = lines.slice(0, start);
  const rest = lines.slice(end);
  while (before.length > 0 && before[before.length - 1].trim() === "" && (rest[0] ?? "").trim() === "")
    before.pop();
  const after = [...before, ...rest].join("\n");
  verify(file, text, after, org, repo, false);
  return after;
}
