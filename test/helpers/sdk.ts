/**
 * For the SDK tests: a process environment with nothing from the caller's MESA_* settings or
 * config files, a `mesa serve` with a repo that has TODO files, and a `Mesa` client for it.
 */
import { mkdirSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { Mesa } from "../../src/sdk/index.js";
import { gitSync } from "./mount.js";
import type { ServeHandle } from "./serve.js";

/**
 * The SDK reads MESA_* and config.toml like the CLI: keep the tests' own out of it. The
 * environment is restored when `fx` cleans up, so later tests (and the processes they start)
 * do not inherit a HOME that is gone.
 */
export function isolateSdkEnv(fx: { defer(step: () => unknown): void }, home: string): void {
  const saved = { ...process.env };
  fx.defer(() => {
    for (const k of Object.keys(process.env)) if (!(k in saved)) delete process.env[k];
    Object.assign(process.env, saved);
  });
  for (const k of Object.keys(process.env))
    if (k.startsWith("MESA_") || k.startsWith("XDG_")) delete process.env[k];
  process.env.HOME = home;
  process.env.MESA_NO_CONFIG_FILE = "1";
  process.env.MESA_POLL_INTERVAL = "500";
}

export function client(serve: ServeHandle): Mesa {
  return new Mesa({ apiKey: serve.adminKey, org: serve.org, serviceUrl: serve.url });
}

/** A repo with .ts files, some of them with TODOs, a binary file and symlinks; imported as org/name. */
export async function importCodeRepo(serve: ServeHandle, dir: string, name: string): Promise<string> {
  const src = join(dir, `src-${name}`);
  mkdirSync(join(src, "src", "lib"), { recursive: true });
  mkdirSync(join(src, "docs"), { recursive: true });
  gitSync(dir, ["init", "-q", "-b", "main", src]);
  for (let i = 0; i < 12; i++)
    writeFileSync(
      join(src, i % 2 ? "src" : "src/lib", `m${i}.ts`),
      `export const v${i} = ${i};\n${i % 3 === 0 ? "// TODO: tidy\n" : ""}`,
    );
  writeFileSync(join(src, "docs", "notes.md"), "TODO: not a .ts file\n");
  writeFileSync(join(src, "README.md"), "# code\n");
  writeFileSync(join(src, "logo.bin"), Buffer.from([0x89, 0x50, 0x4e, 0x47, 0, 1, 2, 0xff, 0xfe]));
  writeFileSync(join(src, "run.sh"), "#!/bin/sh\necho run\n", { mode: 0o755 });
  symlinkSync("README.md", join(src, "readme-link"));
  symlinkSync("src", join(src, "src-link"));
  gitSync(src, ["add", "-A"]);
  gitSync(src, ["commit", "-q", "-m", "initial"]);
  await serve.importRepo(`${serve.org}/${name}`, src);
  return src;
}
