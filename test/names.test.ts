import assert from "node:assert/strict";
import { test } from "node:test";
import { isMesaError } from "../src/errors.js";
import { nameProblem, parseRepoSlug, validateOrgName } from "../src/names.js";

test("names: safe names pass", () => {
  for (const n of ["acme", "my-org", "app.v2", "a_b", "A1"]) assert.equal(nameProblem(n), undefined, n);
});

test("names: traversal, separators, NUL and length are rejected", () => {
  for (const n of [
    "",
    ".",
    "..",
    "a/b",
    "a\\b",
    "a\0b",
    ".hidden",
    "-x",
    "x".repeat(101),
    "repo.git",
    "a b",
  ]) {
    assert.ok(nameProblem(n), JSON.stringify(n));
    assert.throws(
      () => validateOrgName(n),
      (e) => isMesaError(e, "INVALID_NAME"),
    );
  }
});

test("names: org/repo slugs", () => {
  assert.deepEqual(parseRepoSlug("acme/app"), { org: "acme", repo: "app" });
  for (const s of ["acme", "acme/app/x", "../app", "acme/.."]) assert.throws(() => parseRepoSlug(s));
});
