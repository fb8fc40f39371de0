import type { Command } from "commander";
import type { LogLevel } from "../log.js";

/** Global options shared by every command (SPEC §4). */
export interface GlobalOptions {
  configPath?: string;
  nonInteractive: boolean;
  logLevel: LogLevel;
}

export function globalOptions(cmd: Command): GlobalOptions {
  const o = cmd.optsWithGlobals() as { configPath?: string; nonInteractive?: boolean; logLevel?: LogLevel };
  return {
    configPath: o.configPath,
    nonInteractive: o.nonInteractive === true,
    logLevel: o.logLevel ?? "warn",
  };
}

/** Ends the command with `code` after it printed its own output (e.g. `status` exits 3). */
export class ExitWith extends Error {
  constructor(readonly code: number) {
    super(`exit ${code}`);
  }
}
