import type { Command } from "commander";
import { isPrivateKey, parsePrivateKey, validateKeyText } from "../auth/keys.js";
import { loadConfig } from "../config/load.js";
import { MesaError } from "../errors.js";
import {
  applyEnvOrgs,
  openSecretStore,
  type SecretStore,
  scopeFromOptions,
  scopeName,
} from "../secrets/index.js";
import { promptHidden } from "../secrets/prompt.js";
import { globalOptions } from "./context.js";
import { printJson } from "./json.js";

/** Keys are short; refuse to buffer an accidental multi-megabyte pipe. */
const MAX_STDIN = 64 * 1024;

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of process.stdin) {
    size += (chunk as Buffer).length;
    if (size > MAX_STDIN) throw new MesaError("INVALID_KEY", "the key on stdin is longer than 64 KiB");
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks).toString("utf8");
}

/** The key from the argument, else stdin (one trailing newline trimmed), else a hidden prompt. */
async function keyInput(arg: string | undefined, nonInteractive: boolean): Promise<string> {
  if (arg !== undefined) return validateKeyText(arg);
  if (process.stdin.isTTY) {
    if (nonInteractive)
      throw new MesaError(
        "USAGE",
        "no key given: pass it on stdin (`mesa auth set-key < keyfile`) or as an argument",
      );
    return validateKeyText(await promptHidden("API key: "));
  }
  return validateKeyText((await readStdin()).replace(/\r?\n$/, ""));
}

async function openStore(cmd: Command): Promise<SecretStore> {
  const g = globalOptions(cmd);
  const config = loadConfig({ configPath: g.configPath });
  const store = await openSecretStore(config, { nonInteractive: g.nonInteractive });
  await applyEnvOrgs(config, store);
  return store;
}

export function register(program: Command): void {
  const auth = program.command("auth").description("API keys in the secret store");

  auth
    .command("set-key")
    .description("store a key for all orgs, one org, or one repo (stdin keeps it out of `ps`)")
    .argument("[key]", "the API key or private key; read from stdin when absent")
    .option("--org <org>", "organization the key is for")
    .option("--repo <repo>", "repository the key is for (needs --org)")
    .action(async (arg: string | undefined, opts: { org?: string; repo?: string }, cmd: Command) => {
      const scope = scopeFromOptions(opts.org, opts.repo);
      const key = await keyInput(arg, globalOptions(cmd).nonInteractive);
      if (isPrivateKey(key)) {
        const { org } = parsePrivateKey(key);
        if (scope.kind !== "global" && scope.org !== org)
          throw new MesaError(
            "INVALID_KEY",
            `this private key belongs to organization '${org}', not '${scope.org}'`,
          );
      }
      const store = await openStore(cmd);
      await store.set(scope, key);
      process.stderr.write(
        `stored the key for ${scopeName(scope)} in ${store.backend} (${store.location})\n`,
      );
    });

  auth
    .command("list")
    .description("list the scopes that hold a key (never the keys)")
    .option("--json", "print JSON (see docs/cli.md)")
    .action(async (opts: { json?: boolean }, cmd: Command) => {
      const store = await openStore(cmd);
      const scopes = await store.list();
      if (opts.json)
        return printJson({
          backend: store.backend,
          location: store.location,
          scopes: scopes.map((s) => ({ scope: scopeName(s), ...s })),
        });
      for (const s of scopes) process.stdout.write(`${scopeName(s)}\n`);
      if (scopes.length === 0)
        process.stderr.write(`no keys stored in ${store.backend} (${store.location})\n`);
    });

  auth
    .command("remove")
    .description("remove the key of a scope (global without options)")
    .option("--org <org>", "organization")
    .option("--repo <repo>", "repository (needs --org)")
    .action(async (opts: { org?: string; repo?: string }, cmd: Command) => {
      const scope = scopeFromOptions(opts.org, opts.repo);
      const store = await openStore(cmd);
      if (!(await store.remove(scope)))
        throw new MesaError("NOT_FOUND", `no key is stored for ${scopeName(scope)} in ${store.backend}`);
      process.stderr.write(`removed the key for ${scopeName(scope)}\n`);
    });
}
