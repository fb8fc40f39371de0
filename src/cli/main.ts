import { Command, CommanderError, Option } from "commander";
import { formatError, MesaError } from "../errors.js";
import { VERSION } from "../version.js";
import * as auth from "./auth.js";
import * as bookmark from "./bookmark.js";
import * as change from "./change.js";
import * as completion from "./completion.js";
import * as configCmd from "./config.js";
import { ExitWith } from "./context.js";
import * as doctor from "./doctor.js";
import { addHelpExtras } from "./help.js";
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
  completion,
];

/**
 * Commander's usage errors as one line: "error: unknown option '--jsn'\n(Did you mean --json?)"
 * becomes "mesa: unknown option '--jsn' (did you mean --json?)", without the full help.
 */
export function oneLineError(text: string): string {
  const lines = text
    .trim()
    .split("\n")
    .map((l) => l.trim())
    .filter(Boolean);
  const first = (lines[0] ?? "").replace(/^error: /, "");
  const rest = lines
    .slice(1)
    .map((l) =>
      l.replace(/^\((Did you mean .*)\)$/, (_, m: string) => `(${m[0].toLowerCase()}${m.slice(1)})`),
    )
    .join(" ");
  return `mesa: ${first}${rest ? ` ${rest}` : ""}\n`;
}

/** `mesa help [command…]`: the help of any command, nested ones included (`mesa help repo list`). */
function registerHelp(program: Command): void {
  program.helpCommand(false);
  program
    .command("help")
    .description("show the help of a command, e.g. `mesa help repo list`")
    .argument("[command...]", "the command")
    .action((names: string[]) => {
      let cmd: Command = program;
      for (const name of names) {
        const next = cmd.commands.find((c) => c.name() === name || c.aliases().includes(name));
        if (!next)
          throw new MesaError(
            "USAGE",
            `unknown command '${[...names.slice(0, names.indexOf(name)), name].join(" ")}'`,
            {
              hint: "see `mesa --help`",
            },
          );
        cmd = next;
      }
      cmd.outputHelp();
    });
}

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
    .configureOutput({ outputError: (text, write) => write(oneLineError(text)) })
    .exitOverride();
  for (const group of GROUPS) group.register(program);
  registerHelp(program);
  addHelpExtras(program);
  const all = (cmd: Command): Command[] => [cmd, ...cmd.commands.flatMap(all)];
  for (const cmd of all(program)) cmd.exitOverride();
  return program;
}

function debugRequested(argv: string[]): boolean {
  const i = argv.indexOf("--log-level");
  return (
    (i >= 0 && (argv[i + 1] === "debug" || argv[i + 1] === "trace")) || argv.includes("--log-level=debug")
  );
}

/** Runs the CLI; returns the exit code (0 ok, 1 runtime failure, 2 usage/config error). */
/**
 * A shell whose directory was removed (or was inside a mount that is gone) still runs mesa:
 * process.cwd() would fail with ENOENT/ENOTCONN in every path resolution, so work from HOME.
 */
function leaveDeadCwd(): void {
  try {
    process.cwd();
  } catch {
    try {
      process.chdir(process.env.HOME || "/");
    } catch {
      process.chdir("/");
    }
  }
}

export async function main(argv: string[]): Promise<number> {
  leaveDeadCwd();
  const program = buildProgram();
  try {
    await program.parseAsync(argv, { from: "user" });
    return 0;
  } catch (err) {
    if (err instanceof ExitWith) return err.code;
    if (err instanceof CommanderError) {
      // Help and --version exit with code 0; commander already printed the message.
      return err.exitCode === 0 ? 0 : 2;
    }
    process.stderr.write(`mesa: ${formatError(err)}\n`);
    if (debugRequested(argv) && err instanceof Error && err.stack) process.stderr.write(`${err.stack}\n`);
    return err instanceof MesaError ? err.exitCode : 1;
  }
}
