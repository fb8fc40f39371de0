/**
 * `mesa quickstart [--stop]`: a local server, a sample repo and a mount in one command.
 * Idempotent: a re-run reuses the running server, the imported sample and the mount.
 */
import type { Command } from "commander";
import { loadConfig } from "../config/load.js";
import { cleanStaleDaemon, daemonLiveness } from "../daemon/liveness.js";
import {
  createSampleRepo,
  importSample,
  QUICKSTART_LISTEN,
  QUICKSTART_ORG,
  QUICKSTART_REPO,
  quickstartPaths,
  startServer,
  stopServer,
} from "../daemon/quickstart.js";
import { chooseQuickstartBackend } from "../daemon/quickstart-secrets.js";
import { daemonize } from "../daemon/spawn.js";
import { stopDaemon } from "../daemon/stop.js";
import { MesaError } from "../errors.js";
import { openSecretStore } from "../secrets/index.js";
import { globalOptions } from "./context.js";

export function register(program: Command): void {
  program
    .command("quickstart")
    .description("start a local server with a sample repo and mount it (run again any time)")
    .option("--stop", "unmount and stop the local server quickstart started")
    .action(async (opts: { stop?: boolean }, cmd: Command) => {
      const g = globalOptions(cmd);
      const paths = quickstartPaths();
      const entry = process.argv[1];
      if (!entry) throw new MesaError("INTERNAL", "cannot find the mesa executable");
      // The quickstart org and server unless the user chose others.
      process.env.MESA_ORG ??= QUICKSTART_ORG;
      process.env.MESA_SERVICE_URL ??= `http://${QUICKSTART_LISTEN}`;
      const config = loadConfig({ configPath: g.configPath });

      if (opts.stop) {
        process.stdout.write(`${await stopDaemon(config)}\n`);
        process.stdout.write(
          (await stopServer(paths))
            ? "stopped the local mesa serve\n"
            : "the local mesa serve was not running\n",
        );
        return;
      }

      await createSampleRepo(paths.sampleDir);
      // Serve where the configured service URL points when that is this machine.
      const url = new URL(config.serviceUrl);
      if (url.hostname !== "127.0.0.1" && url.hostname !== "localhost")
        throw new MesaError(
          "USAGE",
          `quickstart runs a local server, but the service URL is ${config.serviceUrl}`,
          {
            hint: "unset MESA_SERVICE_URL (or point it at http://127.0.0.1:<port>)",
          },
        );
      const server = await startServer(entry, paths, `127.0.0.1:${url.port || "80"}`);
      process.stdout.write(
        `mesa serve is running (pid ${server.pid}, ${config.serviceUrl}, log ${paths.logFile})\n`,
      );
      // The backend is chosen here, once, and recorded: later commands do not guess (and warn) again.
      const choice = await chooseQuickstartBackend(config, {
        nonInteractive: g.nonInteractive,
        home: paths.home,
        env: process.env,
      });
      if (choice.recordedIn)
        process.stdout.write(`secrets backend "${choice.backend}" recorded in ${choice.recordedIn}\n`);
      if (server.adminKey) {
        const store = await openSecretStore(config, { nonInteractive: g.nonInteractive });
        await store.set({ kind: "org", org: QUICKSTART_ORG }, server.adminKey);
        process.stdout.write(
          `stored the admin key for '${QUICKSTART_ORG}' in ${store.location} (${store.backend})\n`,
        );
      }
      if (await importSample(paths)) process.stdout.write(`imported ${QUICKSTART_ORG}/${QUICKSTART_REPO}\n`);

      let mountPoint = config.mountPoint;
      const live = await daemonLiveness(config);
      if (live.state === "stale") await cleanStaleDaemon(config);
      if (live.state !== "running") {
        const ready = await daemonize({
          entry,
          globalArgs: g.configPath ? ["--config-path", g.configPath] : [],
          logFile: config.daemon.logFile,
          timeoutMs: 60_000,
        });
        mountPoint = ready.mountPoint || mountPoint;
      } else process.stdout.write(`mesa is already mounted (pid ${live.pid})\n`);
      process.stdout.write(`\nls ${mountPoint}/${QUICKSTART_ORG}/${QUICKSTART_REPO}\n`);
    });
}
