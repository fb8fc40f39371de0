/**
 * The daemon's pid file: written once the mount is ready, removed on exit. A pid file
 * whose process is gone is stale and treated as absent.
 */
import { readFileSync } from "node:fs";
import { readFile, rm, writeFile } from "node:fs/promises";

export async function readPid(file: string): Promise<number | undefined> {
  try {
    const n = Number.parseInt((await readFile(file, "utf8")).trim(), 10);
    return Number.isInteger(n) && n > 0 ? n : undefined;
  } catch {
    return undefined;
  }
}

/**
 * True when `pid` runs. A zombie (killed, not yet reaped: common in containers whose pid 1 never
 * reaps) still answers kill(pid, 0), so /proc/<pid>/stat's state decides: Z and X are dead.
 */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "EPERM") return false;
  }
  return !isZombie(pid);
}

/** State field of /proc/<pid>/stat (after the command name, which may hold spaces and parens). */
export function isZombie(pid: number): boolean {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  } catch {
    return false;
  }
  const state = stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3);
  return state === "Z" || state === "X";
}

/** The pid recorded in `file` when that process still runs. */
export async function livePid(file: string): Promise<number | undefined> {
  const pid = await readPid(file);
  return pid !== undefined && isAlive(pid) ? pid : undefined;
}

export async function writePid(file: string, pid = process.pid): Promise<void> {
  await writeFile(file, `${pid}\n`, { mode: 0o644 });
}

export async function removePid(file: string, pid = process.pid): Promise<void> {
  // Only our own pid file: a newer daemon may have replaced it.
  if ((await readPid(file)) === pid) await rm(file, { force: true });
}
