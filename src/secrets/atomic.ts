import { mkdirSync, readFileSync, rmSync, statSync, unlinkSync, writeFileSync } from "node:fs";
import { dirname } from "node:path";
import { MesaError } from "../errors.js";

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

/**
 * Runs `fn` holding `<path>.lock` (O_EXCL), so two mesa processes updating the same
 * secret file never lose each other's write. Locks left by dead processes are broken;
 * waiting is bounded.
 */
export async function withFileLock<T>(
  path: string,
  fn: () => Promise<T> | T,
  timeoutMs = 10_000,
): Promise<T> {
  const lock = `${path}.lock`;
  mkdirSync(dirname(lock), { recursive: true, mode: 0o700 });
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      writeFileSync(lock, String(process.pid), { flag: "wx", mode: 0o600 });
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
      let holder = Number.NaN;
      try {
        holder = Number(readFileSync(lock, "utf8"));
      } catch {
        // Released between our attempt and the read: try again.
      }
      const stale =
        (Number.isInteger(holder) && holder > 0 && !pidAlive(holder)) ||
        (!Number.isInteger(holder) && Date.now() - safeMtime(lock) > 30_000);
      if (stale) {
        rmSync(lock, { force: true });
        continue;
      }
      if (Date.now() > deadline)
        throw new MesaError(
          "SECRET_STORE_UNAVAILABLE",
          `the secret file ${path} is locked by process ${holder}`,
          {
            hint: `wait for it to finish, or remove ${lock} if no mesa process is running`,
          },
        );
      await new Promise((r) => setTimeout(r, 25));
    }
  }
  try {
    return await fn();
  } finally {
    try {
      unlinkSync(lock);
    } catch {
      // Already gone (broken as stale by another process): nothing to release.
    }
  }
}

function safeMtime(path: string): number {
  try {
    return statSync(path).mtimeMs;
  } catch {
    return Date.now();
  }
}

/** A cheap identity of a file's current version, to know whether a cached copy is current. */
export function fileSignature(path: string): string | undefined {
  try {
    const st = statSync(path, { bigint: true });
    return `${st.dev}:${st.ino}:${st.size}:${st.mtimeNs}`;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw err;
  }
}
