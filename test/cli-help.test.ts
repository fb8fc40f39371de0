/**
 * Help through the real CLI: unknown commands and options get one line with the nearest
 * match; `mesa help <cmd> <sub>` shows that subcommand; every command's help has examples;
 * the completion scripts load in their shells and offer the command tree.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { buildProgram } from "../src/cli/main.js";
import { MESA_BIN, mesa, run } from "./helpers/mount.js";

const env = (): NodeJS.ProcessEnv => ({
  PATH: process.env.PATH,
  HOME: "/nonexistent",
  MESA_NO_CONFIG_FILE: "1",
});

/** Every command path below `mesa`, e.g. "repo list". */
function commandPaths(): string[] {
  const out: string[] = [];
  const walk = (cmd: ReturnType<typeof buildProgram>, path: string) => {
    for (const c of cmd.commands) {
      const p = path ? `${path} ${c.name()}` : c.name();
      out.push(p);
      walk(c, p);
    }
  };
  walk(buildProgram(), "");
  return out;
}

test("help: one line for an unknown option or command, with the nearest match", async () => {
  const opt = await mesa(["status", "--jsn"], env());
  assert.equal(opt.code, 2);
  assert.equal(opt.stdout, "");
  assert.equal(opt.stderr, "mesa: unknown option '--jsn' (did you mean --json?)\n");
  const cmd = await mesa(["stauts"], env());
  assert.equal(cmd.code, 2);
  assert.equal(cmd.stderr, "mesa: unknown command 'stauts' (did you mean one of stats, status?)\n");
  const sub = await mesa(["repo", "lsit"], env());
  assert.equal(sub.code, 2);
  assert.equal(sub.stderr, "mesa: unknown command 'lsit' (did you mean list?)\n");
});

test("help: `mesa help <cmd> <sub>` shows the subcommand; every command has examples", async () => {
  const nested = await mesa(["help", "repo", "list"], env());
  assert.equal(nested.code, 0, nested.stderr);
  assert.match(nested.stdout, /^Usage: mesa repo list \[options\]$/m);
  assert.match(nested.stdout, /^Examples:\n {2}\$ mesa repo list$/m);
  assert.match(
    nested.stdout,
    /^Environment:\n(.*\n)*? {2}MESA_ORG {2,}organization used when --org is not given$/m,
  );
  const unknown = await mesa(["help", "repo", "nope"], env());
  assert.equal(unknown.code, 2);
  assert.equal(unknown.stderr, "mesa: unknown command 'repo nope': see `mesa --help`\n");

  const missing: string[] = [];
  for (const path of commandPaths()) {
    const r = await mesa([...path.split(" "), "--help"], env());
    if (r.code !== 0 || !/^Examples:\n {2}\$ .*\bmesa /m.test(r.stdout)) missing.push(path);
  }
  assert.deepEqual(missing, [], "commands whose --help has no examples");
  for (const path of ["mount", "log", "show", "status", "repo list", "bookmark list", "token create"]) {
    const r = await mesa([...path.split(" "), "--help"], env());
    assert.match(r.stdout, /^Environment:\n {2}MESA_/m, `${path} --help names its variables`);
  }
});

test("completion: the bash script loads and completes the command tree; zsh and fish scripts are generated", async () => {
  const bash = await run("bash", [
    "-c",
    `source <('${process.execPath}' '${MESA_BIN}' completion bash) && complete -p mesa && ` +
      `COMP_WORDS=(mesa repo ''); COMP_CWORD=2; _mesa_complete; echo "repo: \${COMPREPLY[*]}"; ` +
      `COMP_WORDS=(mesa status --j); COMP_CWORD=2; _mesa_complete; echo "status: \${COMPREPLY[*]}"; ` +
      `COMP_WORDS=(mesa sh); COMP_CWORD=1; _mesa_complete; echo "top: \${COMPREPLY[*]}"`,
  ]);
  assert.equal(bash.code, 0, bash.stderr);
  assert.equal(bash.stderr, "");
  assert.equal(
    bash.stdout,
    "complete -o default -F _mesa_complete mesa\nrepo: list open close --help\nstatus: --json\ntop: show\n",
  );

  const zsh = await mesa(["completion", "zsh"], env());
  assert.equal(zsh.code, 0);
  assert.match(zsh.stdout, /^#compdef mesa\n/);
  if ((await run("sh", ["-c", "command -v zsh"])).code === 0) {
    const z = await run("zsh", [
      "-c",
      `source <('${process.execPath}' '${MESA_BIN}' completion zsh) && echo loaded`,
    ]);
    assert.equal(z.stdout.trim(), "loaded", z.stderr);
  }
  const fish = await mesa(["completion", "fish"], env());
  assert.equal(fish.code, 0);
  assert.match(fish.stdout, /^complete -c mesa -n '__fish_seen_subcommand_from repo' -a 'list' -d /m);
  assert.match(fish.stdout, /^complete -c mesa -n '__fish_seen_subcommand_from status' -l json -d /m);

  const bad = await mesa(["completion", "tcsh"], env());
  assert.equal(bad.code, 2);
  assert.equal(bad.stderr, "mesa: no completion for 'tcsh': use bash, zsh or fish\n");
});
