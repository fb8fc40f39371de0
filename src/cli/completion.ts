/**
 * `mesa completion bash|zsh|fish`: completion scripts generated from the command tree itself,
 * so every command, subcommand and option is offered and none can be forgotten.
 */
import type { Command } from "commander";
import { MesaError } from "../errors.js";

interface Node {
  /** Space-separated command path below `mesa` ("" for the top). */
  path: string;
  subcommands: Array<{ name: string; description: string }>;
  options: Array<{ flag: string; description: string }>;
}

function visible(cmd: Command): Command[] {
  return cmd.commands.filter((c) => !(c as unknown as { _hidden?: boolean })._hidden);
}

function nodes(cmd: Command, path = "", out: Node[] = []): Node[] {
  const options = cmd.options.flatMap((o) =>
    [o.long, o.short].filter((f): f is string => !!f).map((flag) => ({ flag, description: o.description })),
  );
  options.push({ flag: "--help", description: "show help" });
  out.push({
    path,
    subcommands: visible(cmd).map((c) => ({ name: c.name(), description: c.description() })),
    options,
  });
  for (const c of visible(cmd)) nodes(c, path ? `${path} ${c.name()}` : c.name(), out);
  return out;
}

const quote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

function bash(program: Command): string {
  const cases = nodes(program)
    .map((n) => {
      const words = [...n.subcommands.map((s) => s.name), ...n.options.map((o) => o.flag)].join(" ");
      return `    ${quote(n.path)}) words=${quote(words)} ;;`;
    })
    .join("\n");
  return `# mesa completion for bash: source <(mesa completion bash)
_mesa_complete() {
  local cur path w i words
  cur="\${COMP_WORDS[COMP_CWORD]}"
  path=""
  for ((i = 1; i < COMP_CWORD; i++)); do
    w="\${COMP_WORDS[i]}"
    case "$w" in -*) continue ;; esac
    if _mesa_has_path "\${path:+$path }$w"; then path="\${path:+$path }$w"; fi
  done
  words=""
  case "$path" in
${cases}
  esac
  COMPREPLY=($(compgen -W "$words" -- "$cur"))
}
_mesa_has_path() {
  case "$1" in
${nodes(program)
  .filter((n) => n.path !== "")
  .map((n) => `    ${quote(n.path)}) return 0 ;;`)
  .join("\n")}
  esac
  return 1
}
complete -o default -F _mesa_complete mesa
`;
}

function zsh(program: Command): string {
  return `#compdef mesa
# mesa completion for zsh: source <(mesa completion zsh)
autoload -U +X bashcompinit && bashcompinit
${bash(program).split("\n").slice(1).join("\n")}`;
}

function fish(program: Command): string {
  const lines = ["# mesa completion for fish: mesa completion fish | source", "complete -c mesa -f"];
  for (const n of nodes(program)) {
    const parts = n.path === "" ? [] : n.path.split(" ");
    const cond =
      parts.length === 0 ? "__fish_use_subcommand" : `__fish_seen_subcommand_from ${parts[parts.length - 1]}`;
    for (const s of n.subcommands)
      lines.push(`complete -c mesa -n ${quote(cond)} -a ${quote(s.name)} -d ${quote(s.description)}`);
    for (const o of n.options) {
      const flag = o.flag.startsWith("--") ? `-l ${o.flag.slice(2)}` : `-s ${o.flag.slice(1)}`;
      lines.push(`complete -c mesa -n ${quote(cond)} ${flag} -d ${quote(o.description)}`);
    }
  }
  return `${lines.join("\n")}\n`;
}

export function register(program: Command): void {
  program
    .command("completion")
    .description("print a shell completion script (bash, zsh or fish)")
    .argument("<shell>", "bash | zsh | fish")
    .addHelpText(
      "after",
      "\nExamples:\n  $ source <(mesa completion bash)      # in ~/.bashrc\n  $ source <(mesa completion zsh)       # in ~/.zshrc\n  $ mesa completion fish > ~/.config/fish/completions/mesa.fish",
    )
    .action((shell: string) => {
      const root = program;
      const script =
        shell === "bash"
          ? bash(root)
          : shell === "zsh"
            ? zsh(root)
            : shell === "fish"
              ? fish(root)
              : undefined;
      if (script === undefined)
        throw new MesaError("USAGE", `no completion for '${shell}'`, { hint: "use bash, zsh or fish" });
      process.stdout.write(script);
    });
}
