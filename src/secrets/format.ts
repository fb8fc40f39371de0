import { parse as parseToml, stringify as stringifyToml, TomlError } from "smol-toml";
import { MesaError } from "../errors.js";
import { parseScopeName } from "./scope.js";

/**
 * The content of a secret file (the plaintext file, or the vault once decrypted):
 *
 *   [keys]
 *   "global" = "…"
 *   "orgs/acme" = "…"
 *
 * Parsing never quotes the file back: a TOML error's code excerpt would show a key.
 */
export type SecretEntries = Map<string, string>;

const HEADER = "# mesa secret store: API keys by scope. Managed by `mesa auth`; do not share this file.\n";

export function serializeEntries(entries: SecretEntries): string {
  const keys: Record<string, string> = {};
  for (const name of [...entries.keys()].sort()) keys[name] = entries.get(name)!;
  return `${HEADER}${stringifyToml({ keys })}\n`;
}

export function parseEntries(text: string, where: string): SecretEntries {
  const corrupt = (why: string) =>
    new MesaError("SECRET_STORE_CORRUPT", `the secret store ${where} is damaged (${why})`, {
      hint: "restore it from a backup or remove it and set the keys again; mesa will not overwrite it",
    });
  let doc: Record<string, unknown>;
  try {
    doc = parseToml(text);
  } catch (err) {
    if (err instanceof TomlError) {
      const reason = err.message.split("\n")[0]!.replace(/^Invalid TOML document: /, "");
      throw corrupt(`line ${err.line}, column ${err.column}: ${reason}`);
    }
    throw err;
  }
  const extra = Object.keys(doc).filter((k) => k !== "keys");
  if (extra.length > 0) throw corrupt("it has entries outside [keys]");
  const keys = doc.keys ?? {};
  if (typeof keys !== "object" || keys === null || Array.isArray(keys))
    throw corrupt("[keys] is not a table");
  const entries: SecretEntries = new Map();
  for (const [name, value] of Object.entries(keys)) {
    if (!parseScopeName(name)) throw corrupt("[keys] holds a name that is not a scope");
    if (typeof value !== "string" || value.length === 0 || /\s/.test(value))
      throw corrupt(`the key for ${name} is not a single token`);
    entries.set(name, value);
  }
  return entries;
}
