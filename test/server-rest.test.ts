/**
 * REST v1 of `mesa serve` (compat.md §6) against a real server process, through the typed
 * RestClient and raw HTTP for the error shapes. Results are cross-checked with the real git.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { after, before, describe, it } from "node:test";
import { isMesaError } from "../src/errors.js";
import { type Change, RestClient } from "../src/vcs/rest.js";
import { fixture } from "./helpers/fixture.js";
import type { ServeHandle } from "./helpers/serve.js";

const ROOT = "z".repeat(32);
const b64 = (s: string) => Buffer.from(s, "utf8").toString("base64");

// biome-ignore lint/suspicious/noExplicitAny: response bodies are checked field by field
type Json = any;

let srv: ServeHandle;
let api: RestClient;

async function http(
  method: string,
  path: string,
  opts: { key?: string | null; body?: unknown; raw?: string; headers?: Record<string, string> } = {},
) {
  const headers: Record<string, string> = { ...opts.headers };
  const key = opts.key === undefined ? srv.adminKey : opts.key;
  if (key) headers.authorization = `Bearer ${key}`;
  let body: string | undefined;
  if (opts.raw !== undefined) {
    body = opts.raw;
    headers["content-type"] = "application/json";
  } else if (opts.body !== undefined) {
    body = JSON.stringify(opts.body);
    headers["content-type"] = "application/json";
  }
  const res = await fetch(`${srv.url}${path}`, {
    method,
    headers,
    body,
    signal: AbortSignal.timeout(20_000),
  });
  const text = await res.text();
  let json: Json;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: res.status, json, text, headers: res.headers };
}

function assertError(r: { status: number; json: Json }, status: number, code?: string) {
  assert.equal(r.status, status, JSON.stringify(r.json));
  assert.equal(typeof r.json?.error?.code, "string");
  assert.equal(typeof r.json?.error?.message, "string");
  if (code) assert.equal(r.json.error.code, code);
}

async function rejectsWith(p: Promise<unknown>, code: string) {
  await assert.rejects(p, (e: unknown) => isMesaError(e) && e.code === code);
}

function bareGit(repo: string, args: string[]): string {
  return execFileSync("git", ["--git-dir", `${srv.dataDir}/repos/${srv.org}/${repo}.git`, ...args], {
    encoding: "utf8",
  }).trim();
}

async function collect<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of it) out.push(x);
  return out;
}

const suite = fixture({ after }, "server-rest");

before(async () => {
  srv = await suite.serve();
  api = suite.use(new RestClient({ serviceUrl: srv.url, credential: srv.adminKey, timeoutMs: 20_000 }));
});

describe("whoami and auth basics", () => {
  it("whoami describes the admin key", async () => {
    const me = await api.whoami();
    assert.equal(me.org.slug, "local");
    assert.equal(me.org.name, "local");
    assert.match(me.org.id, /^org_/);
    assert.match(me.key_id, /^[a-z0-9]{16}$/);
    assert.equal(me.key_name, "admin");
    assert.deepEqual(me.scopes, ["read", "write", "admin"]);
  });
  it("no or garbage credentials are 401 without detail", async () => {
    assertError(await http("GET", "/v1/whoami", { key: null }), 401, "UNAUTHORIZED");
    assertError(await http("GET", "/v1/whoami", { key: "garbage" }), 401, "UNAUTHORIZED");
    assertError(await http("GET", "/v1/local/repos", { key: `${srv.adminKey}x` }), 401, "UNAUTHORIZED");
    const r = await http("GET", "/v1/whoami", { key: null });
    assert.deepEqual(Object.keys(r.json.error).sort(), ["code", "message"]);
  });
  it("another org is 403; unknown routes 404", async () => {
    assertError(await http("GET", "/v1/other/repos"), 403, "FORBIDDEN");
    assertError(await http("GET", "/v1/other/x/bookmarks"), 403, "FORBIDDEN");
    assertError(await http("GET", "/nothing/here/at/all/x"), 404);
  });
});

describe("repos", () => {
  it("create, get, list with pagination, delete", async () => {
    const r = await api.createRepo("local", "alpha");
    assert.deepEqual(Object.keys(r).sort(), [
      "created_at",
      "default_bookmark",
      "head_change_id",
      "id",
      "name",
      "org",
    ]);
    assert.equal(r.name, "alpha");
    assert.equal(r.org, "local");
    assert.equal(r.default_bookmark, "main");
    assert.equal(r.head_change_id, ROOT);
    assert.ok(!Number.isNaN(Date.parse(r.created_at)));
    const b = await api.createRepo("local", "beta", "trunk");
    assert.equal(b.default_bookmark, "trunk");
    assert.equal(bareGit("beta", ["symbolic-ref", "HEAD"]), "refs/heads/trunk");
    await api.createRepo("local", "gamma");
    assert.deepEqual(await api.getRepo("local", "alpha"), r);

    const p1 = await http("GET", "/v1/local/repos?limit=2");
    assert.equal(p1.status, 200);
    assert.equal(p1.json.repos.length, 2);
    assert.equal(p1.json.has_more, true);
    assert.equal(typeof p1.json.next_cursor, "string");
    const p2 = await http("GET", `/v1/local/repos?limit=2&cursor=${p1.json.next_cursor}`);
    assert.equal(p2.json.has_more, false);
    assert.equal(p2.json.next_cursor, null);
    const names = [...p1.json.repos, ...p2.json.repos].map((x: { name: string }) => x.name);
    assert.ok(["alpha", "beta", "gamma"].every((n) => names.includes(n)));
    assert.ok((await collect(api.listRepos("local"))).some((x) => x.name === "gamma"));

    const del = await api.deleteRepo("local", "gamma");
    assert.equal(del.name, "gamma");
    await rejectsWith(api.getRepo("local", "gamma"), "NOT_FOUND");
    await rejectsWith(api.deleteRepo("local", "gamma"), "NOT_FOUND");
  });
  it("rejects bad names, reserved names, duplicates and bad pagination", async () => {
    assertError(await http("POST", "/v1/local/repos", { body: { name: "alpha" } }), 409);
    for (const name of ["../etc", "a/b", ".hidden", "x.git", "", "a".repeat(101), "-x"]) {
      assertError(await http("POST", "/v1/local/repos", { body: { name } }), 400, "BAD_REQUEST");
    }
    assertError(await http("POST", "/v1/local/repos", { body: { name: "repos" } }), 400);
    assertError(await http("POST", "/v1/local/repos", { body: {} }), 400);
    assertError(await http("POST", "/v1/local/repos", { body: { name: "ok", extra: 1 } }), 400);
    assertError(await http("POST", "/v1/local/repos", { raw: "{not json" }), 400);
    assertError(
      await http("POST", "/v1/local/repos", { body: { name: "ok2", default_bookmark: "a..b" } }),
      400,
    );
    assertError(await http("GET", "/v1/local/repos?limit=101"), 400);
    assertError(await http("GET", "/v1/local/repos?limit=0"), 400);
    assertError(await http("GET", "/v1/local/repos?cursor=zzz"), 400);
    assertError(await http("GET", "/v1/local/nope"), 404, "NOT_FOUND");
    assertError(await http("GET", "/v1/local/..%2F..%2Fetc"), 404);
  });
});

describe("changes, bookmarks, content", () => {
  let c1: Change;
  let c2: Change;
  it("POST /changes builds a commit from files; GET /changes/{id}", async () => {
    await api.createRepo("local", "work");
    c1 = await api.createChange("local", "work", {
      base_change_id: ROOT,
      message: "first",
      author: { name: "Ada", email: "ada@example.com" },
      files: [
        { path: "README.md", content: b64("hello\n") },
        { path: "src/run.sh", content: b64("#!/bin/sh\necho hi\n"), mode: "100755" },
        { path: "link", content: b64("README.md"), mode: "120000" },
      ],
    });
    assert.match(c1.id, /^[k-z]{32}$/);
    assert.match(c1.current_commit_oid, /^[0-9a-f]{40}$/);
    assert.equal(c1.message, "first\n");
    assert.equal(c1.author.name, "Ada");
    assert.deepEqual(c1.parents, [ROOT]);
    assert.deepEqual(Object.keys(c1).sort(), [
      "author",
      "committer",
      "created_at",
      "current_commit_oid",
      "id",
      "message",
      "parents",
      "updated_at",
    ]);
    assert.deepEqual(await api.getChange("local", "work", c1.id), c1);
    // The commit carries the change-id header and passes git's strictest check.
    assert.match(
      bareGit("work", ["cat-file", "commit", c1.current_commit_oid]),
      new RegExp(`^change-id ${c1.id}$`, "m"),
    );
    assert.equal(bareGit("work", ["rev-parse", `refs/mesa/changes/${c1.id}`]), c1.current_commit_oid);
    assert.equal(bareGit("work", ["show", `${c1.current_commit_oid}:src/run.sh`]), "#!/bin/sh\necho hi");
    assert.match(
      bareGit("work", ["ls-tree", "-r", c1.current_commit_oid]),
      /^100755 blob \S+\tsrc\/run.sh$/m,
    );
    assert.match(bareGit("work", ["ls-tree", "-r", c1.current_commit_oid]), /^120000 blob \S+\tlink$/m);

    c2 = await api.createChange("local", "work", {
      base_change_id: c1.id,
      message: "second",
      files: [
        { path: "README.md", content: b64("hello again\n") },
        { path: "link", action: "delete" },
      ],
    });
    assert.deepEqual(c2.parents, [c1.id]);
    execFileSync("git", [
      "--git-dir",
      `${srv.dataDir}/repos/local/work.git`,
      "fsck",
      "--strict",
      "--no-dangling",
    ]);
  });
  it("rejects bad change requests", async () => {
    await rejectsWith(api.getChange("local", "work", "k".repeat(32)), "NOT_FOUND");
    assertError(await http("GET", "/v1/local/work/changes/notanid"), 400);
    assertError(await http("POST", "/v1/local/work/changes", { body: { base_change_id: "x" } }), 400);
    for (const path of ["../x", "/abs", "a//b", ".git/config", "a/./b"]) {
      assertError(
        await http("POST", "/v1/local/work/changes", {
          body: { base_change_id: c1.id, files: [{ path, content: "" }] },
        }),
        400,
      );
    }
    assertError(
      await http("POST", "/v1/local/work/changes", {
        body: { base_change_id: c1.id, files: [{ path: "nope", action: "delete" }] },
      }),
      400,
    );
    assertError(
      await http("POST", "/v1/local/work/changes", {
        body: { base_change_id: c1.id, files: [{ path: "a", content: "!!!" }] },
      }),
      400,
    );
  });
  it("PATCH amends with the same change id; a stale base_commit_oid is 409", async () => {
    const amended = await api.updateChange("local", "work", c2.id, {
      message: "second, amended",
      base_commit_oid: c2.current_commit_oid,
      files: [{ path: "NEW.txt", content: b64("new\n") }],
    });
    assert.equal(amended.id, c2.id);
    assert.notEqual(amended.current_commit_oid, c2.current_commit_oid);
    assert.equal(amended.message, "second, amended\n");
    assert.deepEqual(amended.parents, [c1.id]);
    const stale = await http("PATCH", `/v1/local/work/changes/${c2.id}`, {
      body: { message: "x", base_commit_oid: c2.current_commit_oid },
    });
    assertError(stale, 409);
    assert.equal(bareGit("work", ["rev-parse", `refs/mesa/changes/${c2.id}`]), amended.current_commit_oid);
    c2 = amended;
  });
  it("bookmarks: create, list with glob, move forward only, delete", async () => {
    const bm = await api.createBookmark("local", "work", "main", c1.id);
    assert.deepEqual(bm, { name: "main", change_id: c1.id, is_default: true });
    await rejectsWith(api.createBookmark("local", "work", "main", c1.id), "CONFLICT");
    await api.createBookmark("local", "work", "feat/x", c2.id);
    assert.deepEqual(
      (await collect(api.listBookmarks("local", "work"))).map((b) => b.name),
      ["feat/x", "main"],
    );
    assert.deepEqual(
      (await collect(api.listBookmarks("local", "work", "feat/*"))).map((b) => b.name),
      ["feat/x"],
    );
    const repo = await api.getRepo("local", "work");
    assert.equal(repo.head_change_id, c1.id);

    const moved = await api.moveBookmark("local", "work", "main", c2.id);
    assert.deepEqual(moved, { name: "main", change_id: c2.id, is_default: true, from_change_id: c1.id });
    const back = await http("PATCH", "/v1/local/work/bookmarks/main", { body: { change_id: c1.id } });
    assertError(back, 409, "NOT_FAST_FORWARD");
    assert.equal(bareGit("work", ["rev-parse", "refs/heads/main"]), c2.current_commit_oid);
    const forced = await api.moveBookmark("local", "work", "main", c1.id, { allowBackwards: true });
    assert.equal(forced.from_change_id, c2.id);
    await api.moveBookmark("local", "work", "main", c2.id);
    await rejectsWith(api.moveBookmark("local", "work", "nope", c2.id), "NOT_FOUND");
    await rejectsWith(api.moveBookmark("local", "work", "main", "k".repeat(32)), "NOT_FOUND");

    await rejectsWith(api.deleteBookmark("local", "work", "main"), "CONFLICT");
    const del = await api.deleteBookmark("local", "work", "feat/x");
    assert.equal(del.name, "feat/x");
    await rejectsWith(api.deleteBookmark("local", "work", "feat/x"), "NOT_FOUND");
    assertError(
      await http("POST", "/v1/local/work/bookmarks", { body: { name: "bad..name", change_id: c1.id } }),
      400,
    );
  });
  it("changes list follows a bookmark's history with pagination", async () => {
    const all = await collect(api.listChanges("local", "work"));
    assert.deepEqual(
      all.map((c) => c.id),
      [c2.id, c1.id],
    );
    const p1 = await http("GET", "/v1/local/work/changes?bookmark=main&limit=1");
    assert.equal(p1.json.changes.length, 1);
    assert.equal(p1.json.has_more, true);
    const p2 = await http(
      "GET",
      `/v1/local/work/changes?bookmark=main&limit=1&cursor=${p1.json.next_cursor}`,
    );
    assert.equal(p2.json.changes[0].id, c1.id);
    assert.equal(p2.json.has_more, false);
    assertError(await http("GET", "/v1/local/work/changes?bookmark=nope"), 404);
  });
  it("content: files, symlinks, directories with depth, raw bytes", async () => {
    const file = await api.content("local", "work", { path: "README.md" });
    assert.equal(file.type, "file");
    if (file.type !== "file" && file.type !== "symlink") throw new Error("unreachable");
    assert.equal(Buffer.from(file.content, "base64").toString(), "hello again\n");
    assert.equal(file.size, 12);
    assert.equal(file.mode, "100644");
    assert.equal(file.encoding, "base64");
    assert.equal(file.name, "README.md");
    assert.equal(file.sha, bareGit("work", ["rev-parse", "main:README.md"]));
    const link = await api.content("local", "work", { path: "link", changeId: c1.id });
    assert.equal(link.type, "symlink");
    if (link.type === "symlink") {
      assert.equal(link.mode, "120000");
      assert.equal(Buffer.from(link.content, "base64").toString(), "README.md");
    }
    const root = await api.content("local", "work");
    assert.equal(root.type, "dir");
    if (root.type === "dir") {
      assert.equal(root.child_count, 3);
      assert.deepEqual(root.entries.map((e) => e.path).sort(), ["NEW.txt", "README.md", "src"]);
      assert.equal(root.entries.find((e) => e.name === "src")?.type, "dir");
    }
    const deep = await api.content("local", "work", { depth: 2 });
    if (deep.type === "dir") {
      const run = deep.entries.find((e) => e.path === "src/run.sh");
      assert.equal(run?.mode, "100755");
      assert.equal(run?.size, 18);
    }
    const sub = await api.content("local", "work", { path: "src" });
    assert.equal(sub.type, "dir");
    const raw = await api.contentRaw("local", "work", "src/run.sh");
    assert.equal(raw.toString(), "#!/bin/sh\necho hi\n");
    await rejectsWith(api.content("local", "work", { path: "missing" }), "NOT_FOUND");
    assertError(await http("GET", "/v1/local/work/content?depth=11"), 400);
    assertError(await http("GET", "/v1/local/work/content?path=../x"), 400);
    assertError(await http("GET", "/v1/local/alpha/content"), 404);
  });
});

describe("concurrency and merges", () => {
  it("two concurrent moves of one bookmark: one wins, the other is 409", async () => {
    await api.createRepo("local", "race");
    const base = await api.createChange("local", "race", {
      base_change_id: ROOT,
      files: [{ path: "a", content: b64("0") }],
    });
    await api.createBookmark("local", "race", "main", base.id);
    for (let round = 0; round < 5; round++) {
      const tip = bareGit("race", ["rev-parse", "refs/heads/main"]);
      const tipId = (await collect(api.listChanges("local", "race")))[0]!.id;
      const a = await api.createChange("local", "race", {
        base_change_id: tipId,
        files: [{ path: "a", content: b64(`a${round}`) }],
      });
      const b = await api.createChange("local", "race", {
        base_change_id: tipId,
        files: [{ path: "a", content: b64(`b${round}`) }],
      });
      const [ra, rb] = await Promise.all([
        http("PATCH", "/v1/local/race/bookmarks/main", { body: { change_id: a.id } }),
        http("PATCH", "/v1/local/race/bookmarks/main", { body: { change_id: b.id } }),
      ]);
      assert.deepEqual([ra.status, rb.status].sort(), [200, 409], `${ra.text} ${rb.text}`);
      const winner = ra.status === 200 ? a : b;
      assert.equal(bareGit("race", ["rev-parse", "refs/heads/main"]), winner.current_commit_oid);
      assert.notEqual(tip, winner.current_commit_oid);
    }
  });
  it("merge: no-op, fast-forward, merge commit, and conflict with nothing persisted", async () => {
    await api.createRepo("local", "merge");
    const base = await api.createChange("local", "merge", {
      base_change_id: ROOT,
      files: [
        { path: "a.txt", content: b64("a\n") },
        { path: "b.txt", content: b64("b\n") },
      ],
    });
    await api.createBookmark("local", "merge", "main", base.id);
    const f1 = await api.createChange("local", "merge", {
      base_change_id: base.id,
      files: [{ path: "a.txt", content: b64("A\n") }],
    });
    await api.createBookmark("local", "merge", "f1", f1.id);

    const noop = await api.mergeBookmarks("local", "merge", { target: "f1", source: "main" });
    assert.equal(noop.merge_type, "no_op");
    assert.equal(noop.commit_oid, f1.current_commit_oid);

    const ff = await api.mergeBookmarks("local", "merge", {
      target: "main",
      source: "f1",
      delete_source: true,
    });
    assert.equal(ff.merge_type, "fast_forward");
    assert.equal(ff.change_id, f1.id);
    assert.equal(ff.source_deleted, true);
    assert.equal(bareGit("merge", ["rev-parse", "refs/heads/main"]), f1.current_commit_oid);
    assert.equal(bareGit("merge", ["for-each-ref", "refs/heads/f1"]), "");

    const f2 = await api.createChange("local", "merge", {
      base_change_id: base.id,
      files: [{ path: "b.txt", content: b64("B\n") }],
    });
    await api.createBookmark("local", "merge", "f2", f2.id);
    const mc = await api.mergeBookmarks("local", "merge", {
      target: "main",
      source: "f2",
      message: "merge f2",
    });
    assert.equal(mc.merge_type, "merge_commit");
    assert.match(mc.change_id, /^[k-z]{32}$/);
    assert.equal(bareGit("merge", ["rev-parse", "refs/heads/main"]), mc.commit_oid);
    assert.equal(
      bareGit("merge", ["rev-list", "--parents", "-n1", mc.commit_oid]),
      `${mc.commit_oid} ${f1.current_commit_oid} ${f2.current_commit_oid}`,
    );
    assert.equal(bareGit("merge", ["show", `${mc.commit_oid}:a.txt`]), "A");
    assert.equal(bareGit("merge", ["show", `${mc.commit_oid}:b.txt`]), "B");
    const merged = await api.getChange("local", "merge", mc.change_id);
    assert.deepEqual(merged.parents, [f1.id, f2.id]);

    // Conflict: both sides change a.txt.
    const c1 = await api.createChange("local", "merge", {
      base_change_id: mc.change_id,
      files: [{ path: "a.txt", content: b64("one\n") }],
    });
    const c2 = await api.createChange("local", "merge", {
      base_change_id: mc.change_id,
      files: [{ path: "a.txt", content: b64("two\n") }],
    });
    await api.createBookmark("local", "merge", "c1", c1.id);
    await api.createBookmark("local", "merge", "c2", c2.id);
    const refsBefore = bareGit("merge", ["for-each-ref"]);
    const objectsBefore = bareGit("merge", ["count-objects", "-v"]);
    const conflict = await http("POST", "/v1/local/merge/bookmarks/merge", {
      body: { target: "c1", source: "c2" },
    });
    assertError(conflict, 409, "MERGE_CONFLICT");
    assert.deepEqual(conflict.json.error.details?.conflicting_paths, ["a.txt"]);
    assert.equal(bareGit("merge", ["for-each-ref"]), refsBefore);
    assert.equal(bareGit("merge", ["count-objects", "-v"]), objectsBefore);
    await rejectsWith(api.mergeBookmarks("local", "merge", { target: "c1", source: "nope" }), "NOT_FOUND");
  });
});

describe("api keys", () => {
  it("create (shown once), list (never the secret), scope and repo limits, revoke", async () => {
    const created = await http("POST", "/v1/local/api-keys", {
      body: { name: "ci", scopes: ["read"], repos: ["local/work"], expires_in_seconds: 3600 },
    });
    assert.equal(created.status, 201);
    assert.match(created.json.key, /^mesa_live_[a-z0-9]{16}_[A-Za-z0-9]{40}$/);
    assert.deepEqual(created.json.repos, ["local/work"]);
    assert.ok(Date.parse(created.json.expires_at) > Date.now());
    const key = created.json.key as string;

    const listed = await http("GET", "/v1/local/api-keys");
    assert.equal(listed.status, 200);
    assert.ok(!listed.text.includes(key));
    assert.ok(!listed.text.includes(key.slice(-40)));
    assert.ok(listed.json.api_keys.some((k: { id: string }) => k.id === created.json.id));

    const ro = new RestClient({ serviceUrl: srv.url, credential: key });
    try {
      assert.deepEqual((await ro.whoami()).scopes, ["read"]);
      assert.equal((await ro.getRepo("local", "work")).name, "work");
      await rejectsWith(ro.getRepo("local", "alpha"), "FORBIDDEN");
      assert.deepEqual(
        (await collect(ro.listRepos("local"))).map((r) => r.name),
        ["work"],
      );
      await rejectsWith(ro.createRepo("local", "zzz"), "FORBIDDEN");
      await rejectsWith(ro.createBookmark("local", "work", "nope", ROOT), "FORBIDDEN");
      assertError(await http("GET", "/v1/local/api-keys", { key }), 403);
      assertError(await http("POST", "/v1/local/api-keys", { key, body: { scopes: ["read"] } }), 403);

      assertError(await http("POST", "/v1/local/api-keys", { body: { scopes: ["root"] } }), 400);
      assertError(
        await http("POST", "/v1/local/api-keys", { body: { scopes: ["read"], repos: ["other/x"] } }),
        400,
      );
      assertError(await http("POST", "/v1/local/api-keys", { body: { scopes: [] } }), 400);

      const revoked = await http("DELETE", `/v1/local/api-keys/${created.json.id}`);
      assert.equal(revoked.status, 200);
      assert.equal(revoked.json.revoked, true);
      await rejectsWith(ro.whoami(), "UNAUTHORIZED");
      assertError(await http("DELETE", "/v1/local/api-keys/nope"), 404);
    } finally {
      await ro.close();
    }
  });
});
