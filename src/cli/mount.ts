/**
 * `mesa mount [-d] [--foreground]` and `mesa unmount` (SPEC §4, §7).
 */
import type { Command } from "commander";
import { loadConfig } from "../config/load.js";
import type { Config } from "../config/types.js";
import { runDaemon } from "../daemon/daemon.js";
import { runtimePaths } from "../daemon/paths.js";
import { livePid } from "../daemon/pidfile.js";
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
      const paths = runtimePaths(config);
      const running = await livePid(paths.pidFile);
      if (running !== undefined) {
        process.stdout.write(`mesa is already running (pid ${running}), mounted at ${config.mountPoint}\n`);
        return;
      }
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
