import { MesaError } from "../errors.js";
import { nameProblem, validateOrgName, validateRepoName } from "../names.js";

/** Where a key applies: everywhere, one organization, or one repository of it. */
export type SecretScope =
  | { kind: "global" }
  | { kind: "org"; org: string }
  | { kind: "repo"; org: string; repo: string };

/** Storage names as in compat.md §4: `global`, `orgs/O`, `orgs/O/repos/R`. */
export function scopeName(scope: SecretScope): string {
  if (scope.kind === "global") return "global";
  if (scope.kind === "org") return `orgs/${validateOrgName(scope.org)}`;
  return `orgs/${validateOrgName(scope.org)}/repos/${validateRepoName(scope.repo)}`;
}

/** The inverse of scopeName; undefined for anything that is not a valid storage name. */
export function parseScopeName(name: string): SecretScope | undefined {
  if (name === "global") return { kind: "global" };
  const parts = name.split("/");
  if (parts.length === 2 && parts[0] === "orgs" && !nameProblem(parts[1]!))
    return { kind: "org", org: parts[1]! };
  if (
    parts.length === 4 &&
    parts[0] === "orgs" &&
    parts[2] === "repos" &&
    !nameProblem(parts[1]!) &&
    !nameProblem(parts[3]!)
  )
    return { kind: "repo", org: parts[1]!, repo: parts[3]! };
  return undefined;
}

/** The scope named by `--org O --repo R` options. */
export function scopeFromOptions(org?: string, repo?: string): SecretScope {
  if (repo !== undefined && org === undefined)
    throw new MesaError("USAGE", "--repo needs --org: a repository belongs to an organization");
  if (org === undefined) return { kind: "global" };
  validateOrgName(org);
  if (repo === undefined) return { kind: "org", org };
  validateRepoName(repo);
  return { kind: "repo", org, repo };
}

/** The scopes tried for org O and repo R, most specific first (SPEC §6). */
export function lookupOrder(org: string, repo?: string): SecretScope[] {
  const order: SecretScope[] = [];
  if (repo !== undefined) order.push({ kind: "repo", org, repo });
  order.push({ kind: "org", org }, { kind: "global" });
  return order;
}
