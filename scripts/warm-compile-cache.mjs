// Fills the package's compile cache (.compile-cache, which bin/mesa prefers when it is
// writable) with the CLI's bundle, each under the Node options it runs with
// (the cache keeps code per set of options), so a first `mesa mount -d` in a fresh home starts
// warm. Run by `npm run build`.
import { execFileSync } from "node:child_process";
import { mkdirSync, readdirSync } from "node:fs";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("..", import.meta.url));
const cacheDir = `${root}.compile-cache`;
mkdirSync(cacheDir, { recursive: true });
const { DAEMON_NODE_FLAGS } = await import(`${root}dist/src/daemon/spawn.js`);
// What bin/mesa runs: every file of the bundle (the CLI, the daemon's and the server's chunks,
// the workers); loading one runs only its modules' top-level definitions.
const bundle = `${root}dist/bundle`;
const modules = readdirSync(bundle)
  .filter((f) => f.endsWith(".js"))
  .map((f) => `${bundle}/${f}`);
const script = `import { enableCompileCache } from "node:module";
enableCompileCache(${JSON.stringify(cacheDir)});
for (const m of ${JSON.stringify(modules)}) await import(m);`;
for (const flags of [[], DAEMON_NODE_FLAGS])
  execFileSync(process.execPath, [...flags, "--input-type=module", "-e", script], { stdio: "inherit" });
