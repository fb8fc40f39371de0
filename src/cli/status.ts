/**
 * `mesa status [--json]` and `mesa stats [--format json|text] [--json] [--pid N | --pid-file F]`:
 * both ask the running daemon over its control socket.
 */

import { dirname, join } from "node:path";
import type { Command } from "commander";
import { Option } from "commander";
import { loadConfig } from "../config/load.js";
import { formatSize } from "../config/size.js";
import { controlRequest } from "../daemon/control.js";
import type { DaemonStatus } from "../daemon/daemon.js";
import { runningDaemon } from "../daemon/liveness.js";
import { fuseMountAt } from "../daemon/mounts.js";
import { runtimePaths } from "../daemon/paths.js";
import { isAlive, readPid } from "../daemon/pidfile.js";
import { MesaError } from "../errors.js";
import { ExitWith, globalOptions } from "./context.js";
import { withHelp } from "./help.js";
import { printJson } from "./json.js";

function printStatus(s: DaemonStatus): void {
  const lines = [
    `mesa is running (pid ${s.pid})`,
    `mount point: ${s.mountPoint}`,
    `service:     ${s.serviceUrl}`,
    `started:     ${s.startedAt}`,
    `log:         ${s.logFile}`,
    `repos (${s.repos.length}):`,
    ...s.repos.map(
      (r) =>
        `  ${r.org}/${r.repo}  ${r.revision}  ${r.commit.slice(0, 12)}  ${r.files} files${r.readOnly ? "  read-only" : ""}`,
    ),
  ];
  for (const w of (s.writes ?? []) as Array<Record<string, unknown>>) {
    if (typeof w.readOnly === "string") lines.push(`  ${w.org}/${w.repo}: read-only (${w.readOnly})`);
    else
      lines.push(
        `  ${w.org}/${w.repo}: working change ${w.changeId ?? "(none yet)"} on ${String(w.ref).replace(/^refs\/heads\//, "")}` +
          `${w.pending ? ", pending writes" : ", pushed"}${w.failures ? `, ${w.failures} failed pushes` : ""}`,
      );
  }
  const c = s.cache as {
    diskBytes?: number;
    diskMaxBytes?: number;
    memoryBytes?: number;
    memoryMaxBytes?: number;
  };
  if (c.diskBytes !== undefined)
    lines.push(
      `cache: disk ${formatSize(c.diskBytes)} of ${formatSize(c.diskMaxBytes ?? 0)}, memory ${formatSize(c.memoryBytes ?? 0)} of ${formatSize(c.memoryMaxBytes ?? 0)}`,
    );
  const notes = s.notes ?? [];
  if (notes.length > 0) lines.push("notes:", ...notes.map((n) => `  ${n}`));
  lines.push(
    s.errors.length === 0 ? "errors: none" : `errors (${s.errors.length}):`,
    ...s.errors.map((e) => `  ${e}`),
  );
  process.stdout.write(`${lines.join("\n")}\n`);
}

function flatten(obj: unknown, prefix = "", out: Array<[string, unknown]> = []): Array<[string, unknown]> {
  if (obj && typeof obj === "object" && !Array.isArray(obj)) {
    for (const [k, v] of Object.entries(obj)) flatten(v, prefix ? `${prefix}.${k}` : k, out);
  } else out.push([prefix, obj]);
  return out;
}

/** `mesa status` exits 3 when no daemon runs, as `systemctl status` does for a stopped unit. */
export const NOT_RUNNING_EXIT = 3;

export function register(program: Command): void {
  withHelp(
    program
      .command("status")
      .description("show the running daemon: mount point, repos and revisions, cache use, errors, log path")
      .option("--json", "print JSON (see docs/cli.md)"),
    {
      examples: ["mesa status", "mesa status --json | jq .repos", "mesa status >/dev/null || mesa mount -d"],
      env: { MESA_RUNTIME_DIR: "where the daemon's pid file and socket are" },
    },
  ).action(async (opts: { json?: boolean }, cmd: Command) => {
    const config = loadConfig({ configPath: globalOptions(cmd).configPath });
    const daemon = await runningDaemon(config);
    if (!daemon) {
      const stale = await fuseMountAt(config.mountPoint);
      const errors = stale ? [`a stale mount is left at ${config.mountPoint}: run \`mesa unmount\``] : [];
      if (opts.json)
        printJson({ running: false, mountPoint: config.mountPoint, logFile: config.daemon.logFile, errors });
      else
        process.stdout.write(
          `mesa is not running (start it with \`mesa mount -d\`); the log is ${config.daemon.logFile}\n${errors.map((e) => `${e}\n`).join("")}`,
        );
      throw new ExitWith(NOT_RUNNING_EXIT);
    }
    const s = (await controlRequest(daemon.socket, { cmd: "status" })) as DaemonStatus;
    if (opts.json) printJson({ running: true, ...s });
    else printStatus(s);
  });

  withHelp(
    program
      .command("stats")
      .description("counters from the running daemon")
      .addOption(new Option("--format <format>", "output format").choices(["json", "text"]).default("text"))
      .option("--json", "same as --format json")
      .option("--pid <pid>", "the daemon's pid (must be the one recorded in the runtime dir)")
      .option("--pid-file <file>", "read the daemon's pid from this file"),
    { examples: ["mesa stats", "mesa stats --json | jq .fs"] },
  ).action(async (opts: { format: string; json?: boolean; pid?: string; pidFile?: string }, cmd: Command) => {
    const config = loadConfig({ configPath: globalOptions(cmd).configPath });
    const paths = runtimePaths(config);
    let pid: number | undefined;
    if (opts.pid !== undefined) {
      pid = Number(opts.pid);
      if (!Number.isInteger(pid) || pid <= 0)
        throw new MesaError("USAGE", `--pid must be a process id, not '${opts.pid}'`);
    } else pid = await readPid(opts.pidFile ?? paths.pidFile);
    if (pid === undefined || !isAlive(pid))
      throw new MesaError("DAEMON", "mesa is not running", { hint: "start it with `mesa mount -d`" });
    // The control socket lives beside the pid file that names the daemon.
    const pidFile = opts.pidFile ?? paths.pidFile;
    const recorded = await readPid(pidFile);
    if (recorded !== pid)
      throw new MesaError("DAEMON", `process ${pid} is not the mesa daemon recorded in ${pidFile}`);
    const stats = await controlRequest(join(dirname(pidFile), "mesa.sock"), { cmd: "stats" });
    if (opts.json || opts.format === "json") printJson(stats);
    else
      process.stdout.write(
        `${flatten(stats)
          .map(([k, v]) => `${k}: ${v}`)
          .join("\n")}\n`,
      );
  });
}
