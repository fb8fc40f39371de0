/**
 * Stops a running daemon (control socket, then SIGTERM, then SIGKILL, each bounded) and
 * removes whatever mount is left at the mount point. Idempotent.
 */
import { rm } from "node:fs/promises";
import { resolve } from "node:path";
import type { Config } from "../config/types.js";
import { MesaError } from "../errors.js";
import { controlRequest } from "./control.js";
import { fuseMountAt, lazyUnmount } from "./mounts.js";
import { runtimePaths } from "./paths.js";
import { isAlive, livePid } from "./pidfile.js";

async function waitExit(pid: number, ms: number): Promise<boolean> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (!isAlive(pid)) return true;
    await new Promise((r) => setTimeout(r, 100));
  }
  return !isAlive(pid);
}

/** Returns a one-line description of what was done. */
export async function stopDaemon(config: Config): Promise<string> {
  const paths = runtimePaths(config);
  const mountPoint = resolve(config.mountPoint);
  const pid = await livePid(paths.pidFile);
  let stopped = false;
  if (pid !== undefined) {
    try {
      await controlRequest(paths.socket, { cmd: "unmount" }, 5000);
    } catch {
      process.kill(pid, "SIGTERM");
    }
    if (!(await waitExit(pid, 30_000))) {
      process.kill(pid, "SIGKILL");
      await waitExit(pid, 5000);
    }
    stopped = true;
  }
  await rm(paths.pidFile, { force: true });
  await rm(paths.socket, { force: true });
  if (await fuseMountAt(mountPoint)) {
    if (!(await lazyUnmount(mountPoint)))
      throw new MesaError("FUSE", `could not unmount ${mountPoint}`, {
        hint: `run \`fusermount -uz ${mountPoint}\``,
      });
    return stopped
      ? `stopped mesa (pid ${pid}) and unmounted ${mountPoint}`
      : `removed a stale mount at ${mountPoint}`;
  }
  return stopped ? `stopped mesa (pid ${pid}); ${mountPoint} is unmounted` : "mesa is not running";
}
