/**
 * The mount point checked before mounting, so FUSE's own refusals (a non-empty directory, a
 * file, allow_other without user_allow_other) become one sentence with the setting to change,
 * rather than a message from the FUSE library. `mesa doctor` runs the same check.
 * Call only when no FUSE mount is at the path (a hung mount must never be read).
 */
import { mkdir, readdir, readFile, stat } from "node:fs/promises";
import { resolve } from "node:path";
import { MesaError } from "../errors.js";

const SETTING = "MESA_MOUNT_POINT (mount-point in config.toml)";

async function userAllowOther(): Promise<boolean> {
  try {
    return (await readFile("/etc/fuse.conf", "utf8"))
      .split("\n")
      .some((l) => l.trim() === "user_allow_other");
  } catch {
    return false;
  }
}

/**
 * Why mounting at `mountPoint` would fail, or undefined. `create` makes a missing one;
 * `allowOther: false` leaves /etc/fuse.conf to a caller that checks it on its own.
 */
export async function checkMountPoint(
  mountPoint: string,
  opts: { create: boolean; allowOther?: boolean },
): Promise<MesaError | undefined> {
  const path = resolve(mountPoint);
  let s: Awaited<ReturnType<typeof stat>>;
  try {
    s = await stat(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== "ENOENT")
      return new MesaError("FUSE", `the mount point ${path} cannot be used (${code})`, {
        hint: `set ${SETTING} to a directory you own`,
      });
    if (!opts.create) return undefined;
    try {
      await mkdir(path, { recursive: true });
    } catch (e) {
      return new MesaError(
        "FUSE",
        `cannot create the mount point ${path} (${(e as NodeJS.ErrnoException).code})`,
        {
          hint: `create it yourself, or set ${SETTING} to a directory you own`,
        },
      );
    }
    s = await stat(path);
  }
  if (!s.isDirectory())
    return new MesaError("FUSE", `the mount point ${path} is not a directory`, {
      hint: `remove that file, or set ${SETTING} to an empty directory`,
    });
  const entries = await readdir(path);
  if (entries.length > 0) {
    const shown = entries.slice(0, 3).join(", ") + (entries.length > 3 ? ", …" : "");
    return new MesaError("FUSE", `the mount point ${path} is not empty (it holds ${shown})`, {
      hint: `empty it, or set ${SETTING} to an empty directory`,
    });
  }
  if (opts.allowOther !== false && process.getuid?.() !== 0 && !(await userAllowOther()))
    return new MesaError(
      "FUSE",
      "FUSE allows other users into the mount (allow_other) only with user_allow_other",
      {
        hint: "add the line `user_allow_other` to /etc/fuse.conf as root (`echo user_allow_other | sudo tee -a /etc/fuse.conf`)",
      },
    );
  return undefined;
}
