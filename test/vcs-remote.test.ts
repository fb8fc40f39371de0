import assert from "node:assert/strict";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, describe, test } from "node:test";
import { isMesaError } from "../src/errors.js";
import {
  buildTree,
  type GitObject,
  GitRemote,
  hashObject,
  isChangeId,
  newChangeId,
  type Oid,
  parseCommit,
  serializeCommit,
  signatureNow,
} from "../src/vcs/index.js";
import { fixture } from "./helpers/fixture.js";
import { type GitServer, serveGit } from "./helpers/git-http.js";
import { catFiles, git, listObjects, lsTree, makeBigRepo, makeRepo, type TestRepo } from "./helpers/repos.js";

function expectCode(code: string) {
  return (err: unknown) => {
    assert.ok(isMesaError(err, code as never), `expected ${code}, got ${String(err)}`);
    return true;
  };
}

const FILES = {
  "README.md": "# Test repo\n",
  "src/main.ts": "export const x = 1;\n",
  "src/deep/er/still/file.txt": "deep\n",
  "bin/run": { exec: "#!/bin/sh\necho run\n" },
  "link-to-readme": { symlink: "README.md" },
  "dir-link": { symlink: "src/deep" },
  "empty.txt": "",
  "data.bin": Buffer.from(Array.from({ length: 3000 }, (_, i) => (i * 7919) & 0xff)),
  "ünïcødé/名前.txt": "non-ascii\n",
  "with space.txt": "spaces\n",
};

describe("GitRemote against git http-backend", () => {
  let root: string;
  let server: GitServer;
  let repo: TestRepo;
  let big: { bare: string; head: string };
  let deltas: TestRepo;
  const fx = fixture({ after }, "remote");
  const remote = (
    slug: string,
    extra: Partial<ConstructorParameters<typeof GitRemote>[0]> = {},
    base?: string,
  ) => fx.use(new GitRemote({ url: `${base ?? server.url}/${slug}`, timeoutMs: 20_000, ...extra }));

  before(async () => {
    root = fx.dir;
    repo = makeRepo(root, FILES);
    git(repo.bare, ["tag", "v1"]);
    git(repo.bare, ["symbolic-ref", "HEAD", "refs/heads/main"]);
    big = makeBigRepo(root, 2000, "org/many.git");
    const text = Array.from({ length: 300 }, (_, i) => `line ${i} of a slowly changing file\n`).join("");
    deltas = makeRepo(root, { "doc.txt": text }, "org/deltas.git");
    for (let i = 0; i < 40; i++)
      deltas.commit({ "doc.txt": `${text}edit ${i}\n`.replace(`line ${i} `, `LINE ${i} `) });
    git(deltas.bare, ["repack", "-adfq", "--depth=50", "--window=50"]);
    server = fx.use(await serveGit(root));
  });

  test("capabilities and ls-refs with symrefs and prefixes", async () => {
    const r = remote(repo.slug);
    const caps = await r.capabilities();
    assert.ok(caps.get("fetch")?.split(" ").includes("filter"));
    assert.ok(caps.has("object-info"));
    const all = await r.lsRefs();
    assert.equal(all.head?.target, "refs/heads/main");
    assert.equal(all.head?.oid, repo.head());
    const names = all.refs.map((x) => x.name).sort();
    assert.deepEqual(names, ["refs/heads/main", "refs/tags/v1"]);
    const heads = await r.lsRefs({ prefixes: ["refs/heads/"] });
    assert.deepEqual(
      heads.refs.map((x) => x.name),
      ["refs/heads/main"],
    );
    assert.equal(heads.head?.oid, repo.head());
  });

  test("ls-refs on an empty repository reports an unborn HEAD", async () => {
    const emptyBare = `${root}/org/empty.git`;
    git(root, ["init", "-q", "--bare", "-b", "main", emptyBare]);
    const res = await remote("org/empty.git").lsRefs();
    assert.deepEqual(res.refs, []);
    assert.equal(res.head?.target, "refs/heads/main");
    assert.equal(res.head?.oid, undefined);
  });

  test("fetchCommitTrees returns the commit and all trees in one request, equal to git ls-tree", async () => {
    const r = remote(repo.slug);
    await r.capabilities();
    const before = r.stats.requests;
    const { commit, trees } = await r.fetchCommitTrees(repo.head());
    assert.equal(r.stats.requests - before, 1);
    assert.equal(commit.tree, git(repo.bare, ["rev-parse", "HEAD^{tree}"]));
    const expected = lsTree(repo.bare, "HEAD");
    const expectedTrees = new Set([
      commit.tree,
      ...[...expected.values()].filter((e) => e.type === "tree").map((e) => e.oid),
    ]);
    assert.deepEqual(new Set(trees.keys()), expectedTrees);
    // Walk our trees and compare every path, mode and oid.
    const ours = new Map<string, string>();
    const walk = (oid: Oid, prefix: string) => {
      for (const e of trees.get(oid)!) {
        const path = prefix + e.name;
        ours.set(path, `${e.mode.padStart(6, "0")} ${e.oid}`);
        if (e.mode === "40000") walk(e.oid, `${path}/`);
      }
    };
    walk(commit.tree, "");
    assert.deepEqual(ours, new Map([...expected].map(([p, e]) => [p, `${e.mode} ${e.oid}`])));
  });

  test("objectSizes (object-info) equals git cat-file -s; unknown objects are NOT_FOUND", async () => {
    const r = remote(repo.slug);
    const blobs = listObjects(repo.bare, "HEAD").filter((o) => o.type === "blob");
    const sizes = await r.objectSizes(blobs.map((b) => b.oid));
    assert.equal(sizes.size, blobs.length);
    for (const b of blobs) assert.equal(sizes.get(b.oid), b.size, b.path);
    await assert.rejects(
      r.objectSizes(["1234567890123456789012345678901234567890"]),
      expectCode("NOT_FOUND"),
    );
    await assert.rejects(r.objectSizes(["nothex"]), expectCode("INVALID_ARGUMENT"));
  });

  test("fetchBlobs: 2,000 blobs in bounded batches, each equal to git cat-file", async () => {
    const r = remote("org/many.git");
    const blobs = listObjects(big.bare, big.head).filter((o) => o.type === "blob");
    assert.ok(blobs.length >= 1900, `generated ${blobs.length} distinct blobs`);
    await r.capabilities();
    const before = r.stats.requests;
    const got = await r.fetchBlobs(
      blobs.map((b) => b.oid),
      { batchSize: 300 },
    );
    assert.equal(r.stats.requests - before, Math.ceil(blobs.length / 300));
    const posts = server.requests.filter((q) => q.path === "/org/many.git/git-upload-pack");
    assert.equal(posts.at(-1)?.encoding, "gzip", "large want lists are sent gzip-compressed");
    const expected = catFiles(
      big.bare,
      blobs.map((b) => b.oid),
    );
    assert.equal(got.size, blobs.length);
    for (const [oid, e] of expected) assert.ok(got.get(oid)?.equals(e.data), `blob ${oid} differs`);
    // Sizes of the same 2,000 blobs in one object-info request.
    const s0 = r.stats.requests;
    const sizes = await r.objectSizes(blobs.map((b) => b.oid));
    assert.equal(r.stats.requests - s0, 1);
    for (const b of blobs) assert.equal(sizes.get(b.oid), b.size);
  });

  test("a repacked repository with deep delta chains: every version of a file and full history", async () => {
    const r = remote(deltas.slug);
    const objects = listObjects(deltas.bare, "HEAD");
    const versions = objects.filter((o) => o.type === "blob").map((o) => o.oid);
    assert.ok(versions.length >= 40);
    const expected = catFiles(deltas.bare, versions);
    const got = await r.fetchBlobs(versions);
    for (const [oid, e] of expected) assert.ok(got.get(oid)?.equals(e.data));
    const everything = await r.fetchObjects([deltas.head()]);
    assert.equal(everything.size, objects.length);
    for (const o of objects) assert.equal(everything.get(o.oid)?.type, o.type);
  });

  test("fetching an object the server does not have is a typed error", async () => {
    const r = remote(repo.slug, { retries: 0 });
    await assert.rejects(r.fetchBlobs(["1234567890123456789012345678901234567890"]), expectCode("NOT_FOUND"));
    await assert.rejects(remote("org/missing.git", { retries: 0 }).lsRefs(), expectCode("NOT_FOUND"));
  });

  test("push: a commit and tree built by the client pass git fsck --strict; change-id survives", async () => {
    const r = remote(repo.slug);
    const head = repo.head();
    const { commit, trees } = await r.fetchCommitTrees(head);
    const blob = Buffer.from("written by mesa\n");
    const exec = Buffer.from("#!/bin/sh\necho new\n");
    const built = await buildTree(
      commit.tree,
      [
        { action: "upsert", path: "src/deep/new.txt", mode: "100644", oid: hashObject("blob", blob) },
        { action: "upsert", path: "tools/new.sh", mode: "100755", oid: hashObject("blob", exec) },
        { action: "delete", path: "with space.txt" },
      ],
      (oid) => trees.get(oid)!,
    );
    const changeId = newChangeId();
    const sig = signatureNow("Mesa Test", "mesa@example.com");
    const data = serializeCommit({
      tree: built.root,
      parents: [head],
      author: sig,
      committer: sig,
      changeId,
      message: "Add files from mesa\n",
    });
    const oid = hashObject("commit", data);
    const objects: GitObject[] = [
      { type: "blob", data: blob },
      { type: "blob", data: exec },
      ...built.newTrees,
      { type: "commit", data },
    ];
    await r.push([{ ref: "refs/heads/main", old: head, new: oid }], objects);
    assert.equal(repo.head(), oid);
    git(repo.bare, ["fsck", "--strict", "--no-dangling"]);
    assert.match(git(repo.bare, ["cat-file", "-p", oid]), new RegExp(`\nchange-id ${changeId}\n`));
    assert.match(git(repo.bare, ["log", "-1", "--format=raw"]), new RegExp(`change-id ${changeId}`));
    assert.equal(git(repo.bare, ["show", "HEAD:src/deep/new.txt"]), "written by mesa");
    assert.equal(git(repo.bare, ["ls-tree", "HEAD", "tools/new.sh"]).split(" ")[0], "100755");
    // Reading it back through our own client keeps the header.
    const back = await r.fetchCommitTrees(oid);
    assert.equal(back.commit.changeId, changeId);
    assert.ok(isChangeId(parseCommit(data).changeId!));
  });

  test("CAS: a stale old oid is a CONFLICT naming the ref and its current oid, and changes nothing", async () => {
    const r = remote(repo.slug);
    const current = repo.head();
    const parent = git(repo.bare, ["rev-parse", "HEAD~1"]);
    const sig = signatureNow("Mesa Test", "mesa@example.com");
    const data = serializeCommit({
      tree: git(repo.bare, ["rev-parse", "HEAD~1^{tree}"]),
      parents: [parent],
      author: sig,
      committer: sig,
      message: "stale\n",
    });
    const oid = hashObject("commit", data);
    await assert.rejects(
      r.push([{ ref: "refs/heads/main", old: parent, new: oid }], [{ type: "commit", data }]),
      (err: unknown) => {
        assert.ok(isMesaError(err, "CONFLICT"), String(err));
        assert.deepEqual(err.details, { ref: "refs/heads/main", currentOid: current });
        return true;
      },
    );
    assert.equal(repo.head(), current);
    assert.throws(() => git(repo.bare, ["cat-file", "-e", oid]));
    // Creating a ref that already exists is a conflict too.
    await assert.rejects(
      r.push([{ ref: "refs/heads/main", old: null, new: oid }], [{ type: "commit", data }]),
      expectCode("CONFLICT"),
    );
  });

  test("create and delete refs; an atomic multi-ref push with one stale ref applies nothing", async () => {
    const r = remote(repo.slug);
    const head = repo.head();
    await r.push([{ ref: "refs/heads/feature", old: null, new: head }], []);
    assert.equal(git(repo.bare, ["rev-parse", "refs/heads/feature"]), head);
    await assert.rejects(
      r.push(
        [
          { ref: "refs/heads/other", old: null, new: head },
          { ref: "refs/heads/feature", old: "1234567890123456789012345678901234567890", new: null },
        ],
        [],
      ),
      expectCode("CONFLICT"),
    );
    assert.throws(() => git(repo.bare, ["rev-parse", "--verify", "-q", "refs/heads/other"]));
    await r.push([{ ref: "refs/heads/feature", old: head, new: null }], []);
    assert.throws(() => git(repo.bare, ["rev-parse", "--verify", "-q", "refs/heads/feature"]));
    await assert.rejects(
      r.push([{ ref: "bad ref", old: null, new: head }], []),
      expectCode("INVALID_ARGUMENT"),
    );
  });

  test("a server without filter support still gives trees and sizes (documented fallback)", async () => {
    const noFilter = await serveGit(root, { config: { "uploadpack.allowFilter": "false" } });
    try {
      const r = remote(repo.slug, {}, noFilter.url);
      assert.ok(!(await r.capabilities()).get("fetch")?.includes("filter"));
      const { commit, trees } = await r.fetchCommitTrees(repo.head());
      assert.equal(commit.tree, git(repo.bare, ["rev-parse", "HEAD^{tree}"]));
      const expected = lsTree(repo.bare, "HEAD");
      assert.equal(trees.size, [...expected.values()].filter((e) => e.type === "tree").length + 1);
      const blobs = [...expected.values()].filter((e) => e.type === "blob");
      const reqs = r.stats.requests;
      const sizes = await r.objectSizes(blobs.map((b) => b.oid));
      assert.equal(r.stats.requests, reqs, "sizes came from the fallback fetch, no new request");
      for (const b of blobs)
        assert.equal(sizes.get(b.oid), Number(git(repo.bare, ["cat-file", "-s", b.oid])));
      await assert.rejects(r.fetchObjects([repo.head()], { filter: "blob:none" }), expectCode("PROTOCOL"));
    } finally {
      await noFilter.close();
    }
  });
});

describe("GitRemote authentication and endpoints", () => {
  let root: string;
  let server: GitServer;
  let repo: TestRepo;
  const fx = fixture({ after }, "remote-auth");
  before(async () => {
    root = fx.dir;
    repo = makeRepo(root, { "a.txt": "a\n" });
    server = fx.use(await serveGit(root, { password: "mesa_live_secretsecret" }));
  });

  test("no or wrong credential is UNAUTHORIZED without retries and without leaking the secret", async () => {
    for (const credential of [undefined, "wrong-key"]) {
      const r = new GitRemote({ url: `${server.url}/${repo.slug}`, credential, retries: 3 });
      const n = server.requests.length;
      await assert.rejects(r.lsRefs(), (err: unknown) => {
        assert.ok(isMesaError(err, "UNAUTHORIZED"), String(err));
        assert.ok(!JSON.stringify({ m: err.message, d: err.details, h: err.hint }).includes("wrong-key"));
        return true;
      });
      assert.equal(server.requests.length - n, 1, "4xx is never retried");
      await r.close();
    }
    const ok = new GitRemote({ url: `${server.url}/${repo.slug}`, credential: "mesa_live_secretsecret" });
    assert.equal((await ok.lsRefs()).head?.oid, repo.head());
    await ok.close();
  });

  test("a URL that is not a smart Git endpoint is a PROTOCOL error", async () => {
    const html = http.createServer((_req, res) => {
      res.writeHead(200, { "content-type": "text/html" });
      res.end("<html>login</html>");
    });
    await new Promise<void>((resolve) => html.listen(0, "127.0.0.1", resolve));
    const r = new GitRemote({ url: `http://127.0.0.1:${(html.address() as AddressInfo).port}/org/repo.git` });
    try {
      await assert.rejects(r.lsRefs(), expectCode("PROTOCOL"));
      await assert.rejects(
        r.push([{ ref: "refs/heads/x", old: null, new: "1".repeat(40) }], []),
        expectCode("PROTOCOL"),
      );
    } finally {
      await r.close();
      await new Promise((resolve) => html.close(resolve));
    }
  });

  test("credentials in the URL are refused", () => {
    assert.throws(
      () => new GitRemote({ url: `http://u:p@127.0.0.1:1/${repo.slug}` }),
      expectCode("INVALID_ARGUMENT"),
    );
  });
});
