/**
 * Preflight and health checks for `mesa doctor`: each check says what is wrong and the
 * command that fixes it. Nothing here touches the mount point synchronously.
 */
import { constants } from "node:fs";
import { access, readFile, stat } from "node:fs/promises";
import { delimiter, join, resolve } from "node:path";
import { isPrivateKey } from "../auth/keys.js";
import { looksLikeJwt, mintFromApiKey, mintFromPrivateKey } from "../auth/tokens.js";
import { configuredOrgs } from "../config/load.js";
import type { Config } from "../config/types.js";
import { fuseBindingProblem, fuseVersion } from "../fuse/adapter.js";
import { bindingPath } from "../fuse/native.js";
import { openSecretStore, resolveCredential } from "../secrets/index.js";
import { runningDaemon } from "./liveness.js";
import { checkMountPoint } from "./mount-point.js";
import { fuseMountAt, probeMount } from "./mounts.js";

export interface Check {
  name: string;
  ok: boolean;
  /** "warn" checks do not fail the run (e.g. nothing configured yet). */
  level?: "warn";
  detail: string;
  fix?: string;
}

export async function onPath(cmd: string): Promise<string | undefined> {
  for (const dir of (process.env.PATH ?? "/usr/bin:/bin").split(delimiter)) {
    const p = join(dir, cmd);
    try {
      await access(p, constants.X_OK);
      return p;
    } catch {
      // not here
    }
  }
  return undefined;
}

export async function checkFuseDevice(): Promise<Check> {
  const name = "/dev/fuse";
  try {
    const s = await stat("/dev/fuse");
    if (!s.isCharacterDevice())
      return {
        name,
        ok: false,
        detail: "/dev/fuse is not a character device",
        fix: "run `modprobe fuse` as root (in a container: --device /dev/fuse --cap-add SYS_ADMIN)",
      };
    await access("/dev/fuse", constants.R_OK | constants.W_OK);
    return { name, ok: true, detail: "present and accessible" };
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === "ENOENT")
      return {
        name,
        ok: false,
        detail: "/dev/fuse is missing",
        fix: "run `modprobe fuse` as root (in a container: --device /dev/fuse --cap-add SYS_ADMIN)",
      };
    return {
      name,
      ok: false,
      detail: `/dev/fuse is not accessible (${code})`,
      fix: "run `chmod 666 /dev/fuse` as root, or add yourself to the fuse group",
    };
  }
}

export async function runChecks(config: Config | undefined, configError?: string): Promise<Check[]> {
  const checks: Check[] = [await checkFuseDevice()];

  const fusermount = await onPath("fusermount3");
  checks.push(
    fusermount
      ? { name: "fusermount3", ok: true, detail: fusermount }
      : {
          name: "fusermount3",
          ok: false,
          detail: "fusermount3 is not installed (it mounts and unmounts for mesa)",
          fix: "apt-get install fuse3",
        },
  );
  // The binding links libfuse3: loading it checks the library too.
  const problem = fuseBindingProblem();
  checks.push(
    problem
      ? {
          name: "FUSE binding",
          ok: false,
          detail: problem,
          fix: /libfuse3/.test(problem)
            ? "apt-get install fuse3 (it brings libfuse3)"
            : "reinstall mesa (install.sh), or run `npm run build` in a checkout",
        }
      : { name: "FUSE binding", ok: true, detail: `libfuse ${fuseVersion()} (${bindingPath()})` },
  );

  if (process.getuid?.() !== 0) {
    let conf = "";
    try {
      conf = await readFile("/etc/fuse.conf", "utf8");
    } catch {
      // missing file = option missing
    }
    const allowed = conf.split("\n").some((l) => l.trim() === "user_allow_other");
    checks.push(
      allowed
        ? { name: "user_allow_other", ok: true, detail: "set in /etc/fuse.conf" }
        : {
            name: "user_allow_other",
            ok: false,
            detail: "/etc/fuse.conf lacks user_allow_other (mesa mounts with allow_other)",
            fix: "run `sed -i 's/^#user_allow_other/user_allow_other/' /etc/fuse.conf` as root (or `echo user_allow_other >> /etc/fuse.conf`)",
          },
    );
  } else checks.push({ name: "user_allow_other", ok: true, detail: "not needed as root" });

  if (!config) {
    checks.push({
      name: "config",
      ok: false,
      detail: configError ?? "the configuration could not be loaded",
      fix: "fix the listed keys in config.toml or the environment",
    });
    return checks;
  }
  checks.push({
    name: "config",
    ok: true,
    detail: config.file ?? "no config file (defaults and environment)",
  });

  const mountPoint = resolve(config.mountPoint);
  const daemon = await runningDaemon(config);
  const mounted = await fuseMountAt(mountPoint);
  if (daemon)
    checks.push({ name: "daemon", ok: true, detail: `running (pid ${daemon.pid}) at ${mountPoint}` });
  else if (mounted || (await probeMount(mountPoint)) === "enotconn")
    checks.push({
      name: "stale mount",
      ok: false,
      detail: `${mountPoint} is mounted but no daemon serves it`,
      fix: "run `mesa unmount` (or `fusermount -uz " + mountPoint + "`)",
    });
  else {
    checks.push({ name: "daemon", ok: true, detail: "not running (start it with `mesa mount -d`)" });
    // user_allow_other has its own check above.
    const problem = await checkMountPoint(mountPoint, { create: false, allowOther: false });
    checks.push(
      problem
        ? { name: "mount point", ok: false, detail: problem.message, fix: problem.hint }
        : { name: "mount point", ok: true, detail: `${mountPoint} can be mounted on` },
    );
  }

  checks.push(await checkServer(config.serviceUrl));
  checks.push(...(await checkTokens(config)));
  return checks;
}

async function checkServer(url: string): Promise<Check> {
  const name = "server";
  try {
    const res = await fetch(`${url.replace(/\/+$/, "")}/v1/whoami`, { signal: AbortSignal.timeout(5000) });
    await res.body?.cancel();
    return { name, ok: true, detail: `${url} answers (HTTP ${res.status})` };
  } catch (err) {
    return {
      name,
      ok: false,
      detail: `${url} is unreachable (${(err as Error).cause ? ((err as Error).cause as Error).message : (err as Error).message})`,
      fix: "start a local server with `mesa quickstart` or `mesa serve`, or set MESA_SERVICE_URL to your service",
    };
  }
}

function jwtExp(token: string): number | undefined {
  try {
    return (JSON.parse(Buffer.from(token.split(".")[1], "base64url").toString("utf8")) as { exp?: number })
      .exp;
  } catch {
    return undefined;
  }
}

async function checkTokens(config: Config): Promise<Check[]> {
  const orgs = configuredOrgs(config);
  if (orgs.length === 0)
    return [
      {
        name: "credentials",
        ok: false,
        level: "warn",
        detail: "no organization is configured",
        fix: "set MESA_ORG and MESA_API_KEY, or MESA_ORGS=org:key",
      },
    ];
  const out: Check[] = [];
  let store: Awaited<ReturnType<typeof openSecretStore>>;
  try {
    store = await openSecretStore(config, { nonInteractive: true });
  } catch (err) {
    return [
      {
        name: "secret store",
        ok: false,
        detail: (err as Error).message,
        fix: "check [secrets] backend and MESA_VAULT_PASSPHRASE",
      },
    ];
  }
  for (const org of orgs) {
    const name = `token for ${org}`;
    try {
      const key = await resolveCredential(config, store, org);
      let token = key;
      if (looksLikeJwt(key)) {
        const exp = jwtExp(key);
        if (exp !== undefined && exp * 1000 <= Date.now()) {
          out.push({
            name,
            ok: false,
            detail: `the access token expired at ${new Date(exp * 1000).toISOString()}`,
            fix: `mint a new one with \`mesa token create --org ${org}\` or store an API key with \`mesa auth set-key --org ${org}\``,
          });
          continue;
        }
      } else if (isPrivateKey(key))
        token = await mintFromPrivateKey(key, { scopes: ["read"], repos: null, ttlSeconds: 60 });
      else token = await mintFromApiKey(key, { scopes: ["read"], repos: null, ttlSeconds: 60 });
      const res = await fetch(`${config.serviceUrl.replace(/\/+$/, "")}/v1/whoami`, {
        headers: { authorization: `Bearer ${token}` },
        signal: AbortSignal.timeout(5000),
      });
      await res.body?.cancel();
      if (res.ok) out.push({ name, ok: true, detail: "accepted by the server" });
      else if (res.status === 404)
        out.push({
          name,
          ok: true,
          level: "warn",
          detail: "the server has no REST API (plain Git); not verified",
        });
      else
        out.push({
          name,
          ok: false,
          detail: `the server rejected it (HTTP ${res.status})`,
          fix: `store a valid key with \`mesa auth set-key --org ${org}\``,
        });
    } catch (err) {
      out.push({
        name,
        ok: false,
        detail: (err as Error).message,
        fix: `store a key with \`mesa auth set-key --org ${org}\``,
      });
    }
  }
  return out;
}
