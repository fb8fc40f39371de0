/**
 * What a second `mesa mount` asks for that the running daemon does not do: another mount
 * point, another revision of a repo, an org or a repo it does not mount. Each difference says
 * how to apply it.
 */
import { resolve } from "node:path";
import type { Config, RevSpec } from "../config/types.js";
import type { DaemonStatus } from "./daemon.js";

function revLabel(rev: RevSpec): string {
  return "bookmark" in rev ? `bookmark:${rev.bookmark}` : `change-id:${rev.changeId}`;
}

export function settingsDiff(config: Config, s: DaemonStatus): string[] {
  const out: string[] = [];
  const restart = "run `mesa unmount`, then `mesa mount -d` again";
  // Only what this call asks for: a default is not a request (a new shell may lack the variable).
  const asked = (key: string) => config.sources[key] !== undefined && config.sources[key] !== "default";
  if (asked("mount-point") && resolve(config.mountPoint) !== s.mountPoint)
    out.push(`it is mounted at ${s.mountPoint}, not ${resolve(config.mountPoint)}: ${restart}`);
  if (asked("service-url") && config.serviceUrl !== s.serviceUrl)
    out.push(`it serves ${s.serviceUrl}, not ${config.serviceUrl}: ${restart}`);
  const orgs = new Set(s.orgs ?? s.repos.map((r) => r.org));
  for (const [org, o] of Object.entries(config.organizations)) {
    if (!orgs.has(org)) {
      out.push(`organization ${org} is not mounted: ${restart}`);
      continue;
    }
    for (const [repo, r] of Object.entries(o.repos)) {
      const mounted = s.repos.find((m) => m.org === org && m.repo === repo);
      // Tried with these settings and failed (a partial mount): nothing differs.
      if (!mounted && (s.failed ?? []).some((f) => f.org === org && f.repo === repo)) continue;
      if (!mounted) {
        if (o.mount === "explicit" || r.rev)
          out.push(`${org}/${repo} is not mounted: run \`mesa repo open ${repo} --org ${org}\``);
        continue;
      }
      if (r.rev && revLabel(r.rev) !== mounted.revision)
        out.push(`${org}/${repo} is mounted at ${mounted.revision}, not ${revLabel(r.rev)}: ${restart}`);
    }
  }
  return out;
}
