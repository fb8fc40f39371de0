import assert from "node:assert/strict";
import {
  appendFileSync,
  existsSync,
  mkdtempSync,
  readdirSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type TestContext, test } from "node:test";
import { TreeStore } from "../src/cache/tree-store.js";
import { isMesaError } from "../src/errors.js";
import { parseTree, type TreeEntry } from "../src/vcs/objects.js";
import { git, makeRepo, randomFiles } from "./helpers/cache-fixture.js";

/** Real trees: every tree of a commit built with the git CLI, parsed from `git cat-file`. */
function realTrees(t: TestContext) {
  const fx = makeRepo(randomFiles(40, (i) => i * 3));
  t.after(fx.cleanup);
  const trees = new Map<string, TreeEntry[]>();
  const root = git(fx.bare, ["rev-parse", "HEAD^{tree}"]).toString().trim();
  const stack = [root];
  while (stack.length > 0) {
    const oid = stack.pop()!;
    const entries = parseTree(git(fx.bare, ["cat-file", "tree", oid]));
    trees.set(oid, entries);
    for (const e of entries) if (e.mode === "40000") stack.push(e.oid);
  }
  const sizes = new Map([...fx.files.values()].map((f) => [f.oid, f.data.length]));
  return { fx, root, trees, sizes };
}

function storeDir(t: TestContext): string {
  const d = mkdtempSync(join(tmpdir(), "mesa-trees-"));
  t.after(() => rmSync(d, { recursive: true, force: true }));
  return d;
}

test("tree store: a damaged snapshot file reads as absent and is removed", async (t) => {
  const { fx, root, trees, sizes } = realTrees(t);
  const dir = storeDir(t);
  const s = new TreeStore({ path: dir });
  await s.open();
  await s.putSnapshot({ commit: fx.commit, tree: root, trees, sizes });
  const snapFile = join(dir, "snapshots", fx.commit);
  writeFileSync(snapFile, Buffer.from("not a snapshot"));
  assert.equal(await s.getSnapshot(fx.commit), undefined);
  assert.equal(existsSync(snapFile), false);
});

test("tree store: a size record torn by a crash is cut on open and later records stay readable", async (t) => {
  const { sizes } = realTrees(t);
  const dir = storeDir(t);
  const a = new TreeStore({ path: dir });
  await a.open();
  const [first, ...rest] = [...sizes];
  await a.putSizes(new Map([first!]));
  const file = join(dir, "sizes", `${first![0].slice(0, 2)}.bin`);
  appendFileSync(file, Buffer.from([20, 1, 2, 3])); // half a record
  const b = new TreeStore({ path: dir });
  await b.open();
  assert.equal(statSync(file).size, 29);
  await b.putSizes(new Map(rest));
  assert.deepEqual(await b.getSizes(sizes.keys()), sizes);
  let bytes = 0;
  for (const f of readdirSync(join(dir, "sizes"))) bytes += statSync(join(dir, "sizes", f)).size;
  assert.equal(bytes, sizes.size * 29);
});

test("tree store: sizes past 4 GiB and SHA-256 ids come back exact, from a new store too", async (t) => {
  const dir = storeDir(t);
  const sizes = new Map([
    ["ab".repeat(20), 2 ** 32 + 5],
    ["ab".repeat(19) + "cd", Number.MAX_SAFE_INTEGER],
    ["ab".repeat(32), 2 ** 40 + 2 ** 31],
    ["01".repeat(20), 0],
  ]);
  const a = new TreeStore({ path: dir });
  await a.open();
  await a.putSizes(sizes);
  assert.deepEqual(await a.getSizes(sizes.keys()), sizes);
  const b = new TreeStore({ path: dir });
  await b.open();
  assert.deepEqual(await b.getSizes(sizes.keys()), sizes);
});

test("tree store: bad input is refused and nothing is written", async (t) => {
  const { fx, root, trees, sizes } = realTrees(t);
  const dir = storeDir(t);
  const s = new TreeStore({ path: dir });
  await s.open();
  const bad = (e: unknown) => isMesaError(e, "INVALID_ARGUMENT");
  await assert.rejects(s.getSnapshot("../../etc/passwd"), bad);
  await assert.rejects(s.putSizes(new Map([[fx.commit, -1]])), bad);
  await assert.rejects(
    s.putSnapshot({
      commit: fx.commit,
      tree: root,
      trees: new Map([[root, [{ mode: "777", name: "x", oid: root }]]]),
      sizes,
    } as never),
    bad,
  );
  await assert.rejects(s.putSnapshot({ commit: fx.commit, tree: "f".repeat(40), trees, sizes }), bad);
  assert.deepEqual(readdirSync(join(dir, "snapshots")), []);
  assert.deepEqual(readdirSync(join(dir, "sizes")), []);
});
