import assert from "node:assert/strict";
import { test } from "node:test";
import type { SnapshotEntry } from "../src/workspace/snapshot.js";
import { changedPaths } from "../src/workspace/snapshot-diff.js";

const f = (name: string, oid: string): SnapshotEntry => ({ mode: "100644", name, oid });
const x = (name: string, oid: string): SnapshotEntry => ({ mode: "100755", name, oid });
const d = (name: string, oid: string): SnapshotEntry => ({ mode: "40000", name, oid });

test("changedPaths: changed, added, removed and retyped entries; directories whose listing changed", () => {
  const trees = new Map<string, SnapshotEntry[]>([
    ["root1", [f("a", "A1"), d("src", "S1"), f("gone", "G"), d("old", "O1"), f("same", "X")]],
    ["S1", [f("keep.ts", "K"), f("edit.ts", "E1")]],
    ["O1", [f("inside", "I")]],
    ["root2", [x("a", "A1"), d("src", "S2"), d("new", "N1"), f("old", "O2"), f("same", "X")]],
    ["S2", [f("keep.ts", "K"), f("edit.ts", "E2"), f("added.ts", "AD")]],
    ["N1", [f("n", "NN")]],
  ]);
  const out = changedPaths("/o/r", "root1", "root2", (oid) => trees.get(oid));
  assert.deepEqual(
    out.sort((p, q) => (p.path < q.path ? -1 : 1)),
    [
      { path: "/o/r", recursive: false },
      { path: "/o/r/a", recursive: false },
      { path: "/o/r/gone", recursive: false },
      { path: "/o/r/new", recursive: true },
      { path: "/o/r/old", recursive: true },
      { path: "/o/r/src", recursive: false },
      { path: "/o/r/src/added.ts", recursive: false },
      { path: "/o/r/src/edit.ts", recursive: false },
    ],
  );
  assert.deepEqual(
    changedPaths("/o/r", "root1", "root1", (oid) => trees.get(oid)),
    [],
  );
  // A tree not known locally cannot be compared: everything below may have changed.
  assert.deepEqual(
    changedPaths("/o/r", "root1", "unknown", (oid) => trees.get(oid)),
    [{ path: "/o/r", recursive: true }],
  );
});
