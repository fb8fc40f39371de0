import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { test } from "node:test";

const ROOT = resolve(import.meta.dirname, "../..");
const read = (p: string) => readFileSync(join(ROOT, p), "utf8");

/** Keys assigned in the example, commented-out ones included (`# key = …`). */
function exampleKeys(toml: string): Set<string> {
  const keys = new Set<string>();
  for (const line of toml.split("\n")) {
    const m = /^#?\s*([a-z][a-z-]*)\s*=/.exec(line);
    if (m) keys.add(m[1]!);
  }
  return keys;
}

test("docs/configuration.md names every key of config.example.toml, and only those", () => {
  const example = read("config.example.toml");
  const reference = read("docs/configuration.md");
  const documented = new Set([...reference.matchAll(/^\| `([a-z-]+)`\s*\|/gm)].map((m) => m[1]!));
  assert.deepEqual([...exampleKeys(example)].sort(), [...documented].sort());
});

test("docs/configuration.md names every MESA_* variable of the example and every credential variable", () => {
  const reference = read("docs/configuration.md");
  const example = read("config.example.toml");
  for (const v of new Set(example.match(/MESA_[A-Z_]+/g))) assert.ok(reference.includes(v), v);
  for (const v of [
    "MESA_API_KEY",
    "MESA_ORG",
    "MESA_ORGS",
    "MESA_REPO_REVS",
    "MESA_VAULT_PASSPHRASE",
    "MESA_NO_CONFIG_FILE",
  ]) {
    assert.ok(reference.includes(`\`${v}\``), v);
  }
});
