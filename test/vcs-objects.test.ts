import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import fc from "fast-check";
import { isMesaError } from "../src/errors.js";
import { BaseRing } from "../src/vcs/base-ring.js";
import {
  applyDelta,
  buildTree,
  changeIdFromOid,
  EMPTY_TREE_OID,
  hashObject,
  isChangeId,
  newChangeId,
  type Oid,
  PackParser,
  parseCommit,
  parseTree,
  serializeCommit,
  serializeTree,
  type TreeEntry,
  writePack,
} from "../src/vcs/index.js";
import { pkt, pktLines } from "../src/vcs/pktline.js";
import { fixture } from "./helpers/fixture.js";
import {
  catFiles,
  git,
  gitRaw,
  listObjects,
  lsTree,
  makeRepo,
  removeDir,
  type TestRepo,
  tempDir,
} from "./helpers/repos.js";

const sig = { name: "Ada Lovelace", email: "ada@example.com", timestamp: 1700000000, tz: "+0100" };

function parsePack(pack: Buffer, chunk: number) {
  const p = new PackParser();
  for (let i = 0; i < pack.length; i += chunk) p.push(pack.subarray(i, i + chunk));
  return p.end();
}

function expectCode(code: string) {
  return (err: unknown) => {
    assert.ok(isMesaError(err, code as never), `expected ${code}, got ${String(err)}`);
    return true;
  };
}

describe("objects", () => {
  let root: string;
  let repo: TestRepo;
  const fx = fixture({ after }, "objects");
  before(() => {
    root = fx.dir;
    repo = makeRepo(root, {
      "README.md": "# hi\n",
      "a/b/c.txt": "deep\n",
      "a-b": "dash sorts before a/\n",
      "a.txt": "dot\n",
      "run.sh": { exec: "#!/bin/sh\necho hi\n" },
      link: { symlink: "a/b/c.txt" },
      empty: "",
      "bin.dat": Buffer.from([0, 1, 2, 255, 254, 0, 10]),
      "naïve – ünïcode.txt": "utf8\n",
    });
  });

  test("hashObject matches git hash-object", () => {
    const data = Buffer.from("hello\n");
    assert.equal(hashObject("blob", data), git(root, ["hash-object", "--stdin"], data));
    assert.equal(hashObject("tree", Buffer.alloc(0)), EMPTY_TREE_OID);
  });

  test("every tree of a real repo parses and re-serializes to the same oid (Git order)", () => {
    const trees = [...lsTree(repo.bare, "HEAD")].filter(([, e]) => e.type === "tree").map(([, e]) => e.oid);
    trees.push(git(repo.bare, ["rev-parse", "HEAD^{tree}"]));
    for (const [oid, obj] of catFiles(repo.bare, trees)) {
      const entries = parseTree(obj.data);
      // Shuffle to prove serializeTree sorts.
      const shuffled = [...entries].reverse();
      assert.equal(hashObject("tree", serializeTree(shuffled)), oid);
    }
    const rootEntries = parseTree(
      catFiles(repo.bare, [git(repo.bare, ["rev-parse", "HEAD^{tree}"])])
        .values()
        .next().value!.data,
    );
    const modes = Object.fromEntries(rootEntries.map((e) => [e.name, e.mode]));
    assert.equal(modes["run.sh"], "100755");
    assert.equal(modes.link, "120000");
    assert.equal(modes.a, "40000");
    assert.ok("naïve – ünïcode.txt" in modes);
  });

  test("commit round trip through git, with change-id header, passes fsck --strict", () => {
    const head = repo.head();
    const parsed = parseCommit(catFiles(repo.bare, [head]).get(head)!.data);
    assert.equal(hashObject("commit", serializeCommit(parsed)), head);
    const changeId = newChangeId();
    assert.ok(isChangeId(changeId));
    const data = serializeCommit({
      tree: parsed.tree,
      parents: [head],
      author: sig,
      committer: { ...sig, tz: "-0530" },
      changeId,
      message: "Subject\n\nBody with ünïcode\n",
    });
    const oid = git(repo.bare, ["hash-object", "-w", "-t", "commit", "--stdin"], data);
    assert.equal(oid, hashObject("commit", data));
    git(repo.bare, ["update-ref", "refs/heads/with-change-id", oid]);
    git(repo.bare, ["fsck", "--strict", "--no-dangling"]);
    assert.match(
      git(repo.bare, ["cat-file", "-p", oid]),
      new RegExp(`\ncommitter [^\n]+\nchange-id ${changeId}\n`),
    );
    const back = parseCommit(data);
    assert.equal(back.changeId, changeId);
    assert.deepEqual(back.parents, [head]);
    assert.equal(back.committer.tz, "-0530");
    assert.equal(back.message, "Subject\n\nBody with ünïcode\n");
  });

  test("extra headers (multi-line) round trip", () => {
    const c = {
      tree: EMPTY_TREE_OID,
      parents: [],
      author: sig,
      committer: sig,
      extraHeaders: [["gpgsig", "-----BEGIN-----\nabc\n-----END-----"]] as Array<[string, string]>,
      message: "m\n",
    };
    const data = serializeCommit(c);
    assert.match(data.toString(), /gpgsig -----BEGIN-----\n abc\n -----END-----\n/);
    assert.deepEqual(parseCommit(data), c);
  });

  test("change ids", () => {
    const oid = "0123456789abcdef0123456789abcdef01234567";
    assert.equal(changeIdFromOid(oid), "zyxwvutsrqponmlkzyxwvutsrqponmlk");
    assert.ok(isChangeId(changeIdFromOid(oid)));
    assert.notEqual(newChangeId(), newChangeId());
    assert.ok(!isChangeId("abc"));
    assert.ok(!isChangeId("a".repeat(32)));
  });

  test("bad input is rejected with typed errors", () => {
    assert.throws(
      () => serializeTree([{ mode: "100644", name: "a/b", oid: EMPTY_TREE_OID }]),
      expectCode("INVALID_ARGUMENT"),
    );
    assert.throws(
      () => serializeTree([{ mode: "100644", name: ".git", oid: EMPTY_TREE_OID }]),
      expectCode("INVALID_ARGUMENT"),
    );
    assert.throws(
      () =>
        serializeTree([
          { mode: "100644", name: "x", oid: EMPTY_TREE_OID },
          { mode: "100755", name: "x", oid: EMPTY_TREE_OID },
        ]),
      expectCode("INVALID_ARGUMENT"),
    );
    assert.throws(
      () => serializeCommit({ tree: "nope", parents: [], author: sig, committer: sig, message: "" }),
      expectCode("INVALID_ARGUMENT"),
    );
    assert.throws(
      () =>
        serializeCommit({
          tree: EMPTY_TREE_OID,
          parents: [],
          author: { ...sig, name: "a<b" },
          committer: sig,
          message: "",
        }),
      expectCode("INVALID_ARGUMENT"),
    );
    assert.throws(() => parseTree(Buffer.from("100644 a\0short")), expectCode("CORRUPT_DATA"));
    assert.throws(() => parseCommit(Buffer.from("tree x\n\nmsg")), expectCode("CORRUPT_DATA"));
  });

  test("applyDelta rejects out-of-range copies", () => {
    const base = Buffer.from("0123456789");
    // src size 10, dst size 4, copy offset 8 size 4 → beyond base.
    const bad = Buffer.from([10, 4, 0x91, 8, 4]);
    assert.throws(() => applyDelta(base, bad), expectCode("CORRUPT_DATA"));
    const good = Buffer.from([10, 4, 0x91, 2, 4]);
    assert.equal(applyDelta(base, good).toString(), "2345");
  });
});

describe("pack reader", () => {
  let root: string;
  let repo: TestRepo;
  const fx = fixture({ after }, "pack-reader");
  before(() => {
    root = fx.dir;
    const big = Array.from(
      { length: 400 },
      (_, i) => `line ${i} of a file that changes a little each commit\n`,
    ).join("");
    repo = makeRepo(root, { "big.txt": big, "other/x.txt": "x\n" });
    for (let i = 0; i < 30; i++)
      repo.commit({ "big.txt": `${big}change ${i}\n`.replace(`line ${i} `, `LINE ${i} `) });
    git(repo.bare, ["repack", "-adfq", "--depth=50", "--window=50"]);
  });

  function packOf(args: string[]): Buffer {
    return gitRaw(repo.bare, ["pack-objects", "--stdout", "--revs", "-q", ...args], "refs/heads/main\n");
  }

  for (const [name, args] of [
    ["OFS_DELTA", ["--delta-base-offset"]],
    ["REF_DELTA", []],
  ] as const) {
    test(`${name} pack with deep delta chains parses to exactly git's objects, in any chunking`, () => {
      const pack = packOf([...args]);
      const expected = listObjects(repo.bare, "refs/heads/main");
      const contents = catFiles(
        repo.bare,
        expected.map((e) => e.oid),
      );
      for (const chunk of [1 << 20, 4096, 7]) {
        const objects = parsePack(pack, chunk);
        assert.equal(objects.size, expected.length);
        for (const e of expected) {
          const got = objects.get(e.oid);
          assert.ok(got, `missing ${e.oid}`);
          assert.equal(got.type, e.type);
          assert.ok(got.data.equals(contents.get(e.oid)!.data));
        }
      }
    });
  }

  test("packs streamed with a bounded base cache: every object exact or counted unresolved, bases found by id as by offset", () => {
    const expected = listObjects(repo.bare, "refs/heads/main");
    const contents = catFiles(
      repo.bare,
      expected.map((e) => e.oid),
    );
    const stream = (pack: Buffer, baseCacheBytes: number): number => {
      const got = new Map<string, Buffer>();
      const p = new PackParser({ onObject: (oid, _type, data) => void got.set(oid, data), baseCacheBytes });
      for (let i = 0; i < pack.length; i += 4096) p.push(pack.subarray(i, i + 4096));
      p.end();
      for (const [oid, data] of got) assert.ok(data.equals(contents.get(oid)!.data), oid);
      assert.equal(got.size + p.unresolved, expected.length);
      return p.unresolved;
    };
    const ofs = packOf(["--delta-base-offset"]);
    const ref = packOf([]);
    for (const baseCacheBytes of [8 << 20, 200_000, 2000]) {
      const lost = stream(ofs, baseCacheBytes);
      // The same objects in the same order: a base still held is found by its id as by its offset.
      assert.equal(stream(ref, baseCacheBytes), lost, `cache of ${baseCacheBytes} bytes`);
      if (baseCacheBytes > 1 << 20) assert.equal(lost, 0);
      else assert.ok(lost > 0, "deep chains through a 20 KB file lose bases a small cache dropped");
    }
  });

  test("the base ring: what it returns is exactly what was put, and what was just put is held", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 16, max: 4096 }),
        fc.array(fc.oneof(fc.integer({ min: 0, max: 600 }), fc.constant(-1)), {
          minLength: 1,
          maxLength: 200,
        }),
        (size, ops) => {
          const ring = new BaseRing(size);
          const put = new Map<number, Buffer>();
          const recent: number[] = [];
          let offset = 12;
          for (const op of ops) {
            if (op >= 0) {
              const data = Buffer.from(Array.from({ length: op }, (_, i) => (offset * 31 + i) & 0xff));
              ring.put(offset, "blob", `oid-${offset}`, data);
              put.set(offset, Buffer.from(data));
              recent.push(offset);
              // What was just put is held (when it fits), by offset and by id (the index by id is
              // made at the first lookup by id, here at a random point).
              if (op <= size) assert.ok(ring.at(offset), `put at ${offset}`);
              if (op <= size && offset % 3 === 0) assert.ok(ring.byOid(`oid-${offset}`), `id of ${offset}`);
              offset += 7 + op;
            } else {
              // A use: the oldest recent one, which moves it to the front when it is old.
              for (const o of recent) {
                const got = ring.at(o);
                if (got) {
                  assert.ok(got.data.equals(put.get(o)!), `offset ${o}`);
                  break;
                }
              }
            }
          }
          // Every object still held is exact.
          for (const [o, data] of put) {
            const got = ring.at(o);
            if (got) assert.ok(got.data.equals(data), `offset ${o}`);
            const byId = ring.byOid(`oid-${o}`);
            if (byId) assert.ok(byId.data.equals(data), `oid of ${o}`);
          }
        },
      ),
      { numRuns: 300 },
    );
  });

  test("truncated, corrupted or trailing data is CORRUPT_DATA", () => {
    const pack = packOf(["--delta-base-offset"]);
    for (const cut of [5, 12, 100, pack.length - 21, pack.length - 1]) {
      assert.throws(() => parsePack(pack.subarray(0, cut), 1000), expectCode("CORRUPT_DATA"), `cut ${cut}`);
    }
    for (const at of [0, 9, 30, pack.length >> 1, pack.length - 25, pack.length - 3]) {
      const bad = Buffer.from(pack);
      bad[at] = bad[at]! ^ 0x55;
      assert.throws(() => parsePack(bad, 1000), expectCode("CORRUPT_DATA"), `flip at ${at}`);
    }
    assert.throws(() => parsePack(Buffer.concat([pack, Buffer.from("x")]), 1000), expectCode("CORRUPT_DATA"));
  });

  test("writePack output is accepted by git index-pack", () => {
    const objs = [
      { type: "blob" as const, data: Buffer.from("one\n") },
      { type: "blob" as const, data: Buffer.alloc(100_000, 7) },
      {
        type: "tree" as const,
        data: serializeTree([{ mode: "100644", name: "one", oid: hashObject("blob", Buffer.from("one\n")) }]),
      },
    ];
    const pack = writePack(objs);
    const dir = tempDir();
    try {
      git(dir, ["init", "-q", "--bare"]);
      gitRaw(dir, ["index-pack", "--stdin", "--strict"], pack);
      for (const o of objs) assert.equal(git(dir, ["cat-file", "-t", hashObject(o.type, o.data)]), o.type);
    } finally {
      removeDir(dir);
    }
    assert.equal(parsePack(pack, 333).size, 3);
  });
});

describe("buildTree", () => {
  let root: string;
  let repo: TestRepo;
  const fx = fixture({ after }, "build-tree");
  before(() => {
    root = fx.dir;
    repo = makeRepo(root, {
      "keep/deep/x.txt": "x\n",
      "keep/y.txt": "y\n",
      "edit/a.txt": "a\n",
      "edit/sub/b.txt": "b\n",
      "gone/only.txt": "bye\n",
      "mv/from.txt": "moving\n",
      "tool.sh": "#!/bin/sh\n",
    });
  });

  test("applies add/modify/delete/rename/mode change and loads only touched trees; git agrees", async () => {
    const baseTree = git(repo.bare, ["rev-parse", "HEAD^{tree}"]);
    const all = new Map<Oid, TreeEntry[]>();
    const ls = lsTree(repo.bare, "HEAD");
    for (const oid of [baseTree, ...[...ls.values()].filter((e) => e.type === "tree").map((e) => e.oid)]) {
      all.set(oid, parseTree(catFiles(repo.bare, [oid]).get(oid)!.data));
    }
    const loaded: Oid[] = [];
    const load = (oid: Oid) => {
      loaded.push(oid);
      return all.get(oid)!;
    };
    const blob = (s: string) => {
      const data = Buffer.from(s);
      return { oid: git(repo.bare, ["hash-object", "-w", "--stdin"], data), data };
    };
    const newA = blob("a changed\n");
    const added = blob("brand new\n");
    const built = await buildTree(
      baseTree,
      [
        { action: "upsert", path: "edit/a.txt", mode: "100644", oid: newA.oid },
        { action: "upsert", path: "new/dir/n.txt", mode: "100644", oid: added.oid },
        { action: "delete", path: "gone/only.txt" },
        { action: "delete", path: "mv/from.txt" },
        { action: "upsert", path: "mv/to.txt", mode: "100644", oid: ls.get("mv/from.txt")!.oid },
        { action: "upsert", path: "tool.sh", mode: "100755", oid: ls.get("tool.sh")!.oid },
        { action: "delete", path: "edit/sub" },
        { action: "upsert", path: "moved-keep", mode: "40000", oid: ls.get("keep")!.oid },
        { action: "delete", path: "keep" },
        { action: "delete", path: "not/there.txt" },
      ],
      load,
    );
    // Unchanged subtrees (keep/, keep/deep, edit/sub) were never read.
    assert.ok(!loaded.includes(ls.get("keep")!.oid));
    assert.ok(!loaded.includes(ls.get("keep/deep")!.oid));
    assert.ok(!loaded.includes(ls.get("edit/sub")!.oid));
    for (const t of built.newTrees) git(repo.bare, ["hash-object", "-w", "-t", "tree", "--stdin"], t.data);
    const result = new Map(
      [...lsTree(repo.bare, built.root)]
        .filter(([, e]) => e.type === "blob")
        .map(([p, e]) => [p, `${e.mode} ${e.oid}`]),
    );
    assert.deepEqual(Object.fromEntries(result), {
      "edit/a.txt": `100644 ${newA.oid}`,
      "moved-keep/deep/x.txt": `100644 ${ls.get("keep/deep/x.txt")!.oid}`,
      "moved-keep/y.txt": `100644 ${ls.get("keep/y.txt")!.oid}`,
      "mv/to.txt": `100644 ${ls.get("mv/from.txt")!.oid}`,
      "new/dir/n.txt": `100644 ${added.oid}`,
      "tool.sh": `100755 ${ls.get("tool.sh")!.oid}`,
    });
    git(repo.bare, ["fsck", "--strict", "--no-dangling"]);
  });

  test("two new directories with the same contents are one tree object, written once", async () => {
    const same = git(repo.bare, ["hash-object", "-w", "--stdin"], Buffer.from("same\n"));
    const built = await buildTree(
      null,
      [
        { action: "upsert", path: "copy1/sub/f", mode: "100644", oid: same },
        { action: "upsert", path: "copy2/sub/f", mode: "100644", oid: same },
      ],
      () => [],
    );
    const oids = built.newTrees.map((t) => hashObject("tree", t.data));
    assert.equal(new Set(oids).size, oids.length);
    assert.equal(oids.length, 3); // sub (shared), copy1 = copy2, the root
  });

  test("deleting everything gives the empty tree; bad paths are refused", async () => {
    const baseTree = git(repo.bare, ["rev-parse", "HEAD^{tree}"]);
    const load = (oid: Oid) => parseTree(catFiles(repo.bare, [oid]).get(oid)!.data);
    const names = parseTree(catFiles(repo.bare, [baseTree]).get(baseTree)!.data).map((e) => e.name);
    const built = await buildTree(
      baseTree,
      names.map((path) => ({ action: "delete" as const, path })),
      load,
    );
    assert.equal(built.root, EMPTY_TREE_OID);
    for (const path of ["", "a//b", "../x", "a/./b", ".git/config", "/abs"]) {
      await assert.rejects(
        buildTree(baseTree, [{ action: "delete", path }], load),
        expectCode("INVALID_ARGUMENT"),
        path,
      );
    }
  });
});

describe("buildTree properties", () => {
  /** Flattens a tree to path → "mode oid" using only the trees we have. */
  function flatten(root: Oid, trees: Map<Oid, TreeEntry[]>): Map<string, string> {
    const out = new Map<string, string>();
    const walk = (oid: Oid, prefix: string) => {
      if (oid === EMPTY_TREE_OID) return;
      const entries = trees.get(oid);
      assert.ok(entries, `tree ${oid} was neither in the base nor written`);
      for (const e of entries) {
        if (e.mode === "40000") walk(e.oid, `${prefix}${e.name}/`);
        else out.set(`${prefix}${e.name}`, `${e.mode} ${e.oid}`);
      }
    };
    walk(root, "");
    return out;
  }

  test("random change sequences agree with a path → file model; every tree needed is base or new", async () => {
    const name = fc.constantFrom("a", "b", "c", "a.b", "a-b", "é");
    const path = fc.array(name, { minLength: 1, maxLength: 3 }).map((p) => p.join("/"));
    const oid = fc.constantFrom(...["1", "2", "3"].map((c) => c.repeat(40)));
    const mode = fc.constantFrom("100644" as const, "100755" as const, "120000" as const);
    const change = fc.oneof(
      fc.record({ action: fc.constant("upsert" as const), path, mode, oid }),
      fc.record({ action: fc.constant("delete" as const), path }),
    );
    await fc.assert(
      fc.asyncProperty(
        fc.array(change, { maxLength: 12 }),
        fc.array(change, { maxLength: 12 }),
        async (first, second) => {
          const trees = new Map<Oid, TreeEntry[]>();
          const remember = (objs: { data: Buffer }[]) => {
            for (const t of objs) trees.set(hashObject("tree", t.data), parseTree(t.data));
          };
          const applyModel = (model: Map<string, string>, changes: typeof first) => {
            for (const c of changes) {
              // Anything at or below the path goes; so does a file standing where a parent dir must be.
              for (const k of [...model.keys()])
                if (k === c.path || k.startsWith(`${c.path}/`)) model.delete(k);
              if (c.action === "upsert") {
                const parts = c.path.split("/");
                for (let i = 1; i < parts.length; i++) model.delete(parts.slice(0, i).join("/"));
                model.set(c.path, `${c.mode} ${c.oid}`);
              }
            }
          };
          const a = await buildTree(null, first, (o) => trees.get(o)!);
          remember(a.newTrees);
          const model = new Map<string, string>();
          applyModel(model, first);
          assert.deepEqual(flatten(a.root, trees), model);
          const b = await buildTree(a.root, second, (o) => trees.get(o)!);
          remember(b.newTrees);
          applyModel(model, second);
          assert.deepEqual(flatten(b.root, trees), model);
          if (second.length === 0) assert.equal(b.root, a.root);
        },
      ),
      { numRuns: 300 },
    );
  });
});

test("pktLines encodes many lines as pkt does one by one (UTF-8 lengths included)", () => {
  fc.assert(
    fc.property(fc.array(fc.string({ unit: "grapheme", maxLength: 60 }), { maxLength: 50 }), (lines) => {
      const one = Buffer.concat(lines.map((l) => pkt(l)));
      assert.deepEqual(pktLines(lines), one);
    }),
  );
});
