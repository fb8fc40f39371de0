/**
 * `mesa mount [-d] [--foreground]` and `mesa unmount` (SPEC §4, §7).
 */
import type { Command } from "commander";
import { dropSecretsFromEnv } from "../config/env.js";
import { loadConfig } from "../config/load.js";
import type { Config } from "../config/types.js";
import { runDaemon } from "../daemon/daemon.js";
import { cleanStaleDaemon, daemonLiveness } from "../daemon/liveness.js";
import { daemonize, READY_FD_ENV } from "../daemon/spawn.js";
import { stopDaemon } from "../daemon/stop.js";
import { MesaError } from "../errors.js";
import { applyEnvOrgs, openSecretStore } from "../secrets/index.js";
import { type GlobalOptions, globalOptions } from "./context.js";

/** How long `mount -d` waits for the daemon to report ready. */
const READY_TIMEOUT_MS = 60_000;

function globalArgs(g: GlobalOptions): string[] {
  const args: string[] = [];
  if (g.configPath) args.push("--config-path", g.configPath);
  if (g.nonInteractive) args.push("--non-interactive");
  if (g.logLevel) args.push("--log-level", g.logLevel);
  return args;
}

export async function loadDaemonConfig(g: GlobalOptions): Promise<Config> {
  const config = loadConfig({ configPath: g.configPath });
  // MESA_ORGS=org:key stores its keys before anything else runs (compat.md §2).
  if (config.env.orgs.length > 0)
    await applyEnvOrgs(config, await openSecretStore(config, { nonInteractive: g.nonInteractive }));
  return config;
}

export function register(program: Command): void {
  program
    .command("mount")
    .description("mount the configured repositories (foreground unless -d)")
    .option("-d, --daemonize", "run in the background; return once the mount is ready")
    .option("--foreground", "stay in the foreground (the default)")
    .action(async (opts: { daemonize?: boolean; foreground?: boolean }, cmd: Command) => {
      const g = globalOptions(cmd);
      const config = await loadDaemonConfig(g);
      const live = await daemonLiveness(config);
      if (live.state === "running") {
        process.stdout.write(
          `mesa is already running (pid ${live.pid}), mounted at ${live.status.mountPoint}\n`,
        );
        return;
      }
      if (live.state === "unresponsive")
        throw new MesaError("DAEMON", `mesa (pid ${live.pid}) runs but does not answer`, {
          hint: "run `mesa unmount` to stop it, then mount again",
        });
      // A daemon that is gone (killed, a zombie) leaves a pid file and a dead mount: clear both.
      if (live.state === "stale") await cleanStaleDaemon(config);
      const readyFd = process.env[READY_FD_ENV];
      if (opts.daemonize && !opts.foreground) {
        const entry = process.argv[1];
        if (!entry) throw new MesaError("INTERNAL", "cannot find the mesa executable to start the daemon");
        const ready = await daemonize({
          entry,
          globalArgs: globalArgs(g),
          logFile: config.daemon.logFile,
          timeoutMs: READY_TIMEOUT_MS,
        });
        process.stdout.write(`${ready.mountPoint || config.mountPoint}\n`);
        return;
      }
      if (readyFd !== undefined) delete process.env[READY_FD_ENV];
      // The config holds the credentials now; nothing the daemon starts may inherit them.
      dropSecretsFromEnv();
      const code = await runDaemon(config, {
        logLevel: g.logLevel,
        readyFd: readyFd === undefined ? undefined : Number(readyFd),
      });
      if (code !== 0) throw new MesaError("DAEMON", "the mount failed", { details: { code } });
    });

  program
    .command("unmount")
    .description("stop the daemon and unmount; also cleans a stale mount")
    .action(async (_opts: unknown, cmd: Command) => {
      const g = globalOptions(cmd);
      const config = loadConfig({ configPath: g.configPath });
      const result = await stopDaemon(config);
      process.stdout.write(`${result}\n`);
    });
}
