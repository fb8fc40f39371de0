/**
 * The in-place edit of one repo entry of config.toml: every byte outside the entry stays, the
 * result parses to the intended document, and layouts the line edit cannot handle are refused.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { parse } from "smol-toml";
import { addRepoEntry, removeRepoEntry } from "../src/config/edit.js";
import { isMesaError } from "../src/errors.js";

const F = "/etc/mesa/config.toml";

test("config edit: add appends one table; quoted names are quoted", () => {
  const text = '# mine\n[organizations.acme]\nmount = "explicit"   # keep\n';
  assert.equal(addRepoEntry(F, text, "acme", "app"), `${text}\n[organizations.acme.repos.app]\n`);
  assert.equal(addRepoEntry(F, "x = 1", "acme", "app"), "x = 1\n\n[organizations.acme.repos.app]\n");
  const dotted = addRepoEntry(F, text, "acme", "my.repo");
  assert.ok(dotted.endsWith('[organizations.acme.repos."my.repo"]\n'));
  const doc = parse(dotted) as { organizations: { acme: { repos: Record<string, unknown> } } };
  assert.deepEqual(Object.keys(doc.organizations.acme.repos), ["my.repo"]);
});

test("config edit: remove takes the entry's table and its comment, or its one line", () => {
  const table = [
    "[organizations.acme]",
    'mount = "explicit"',
    "",
    "# app: pinned",
    '[organizations."acme".repos.app]  # quoted org',
    'rev = { bookmark = "main" }',
    "read-only = true",
    "",
    "# the next one",
    "[organizations.acme.repos.lib]",
    "",
  ].join("\n");
  assert.equal(
    removeRepoEntry(F, table, "acme", "app"),
    [
      "[organizations.acme]",
      'mount = "explicit"',
      "",
      "# the next one",
      "[organizations.acme.repos.lib]",
      "",
    ].join("\n"),
  );
  const last = removeRepoEntry(F, table, "acme", "lib");
  assert.equal(last, table.replace("\n# the next one\n[organizations.acme.repos.lib]\n", ""));

  const dottedKey =
    '[organizations.acme]\nmount = "explicit"\nrepos.app = { read-only = true }\nrepos.lib = {}\n';
  assert.equal(removeRepoEntry(F, dottedKey, "acme", "lib"), dottedKey.replace("repos.lib = {}\n", ""));
});

test("config edit: layouts the line edit cannot handle are refused with nothing to write", () => {
  const inline = '[organizations.acme]\nmount = "explicit"\nrepos = { app = {}, lib = {} }\n';
  assert.throws(
    () => removeRepoEntry(F, inline, "acme", "lib"),
    (err) =>
      isMesaError(err, "CONFIG_INVALID") &&
      err.message === `cannot edit ${F} safely: no entry of its own for acme/lib was found` &&
      err.hint === "make the change by hand; nothing was written",
  );
  assert.throws(() => addRepoEntry(F, inline, "acme", "tools"), /cannot edit .* safely/);
  const multiline =
    '[organizations.acme.repos]\nlib = { rev = { bookmark = "main" },\n  read-only = true }\n';
  assert.throws(() => removeRepoEntry(F, multiline, "acme", "lib"), /cannot edit .* safely/);
});
