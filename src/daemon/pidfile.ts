/**
 * The daemon's pid file: written once the mount is ready, removed on exit. A pid file
 * whose process is gone is stale and treated as absent.
 */
import { readFile, rm, writeFile } from "node:fs/promises";

export async function readPid(file: string): Promise<number | undefined> {
  try {
    const n = Number.parseInt((await readFile(file, "utf8")).trim(), 10);
    return Number.isInteger(n) && n > 0 ? n : undefined;
  } catch {
    return undefined;
  }
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
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
