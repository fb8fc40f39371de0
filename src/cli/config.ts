import type { Command } from "commander";
import { formatConfigJson, formatConfigText, loadConfig } from "../config/index.js";
import { globalOptions } from "./context.js";

export function register(program: Command): void {
  const config = program.command("config").description("inspect the configuration");
  config
    .command("show")
    .description("print the effective configuration and where each value came from (default, file, env)")
    .option("--json", "machine-readable output")
    .action((opts: { json?: boolean }, cmd: Command) => {
      const cfg = loadConfig({ configPath: globalOptions(cmd).configPath });
      process.stdout.write(opts.json ? formatConfigJson(cfg) : formatConfigText(cfg));
    });
}
