/**
 * `mesa mount [-d] [--foreground] [--allow-partial]` and `mesa unmount` (SPEC §4, §7).
 */
import { closeSync, readFileSync } from "node:fs";
import type { Command } from "commander";
import { dropSecretsFromEnv } from "../config/env.js";
import { configuredOrgs, loadConfig } from "../config/load.js";
import type { Config } from "../config/types.js";
import type { DaemonStatus } from "../daemon/daemon.js";
import { cleanStaleDaemon, daemonLiveness } from "../daemon/liveness.js";
import { settingsDiff } from "../daemon/settings-diff.js";
import { daemonize, READY_FD_ENV, SECRET_FD_ENV } from "../daemon/spawn.js";
import { stopDaemon } from "../daemon/stop.js";
import { MesaError } from "../errors.js";
import { applyEnvOrgs, envCredential, openSecretStore, vaultPath } from "../secrets/index.js";
import { promptedPassphrase } from "../secrets/vault.js";
import { type GlobalOptions, globalOptions } from "./context.js";
import { COMMON_ENV, withHelp } from "./help.js";
import { progressLine } from "./progress.js";

/** How long `mount -d` waits for the daemon to report ready. */
const READY_TIMEOUT_MS = 60_000;

function globalArgs(g: GlobalOptions): string[] {
  const args: string[] = [];
  if (g.configPath) args.push("--config-path", g.configPath);
  if (g.nonInteractive) args.push("--non-interactive");
  if (g.logLevel) args.push("--log-level", g.logLevel);
  return args;
}

/**
 * MESA_ORGS=org:key stores its keys before anything else runs (compat.md §2). Returns the
 * vault passphrase the daemon needs when it must read keys from a vault whose passphrase was
 * typed here (a detached daemon has no terminal to ask on).
 */
async function prepareSecrets(config: Config, g: GlobalOptions): Promise<string | undefined> {
  const needStore = configuredOrgs(config).some((org) => envCredential(config, org) === undefined);
  if (config.env.orgs.length === 0 && !needStore) return undefined;
  const store = await openSecretStore(config, { nonInteractive: g.nonInteractive });
  await applyEnvOrgs(config, store);
  if (!needStore || store.backend !== "encrypted-file" || config.env.vaultPassphrase !== undefined)
    return undefined;
  await store.list(); // asks for the passphrase now, on this terminal, if nothing did yet
  return promptedPassphrase(vaultPath(config));
}

/** In the daemon started by `mount -d`: the passphrase its parent handed over, if any. */
function inheritedSecret(config: Config): void {
  const fd = process.env[SECRET_FD_ENV];
  if (fd === undefined) return;
  delete process.env[SECRET_FD_ENV];
  const pass = readFileSync(Number(fd), "utf8");
  closeSync(Number(fd));
  if (pass.length > 0) config.env.vaultPassphrase = pass;
}

function alreadyRunning(config: Config, pid: number, s: DaemonStatus): void {
  const diff = settingsDiff(config, s);
  if (diff.length > 0)
    throw new MesaError(
      "DAEMON",
      `mesa is already running (pid ${pid}) with other settings; nothing was changed:\n  ${diff.join("\n  ")}`,
    );
  process.stdout.write(`mesa is already running (pid ${pid}), mounted at ${s.mountPoint}\n`);
}

export function register(program: Command): void {
  withHelp(
    program
      .command("mount")
      .description("mount the configured repositories (foreground unless -d)")
      .option("-d, --daemonize", "run in the background; return once the mount is ready")
      .option("--foreground", "stay in the foreground (the default)")
      .option("--allow-partial", "mount the repos that load even when others fail (default: fail)")
      .option("-q, --quiet", "no progress lines"),
    {
      examples: [
        "MESA_ORGS=acme:$MESA_KEY mesa mount -d -y",
        "MESA_ORG=acme MESA_API_KEY=$KEY mesa mount -d",
        "MESA_REPO_REVS=acme/app=bookmark:feat mesa mount -d --allow-partial",
      ],
      env: {
        ...COMMON_ENV,
        MESA_MOUNT_POINT: "mount root (default ~/.local/share/mesa/mnt)",
        MESA_REPO_REVS: "org/repo=bookmark:NAME or org/repo=change-id:ID, comma-separated",
        MESA_ALLOW_PARTIAL: "1: same as --allow-partial",
        MESA_DAEMON_LOG_FILE: "the daemon's log (JSON lines)",
      },
    },
  ).action(
    async (
      opts: { daemonize?: boolean; foreground?: boolean; allowPartial?: boolean; quiet?: boolean },
      cmd: Command,
    ) => {
      const g = globalOptions(cmd);
      const config = loadConfig({ configPath: g.configPath });
      if (opts.allowPartial) config.daemon.allowPartial = true;
      const readyFd = process.env[READY_FD_ENV];
      if (readyFd !== undefined) {
        // The daemon `mount -d` started: its parent already stored the keys and checked.
        delete process.env[READY_FD_ENV];
        inheritedSecret(config);
      } else {
        const live = await daemonLiveness(config);
        if (live.state === "running") return alreadyRunning(config, live.pid, live.status);
        if (live.state === "unresponsive")
          throw new MesaError("DAEMON", `mesa (pid ${live.pid}) runs but does not answer`, {
            hint: "run `mesa unmount` to stop it, then mount again",
          });
        // A daemon that is gone (killed, a zombie) leaves a pid file and a dead mount: clear both.
        if (live.state === "stale") await cleanStaleDaemon(config);
      }
      if (opts.daemonize && !opts.foreground) {
        const entry = process.argv[1];
        if (!entry) throw new MesaError("INTERNAL", "cannot find the mesa executable to start the daemon");
        const secret = await prepareSecrets(config, g);
        const progress = progressLine({ quiet: opts.quiet === true });
        const ready = await daemonize({
          entry,
          globalArgs: globalArgs(g),
          logFile: config.daemon.logFile,
          timeoutMs: READY_TIMEOUT_MS,
          secret,
          onProgress: progress.update,
          env: config.daemon.allowPartial ? { MESA_ALLOW_PARTIAL: "1" } : undefined,
        }).finally(progress.end);
        for (const f of ready.failed)
          process.stderr.write(
            `mesa: warning: ${f.org}${f.repo ? `/${f.repo}` : ""} was not mounted: ${f.error}\n`,
          );
        process.stderr.write(`mesa: mounted; the log is ${config.daemon.logFile}\n`);
        process.stdout.write(`${ready.mountPoint || config.mountPoint}\n`);
        return;
      }
      if (readyFd === undefined) await prepareSecrets(config, g);
      // The config holds the credentials now; nothing the daemon starts may inherit them.
      dropSecretsFromEnv();
      // Loaded here: the parent of `mount -d` never needs the daemon's modules.
      const { runDaemon } = await import("../daemon/daemon.js");
      const code = await runDaemon(config, {
        logLevel: g.logLevel,
        readyFd: readyFd === undefined ? undefined : Number(readyFd),
      });
      if (code !== 0) throw new MesaError("DAEMON", "the mount failed", { details: { code } });
    },
  );

  withHelp(program.command("unmount").description("stop the daemon and unmount; also cleans a stale mount"), {
    examples: ["mesa unmount"],
    env: { MESA_RUNTIME_DIR: "where the daemon's pid file and socket are" },
  }).action(async (_opts: unknown, cmd: Command) => {
    const g = globalOptions(cmd);
    const config = loadConfig({ configPath: g.configPath });
    const result = await stopDaemon(config);
    process.stdout.write(`${result}\n`);
  });
}
