import type { Command } from "commander";
import { VERSION } from "../version.js";

export function register(program: Command): void {
  program
    .command("version")
    .description("print the mesa version")
    .action(() => {
      process.stdout.write(`mesa ${VERSION}\n`);
    });
}
