// Bundles the CLI (and with it the daemon and the server) into dist/bundle/, which bin/mesa runs.
// Node loads an ES module file by file: the CLI loaded 220 of them (95 are zod's) and the daemon
// 435 (109 undici, 46 jose), about 0.25 ms each even from the compile cache, so `mesa mount -d`
// spent ~250 ms of its ready time loading code in two processes. Bundled, the daemon logs
// "starting" 230-280 ms after the command starts instead of ~470 (see docs/performance.md).
// Code that only some commands need stays in chunks of its own (dynamic imports, `splitting`).
// The worker threads' entry files sit in the same directory, where the code that starts them
// looks (`new URL("./pack-worker.js", import.meta.url)`). dist/src stays as compiled, for the
// SDK and the tests that import modules. Run by `npm run build` after tsc.
import { rmSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";

const root = fileURLToPath(new URL("..", import.meta.url));
const out = `${root}dist/bundle`;
rmSync(out, { recursive: true, force: true });
await build({
  entryPoints: ["cli/main.js", "vcs/pack-worker.js", "cache/verify-worker.js"].map(
    (f) => `${root}dist/src/${f}`,
  ),
  bundle: true,
  splitting: true,
  format: "esm",
  platform: "node",
  target: "node22",
  outdir: out,
  entryNames: "[name]",
  // The keychain binding picks its native package at run time.
  external: ["@napi-rs/keyring"],
  // Some dependencies are CommonJS and `require` Node's modules, which an ES module lacks.
  banner: {
    js: 'import { createRequire as bundleRequire } from "node:module"; const require = bundleRequire(import.meta.url);',
  },
  logLevel: "warning",
});
