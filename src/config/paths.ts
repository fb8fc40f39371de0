import { isAbsolute, join, resolve } from "node:path";

/**
 * Expands `~` and `~/…` to the home directory and makes relative paths absolute against
 * `baseDir` (the config file's directory, or the working directory for MESA_* variables).
 * Returns a reason for forms we do not expand (`~user`).
 */
export function expandPath(value: string, home: string, baseDir: string): string | { problem: string } {
  if (value.includes("\0")) return { problem: "contains a NUL byte" };
  if (value === "~") return resolve(home);
  if (value.startsWith("~/")) return resolve(join(home, value.slice(2)));
  if (value.startsWith("~")) return { problem: "only ~ and ~/… are expanded, not ~user" };
  return isAbsolute(value) ? resolve(value) : resolve(baseDir, value);
}
