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

test("docs/semantics.md: every row names at least one test, and every named test exists", () => {
  const lines = read("docs/semantics.md").split("\n");
  const isSeparator = (l: string | undefined) => l !== undefined && /^\|(\s*-+\s*\|)+$/.test(l);
  let rows = 0;
  for (const [i, line] of lines.entries()) {
    if (!line.startsWith("|") || isSeparator(line) || isSeparator(lines[i + 1])) continue;
    rows++;
    const cells = line.split(" | ");
    const last = (cells[cells.length - 1] ?? "").replace(/\s*\|$/, "");
    const refs = last.split(/; (?=`)/);
    assert.ok(refs.length > 0 && last.trim() !== "", `no test named for: ${line}`);
    for (const ref of refs) {
      const m = /^`([a-z0-9-]+)`: (.+)$/.exec(ref);
      assert.ok(m, `not a test reference ("\`file\`: name"): ${ref}`);
      const source = read(`test/${m[1]}.test.ts`);
      const name = m[2]!.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
      assert.match(source, new RegExp(`test\\(\\s*"${name}"`), `test/${m[1]}.test.ts has no test "${m[2]}"`);
    }
  }
  assert.ok(rows >= 30, `only ${rows} rows`);
});
