import { Command, CommanderError, Option } from "commander";
import { formatError, MesaError } from "../errors.js";
import { VERSION } from "../version.js";
import * as auth from "./auth.js";
import * as bookmark from "./bookmark.js";
import * as change from "./change.js";
import * as configCmd from "./config.js";
import * as doctor from "./doctor.js";
import * as mount from "./mount.js";
import * as quickstart from "./quickstart.js";
import * as repo from "./repo.js";
import * as serve from "./serve.js";
import * as status from "./status.js";
import * as token from "./token.js";
import * as version from "./version.js";

/** Each command group lives in its own file and registers itself here. */
const GROUPS: Array<{ register(program: Command): void }> = [
  version,
  configCmd,
  auth,
  token,
  serve,
  mount,
  status,
  doctor,
  quickstart,
  repo,
  change,
  bookmark,
];

export function buildProgram(): Command {
  const program = new Command("mesa")
    .description("mount version-controlled repositories as ordinary directories, without cloning")
    .version(`mesa ${VERSION}`, "--version", "print the version")
    .option("-c, --config-path <path>", "path to config.toml")
    .option("-y, --non-interactive", "never prompt; use defaults")
    .addOption(
      new Option("--log-level <level>", "log level").choices([
        "trace",
        "debug",
        "info",
        "warn",
        "error",
        "silent",
      ]),
    )
    .showHelpAfterError()
    .exitOverride();
  for (const group of GROUPS) group.register(program);
  for (const cmd of program.commands) cmd.exitOverride();
  return program;
}

function debugRequested(argv: string[]): boolean {
  const i = argv.indexOf("--log-level");
  return (
    (i >= 0 && (argv[i + 1] === "debug" || argv[i + 1] === "trace")) || argv.includes("--log-level=debug")
  );
}

/** Runs the CLI; returns the exit code (0 ok, 1 runtime failure, 2 usage/config error). */
export async function main(argv: string[]): Promise<number> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv, { from: "user" });
    return 0;
  } catch (err) {
    if (err instanceof CommanderError) {
      // Help and --version exit with code 0; commander already printed the message.
      return err.exitCode === 0 ? 0 : 2;
    }
    process.stderr.write(`mesa: ${formatError(err)}\n`);
    if (debugRequested(argv) && err instanceof Error && err.stack) process.stderr.write(`${err.stack}\n`);
    return err instanceof MesaError ? err.exitCode : 1;
  }
}
