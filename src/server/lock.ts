import { open, readFile, rm } from "node:fs/promises";
import { MesaError } from "../errors.js";

/** One server per data dir: `serve.lock` holds the pid of the process that owns the data dir. */

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** The pid of the live process holding the lock, or undefined when nobody (alive) holds it. */
export async function lockHolder(file: string): Promise<number | undefined> {
  const pid = Number.parseInt(await readFile(file, "utf8").catch(() => ""), 10);
  return Number.isInteger(pid) && pid > 0 && alive(pid) ? pid : undefined;
}

/** Takes the lock (a dead holder's lock is taken over); throws when a live process holds it. */
export async function takeLock(file: string): Promise<() => Promise<void>> {
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fh = await open(file, "wx", 0o600);
      await fh.writeFile(`${process.pid}\n`);
      await fh.close();
      return () => rm(file, { force: true });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
      const pid = await lockHolder(file);
      if (pid !== undefined)
        throw new MesaError("INVALID_ARGUMENT", `another mesa serve (pid ${pid}) uses this data dir`, {
          hint: "stop it first or pass another --data-dir",
        });
      await rm(file, { force: true });
    }
  }
  throw new MesaError("INTERNAL", `cannot take the lock ${file}`);
}

/** Runs `fn` holding the lock and returns true, or returns false at once when a live process holds it. */
export async function withLock(file: string, fn: () => Promise<void>): Promise<boolean> {
  let unlock: () => Promise<void>;
  try {
    unlock = await takeLock(file);
  } catch (err) {
    if ((await lockHolder(file)) !== undefined) return false;
    throw err;
  }
  try {
    await fn();
    return true;
  } finally {
    await unlock();
  }
}
