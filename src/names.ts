import { MesaError } from "./errors.js";

/**
 * Organization and repository names. They become path components on disk (server data
 * dir, mount tree) and in URLs, so they are restricted to a safe alphabet: letters,
 * digits, `-`, `_`, `.`; no leading `.` or `-`; 1–100 characters; never `.`/`..`.
 */
const NAME_RE = /^[A-Za-z0-9_][A-Za-z0-9._-]{0,99}$/;

export function nameProblem(name: string): string | undefined {
  if (name.length === 0) return "is empty";
  if (name.length > 100) return "is longer than 100 characters";
  if (name.includes("\0")) return "contains a NUL byte";
  if (name.includes("/") || name.includes("\\")) return "contains a path separator";
  if (name === "." || name === "..") return "is a relative path component";
  if (!NAME_RE.test(name))
    return "may only contain letters, digits, '-', '_' and '.', and must not start with '.' or '-'";
  if (name.toLowerCase().endsWith(".git")) return "must not end with '.git'";
  return undefined;
}

export function validateName(kind: "organization" | "repository", name: string): string {
  const problem = nameProblem(name);
  if (problem)
    throw new MesaError("INVALID_NAME", `invalid ${kind} name ${JSON.stringify(name)}: it ${problem}`);
  return name;
}

export const validateOrgName = (name: string): string => validateName("organization", name);
export const validateRepoName = (name: string): string => validateName("repository", name);

/** Parses `org/repo` (as used by token repo lists and MESA_REPO_REVS). */
export function parseRepoSlug(slug: string): { org: string; repo: string } {
  const parts = slug.split("/");
  if (parts.length !== 2)
    throw new MesaError("INVALID_NAME", `invalid repository ${JSON.stringify(slug)}: expected org/repo`);
  return { org: validateOrgName(parts[0]!), repo: validateRepoName(parts[1]!) };
}
