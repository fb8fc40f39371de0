/**
 * One source of credentials for the commands that act on a repo: the environment
 * (MESA_ORGS, MESA_API_KEY), else the running daemon (which already holds a token for each
 * org it mounts), else the secret store, which is opened only when no daemon runs.
 */
import type { Config } from "../config/types.js";
import { controlRequest } from "../daemon/control.js";
import { runningDaemon } from "../daemon/liveness.js";
import { isMesaError } from "../errors.js";
import { applyEnvOrgs, envCredential, openSecretStore, resolveCredential } from "../secrets/index.js";

/** A credential and the server it is for. */
export interface Connection {
  credential: string;
  serviceUrl: string;
}

/** The running daemon's token for `org` and its server, or undefined when no daemon runs or it has none. */
export async function daemonConnection(config: Config, org: string): Promise<Connection | undefined> {
  const daemon = await runningDaemon(config);
  if (!daemon) return undefined;
  try {
    const r = (await controlRequest(daemon.socket, { cmd: "credential", org }, 30_000)) as {
      credential?: string;
      serviceUrl?: string;
    };
    if (typeof r?.credential !== "string") return undefined;
    // The daemon's server, unless this shell names one (then the daemon's token is not for it).
    const serviceUrl =
      config.sources["service-url"] === "default" ? (r.serviceUrl ?? config.serviceUrl) : config.serviceUrl;
    if (serviceUrl !== (r.serviceUrl ?? serviceUrl)) return undefined;
    return { credential: r.credential, serviceUrl };
  } catch (err) {
    // A daemon that holds no key for this org (or an older one): the store may have it.
    if (isMesaError(err, "DAEMON")) return undefined;
    throw err;
  }
}

export async function connectionFor(
  config: Config,
  org: string,
  opts: { nonInteractive: boolean; repo?: string },
): Promise<Connection> {
  const direct = envCredential(config, org);
  if (direct !== undefined) return { credential: direct, serviceUrl: config.serviceUrl };
  const fromDaemon = await daemonConnection(config, org);
  if (fromDaemon !== undefined) return fromDaemon;
  const store = await openSecretStore(config, { nonInteractive: opts.nonInteractive });
  await applyEnvOrgs(config, store);
  return {
    credential: await resolveCredential(config, store, org, opts.repo),
    serviceUrl: config.serviceUrl,
  };
}

export async function credentialFor(
  config: Config,
  org: string,
  opts: { nonInteractive: boolean; repo?: string },
): Promise<string> {
  return (await connectionFor(config, org, opts)).credential;
}
