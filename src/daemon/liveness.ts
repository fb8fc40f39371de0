/**
 * Whether a daemon really runs: its pid file names a live process that is not a zombie AND
 * its control socket answers. Everything that asks "is mesa running?" (mount, unmount, status,
 * doctor) goes through `daemonLiveness`, so none of them reports a mount that does not exist.
 */
import { rm } from "node:fs/promises";
import { resolve } from "node:path";
import type { Config } from "../config/types.js";
import { isMesaError } from "../errors.js";
import { controlRequest } from "./control.js";
import type { DaemonStatus } from "./daemon.js";
import { fuseMountAt, lazyUnmount } from "./mounts.js";
import { runtimePaths } from "./paths.js";
import { isAlive, isZombie, readPid } from "./pidfile.js";

export type DaemonLiveness =
  /** Alive and its control socket answered; `status` is its answer. */
  | { state: "running"; pid: number; status: DaemonStatus }
  /** Alive, and something listens on its socket, but it did not answer in time (hung or overloaded). */
  | { state: "unresponsive"; pid: number }
  /** A pid file (or a mount) is left behind by a daemon that is gone: dead, a zombie, or not listening. */
  | { state: "stale"; pid?: number; reason: "dead" | "zombie" | "not-listening" | "mount-only" }
  | { state: "stopped" };

/** How long a live daemon gets to answer `status` before it counts as unresponsive. */
const ANSWER_TIMEOUT_MS = 3_000;

export async function daemonLiveness(
  config: Pick<Config, "daemon" | "mountPoint">,
  opts: { timeoutMs?: number } = {},
): Promise<DaemonLiveness> {
  const paths = runtimePaths(config);
  const pid = await readPid(paths.pidFile);
  if (pid === undefined) {
    return (await fuseMountAt(resolve(config.mountPoint)))
      ? { state: "stale", reason: "mount-only" }
      : { state: "stopped" };
  }
  if (isZombie(pid)) return { state: "stale", pid, reason: "zombie" };
  if (!isAlive(pid)) return { state: "stale", pid, reason: "dead" };
  try {
    const status = (await controlRequest(
      paths.socket,
      { cmd: "status" },
      opts.timeoutMs ?? ANSWER_TIMEOUT_MS,
    )) as DaemonStatus;
    // The pid file may name a process that reused the pid; the daemon says who it is.
    if (status?.pid !== pid) return { state: "stale", pid, reason: "not-listening" };
    return { state: "running", pid, status };
  } catch (err) {
    if (isMesaError(err, "TIMEOUT")) return { state: "unresponsive", pid };
    // ENOENT / ECONNREFUSED: nothing listens, so whatever has this pid is not our daemon.
    return { state: "stale", pid, reason: "not-listening" };
  }
}

/**
 * Removes what a gone daemon left: pid file, socket, and its (dead) FUSE mount. Returns true
 * when a mount was removed. Call only when `daemonLiveness` said "stale".
 */
export async function cleanStaleDaemon(config: Pick<Config, "daemon" | "mountPoint">): Promise<boolean> {
  const paths = runtimePaths(config);
  const mountPoint = resolve(config.mountPoint);
  await rm(paths.pidFile, { force: true });
  await rm(paths.socket, { force: true });
  if (!(await fuseMountAt(mountPoint))) return false;
  return lazyUnmount(mountPoint);
}

export interface RunningDaemon {
  pid: number;
  socket: string;
}

/** The running daemon of `config` (alive, not a zombie, answering), or undefined. */
export async function runningDaemon(
  config: Pick<Config, "daemon" | "mountPoint">,
): Promise<RunningDaemon | undefined> {
  const live = await daemonLiveness(config);
  return live.state === "running" ? { pid: live.pid, socket: runtimePaths(config).socket } : undefined;
}
