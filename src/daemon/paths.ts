import { join } from "node:path";
import type { Config } from "../config/types.js";

/** Files of a running daemon, all in the runtime dir (SPEC §7). */
export function runtimePaths(config: Pick<Config, "daemon">): { pidFile: string; socket: string } {
  return {
    pidFile: join(config.daemon.runtimeDir, "mesa.pid"),
    socket: join(config.daemon.runtimeDir, "mesa.sock"),
  };
}
