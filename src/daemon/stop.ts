/**
 * Stops a running daemon (control socket, then SIGTERM, then SIGKILL, each bounded) and
 * removes whatever mount is left at the mount point. Idempotent; a daemon that is already
 * gone (dead, a zombie, not listening) costs no wait at all.
 */
import { resolve } from "node:path";
import type { Config } from "../config/types.js";
import { MesaError } from "../errors.js";
import { controlRequest } from "./control.js";
import { cleanStaleDaemon, daemonLiveness } from "./liveness.js";
import { fuseMountAt, lazyUnmount } from "./mounts.js";
import { runtimePaths } from "./paths.js";
import { isAlive } from "./pidfile.js";

async function waitExit(pid: number, ms: number): Promise<boolean> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (!isAlive(pid)) return true;
    await new Promise((r) => setTimeout(r, 100));
  }
  return !isAlive(pid);
}

function kill(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(pid, signal);
  } catch {
    // gone already
  }
}

/** Returns a one-line description of what was done. */
export async function stopDaemon(config: Config): Promise<string> {
  const paths = runtimePaths(config);
  const mountPoint = resolve(config.mountPoint);
  const live = await daemonLiveness(config);
  if (live.state === "stale" || live.state === "stopped") {
    const unmounted = await cleanStaleDaemon(config);
    if (await fuseMountAt(mountPoint)) throw cannotUnmount(mountPoint);
    if (unmounted) return `removed a stale mount at ${mountPoint}`;
    return live.state === "stale" && live.pid !== undefined
      ? `mesa (pid ${live.pid}) was not running; removed its stale pid file`
      : "mesa is not running";
  }
  const pid = live.pid;
  if (live.state === "running") {
    try {
      await controlRequest(paths.socket, { cmd: "unmount" }, 5000);
    } catch {
      kill(pid, "SIGTERM");
    }
  } else {
    kill(pid, "SIGTERM");
  }
  if (!(await waitExit(pid, 30_000))) {
    kill(pid, "SIGKILL");
    await waitExit(pid, 5000);
  }
  await cleanStaleDaemon(config);
  if (await fuseMountAt(mountPoint)) {
    if (!(await lazyUnmount(mountPoint))) throw cannotUnmount(mountPoint);
    return `stopped mesa (pid ${pid}) and unmounted ${mountPoint}`;
  }
  return `stopped mesa (pid ${pid}); ${mountPoint} is unmounted`;
}

function cannotUnmount(mountPoint: string): MesaError {
  return new MesaError("FUSE", `could not unmount ${mountPoint}`, {
    hint: `run \`fusermount -uz ${mountPoint}\``,
  });
}
