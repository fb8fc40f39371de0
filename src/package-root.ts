import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

/**
 * The package's directory: the nearest one above `moduleUrl` holding a package.json. Found by
 * looking rather than by a fixed number of `..`, because the same code runs from dist/src/…
 * (the SDK, the tests) and from the CLI's bundle in dist/bundle/.
 */
export function packageRoot(moduleUrl: string): string {
  const start = dirname(fileURLToPath(moduleUrl));
  for (let dir = start; ; dir = dirname(dir)) {
    if (existsSync(join(dir, "package.json"))) return dir;
    if (dirname(dir) === dir) return start;
  }
}
