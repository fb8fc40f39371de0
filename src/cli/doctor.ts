/**
 * `mesa doctor`: preflight and health checks, each failure with its fix (SPEC §4).
 * Exit 0 when every check passes, 1 otherwise.
 */
import type { Command } from "commander";
import { loadConfig } from "../config/load.js";
import type { Config } from "../config/types.js";
import { MesaError } from "../errors.js";
import { globalOptions } from "./context.js";
import { printJson } from "./json.js";

export function register(program: Command): void {
  program
    .command("doctor")
    .description("check FUSE, configuration, stale mounts, the server and credentials")
    .option("--json", "print JSON")
    .action(async (opts: { json?: boolean }, cmd: Command) => {
      let config: Config | undefined;
      let configError: string | undefined;
      try {
        config = loadConfig({ configPath: globalOptions(cmd).configPath });
      } catch (err) {
        configError = (err as Error).message;
      }
      const { runChecks } = await import("../daemon/doctor.js");
      const checks = await runChecks(config, configError);
      if (opts.json) printJson({ ok: checks.every((c) => c.ok || c.level === "warn"), checks });
      else
        for (const c of checks) {
          const tag = c.ok ? "ok  " : c.level === "warn" ? "warn" : "FAIL";
          process.stdout.write(`${tag}  ${c.name}: ${c.detail}\n`);
          if (!c.ok && c.fix) process.stdout.write(`      fix: ${c.fix}\n`);
        }
      const failed = checks.filter((c) => !c.ok && c.level !== "warn");
      if (failed.length > 0)
        throw new MesaError("FUSE", `${failed.length} check${failed.length === 1 ? "" : "s"} failed`, {
          hint: "apply the fixes above and run `mesa doctor` again",
        });
    });
}
