/**
 * The real `git` CLI against a real `mesa serve`: clone, partial fetch, push, change indexing,
 * gzip + protocol v2, the auth matrix for REST and Git (each failure leaves the disk as it
 * was), tokens from `mesa token create`, `mesa serve import`, restart and shutdown.
 */
import assert from "node:assert/strict";
import { execFile, execFileSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import { readdir, readFile } from "node:fs/promises";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { gzipSync } from "node:zlib";
import { generatePrivateKey } from "../src/auth/keys.js";
import { mintFromApiKey, mintFromPrivateKey } from "../src/auth/tokens.js";
import { GitRemote } from "../src/vcs/index.js";
import { changeIdFromOid } from "../src/vcs/objects.js";
import { RestClient } from "../src/vcs/rest.js";
import { fixture } from "./helpers/fixture.js";
import { waitFor } from "./helpers/mount.js";
import { runMesa, type ServeHandle } from "./helpers/serve.js";

const GIT_ENV = {
  ...process.env,
  GIT_TERMINAL_PROMPT: "0",
  GIT_CONFIG_NOSYSTEM: "1",
  GIT_CONFIG_GLOBAL: "/dev/null",
  GIT_AUTHOR_NAME: "Test",
  GIT_AUTHOR_EMAIL: "test@example.com",
  GIT_COMMITTER_NAME: "Test",
  GIT_COMMITTER_EMAIL: "test@example.com",
};

let srv: ServeHandle;
let api: RestClient;
let work: string;

function gitSync(cwd: string, args: string[], input?: string): string {
  return execFileSync("git", args, { cwd, env: GIT_ENV, encoding: "utf8", input, timeout: 60_000 }).trim();
}

/** Runs git; never throws: the exit code and stderr are checked by the caller. */
function gitRun(cwd: string, args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile("git", args, { cwd, env: GIT_ENV, timeout: 60_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === "number" ? err.code : 1) : 0, stdout, stderr });
    });
  });
}

function remote(credential: string | null, repo = "app"): string {
  const host = srv.url.replace(/^http:\/\//, "");
  return credential === null
    ? `${srv.url}/local/${repo}.git`
    : `http://t:${encodeURIComponent(credential)}@${host}/local/${repo}.git`;
}

async function status(
  method: string,
  urlPath: string,
  credential: string | null,
  body?: unknown,
): Promise<number> {
  const headers: Record<string, string> = {};
  if (credential !== null) headers.authorization = `Bearer ${credential}`;
  if (body !== undefined) headers["content-type"] = "application/json";
  const res = await fetch(`${srv.url}${urlPath}`, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(20_000),
  });
  await res.arrayBuffer();
  return res.status;
}

/** Everything a request could change: every ref of every repo, every object file, the state file. */
async function diskSnapshot(): Promise<string> {
  const parts: string[] = [await readFile(path.join(srv.dataDir, "state.json"), "utf8")];
  const org = path.join(srv.dataDir, "repos", "local");
  for (const repo of (await readdir(org)).sort()) {
    const dir = path.join(org, repo);
    parts.push(repo, gitSync(dir, ["for-each-ref"]));
    const objects = execFileSync("find", [path.join(dir, "objects"), "-type", "f"], { encoding: "utf8" });
    parts.push(objects.split("\n").sort().join("\n"));
  }
  return parts.join("\n---\n");
}

const suite = fixture({ after }, "git");

before(async () => {
  srv = await suite.serve();
  api = suite.use(new RestClient({ serviceUrl: srv.url, credential: srv.adminKey, timeoutMs: 20_000 }));
  await api.createRepo("local", "app");
  await api.createRepo("local", "other");
  work = suite.dir;
  gitSync(work, ["init", "-q", "-b", "main", "src"]);
  const src = path.join(work, "src");
  gitSync(src, ["config", "core.autocrlf", "false"]);
  for (let i = 0; i < 3; i++) {
    execFileSync(
      "sh",
      ["-c", `mkdir -p dir && echo "file ${i}" > f.txt && head -c 20000 /dev/urandom > dir/big.bin`],
      { cwd: src },
    );
    gitSync(src, ["add", "-A"]);
    gitSync(src, ["commit", "-q", "-m", `commit ${i}`]);
  }
});

describe("git smart HTTP", () => {
  it("push, then the REST view shows the commits as changes", async () => {
    const src = path.join(work, "src");
    const r = await gitRun(src, ["push", remote(srv.adminKey), "main"]);
    assert.equal(r.code, 0, r.stderr);
    const head = gitSync(src, ["rev-parse", "HEAD"]);
    const changes = [];
    for await (const c of api.listChanges("local", "app")) changes.push(c);
    assert.equal(changes.length, 3);
    assert.equal(changes[0]!.current_commit_oid, head);
    assert.equal(changes[0]!.id, changeIdFromOid(head));
    assert.equal((await api.getRepo("local", "app")).head_change_id, changeIdFromOid(head));
    assert.equal((await api.getChange("local", "app", changeIdFromOid(head))).message, "commit 2\n");
  });

  it("a push's commits are indexed as changes before the pusher hears back", async () => {
    // Pushed with the daemon's own client, which is done once it has read the report (git waits
    // for the end of the response); read straight from the server's disk, as a lookup through
    // the server would index again on a miss.
    const src = path.join(work, "src");
    const bare = path.join(srv.dataDir, "repos", "local", "app.git");
    const pusher = suite.use(
      new GitRemote({ url: remote(null), credential: srv.adminKey, timeoutMs: 20_000 }),
    );
    const raw = (type: string, rev: string) => ({
      type: type as "blob" | "tree" | "commit",
      data: execFileSync("git", ["cat-file", type, rev], { cwd: src, env: GIT_ENV }),
    });
    for (let i = 0; i < 5; i++) {
      const old = gitSync(src, ["rev-parse", "HEAD"]);
      execFileSync("sh", ["-c", `echo "indexed ${i}" > indexed.txt`], { cwd: src });
      gitSync(src, ["add", "-A"]);
      gitSync(src, ["commit", "-q", "-m", `indexed ${i}`]);
      const head = gitSync(src, ["rev-parse", "HEAD"]);
      await pusher.push(
        [{ ref: "refs/heads/main", old, new: head }],
        [raw("blob", "HEAD:indexed.txt"), raw("tree", "HEAD^{tree}"), raw("commit", "HEAD")],
      );
      const ref = `refs/mesa/changes/${changeIdFromOid(head)}`;
      assert.equal(gitSync(bare, ["for-each-ref", "--format=%(objectname)", ref]), head, `push ${i}`);
    }
  });

  it("a pushed commit with a change-id header keeps its change id", async () => {
    const src = path.join(work, "src");
    const tree = gitSync(src, ["rev-parse", "HEAD^{tree}"]);
    const parent = gitSync(src, ["rev-parse", "HEAD"]);
    const id = "kkkkllllmmmmnnnnooooppppqqqqrrrr";
    const raw = `tree ${tree}\nparent ${parent}\nauthor A <a@x> 1700000000 +0000\ncommitter A <a@x> 1700000000 +0000\nchange-id ${id}\n\njj commit\n`;
    const oid = gitSync(src, ["hash-object", "-t", "commit", "-w", "--stdin"], raw);
    gitSync(src, ["branch", "jj", oid]);
    const r = await gitRun(src, ["push", remote(srv.adminKey), "jj"]);
    assert.equal(r.code, 0, r.stderr);
    const c = await api.getChange("local", "app", id);
    assert.equal(c.current_commit_oid, oid);
    assert.equal(c.parents[0], changeIdFromOid(parent));

    // An amend (same change id, later commit time) moves the change; an older version does not.
    const amend = (t: number, msg: string) =>
      gitSync(
        src,
        ["hash-object", "-t", "commit", "-w", "--stdin"],
        raw.replaceAll("1700000000", String(t)).replace("jj commit", msg),
      );
    const newer = amend(1700000500, "jj amended");
    const older = amend(1600000000, "jj stale");
    gitSync(src, ["branch", "-f", "jj", newer]);
    assert.equal((await gitRun(src, ["push", "-f", remote(srv.adminKey), "jj"])).code, 0);
    assert.equal((await api.getChange("local", "app", id)).current_commit_oid, newer);
    gitSync(src, ["branch", "stale", older]);
    assert.equal((await gitRun(src, ["push", remote(srv.adminKey), "stale"])).code, 0);
    assert.equal((await api.getChange("local", "app", id)).current_commit_oid, newer);
  });

  /** A `--filter=blob:none` clone over protocol v2 into `work/<name>`, and the blobs it lacks. */
  async function partialClone(name: string, ...args: string[]): Promise<{ dest: string; missing: string[] }> {
    const dest = path.join(work, name);
    const r = await gitRun(work, [
      "-c",
      "protocol.version=2",
      "clone",
      "-q",
      "--filter=blob:none",
      ...args,
      remote(srv.adminKey),
      dest,
    ]);
    assert.equal(r.code, 0, r.stderr);
    const missing = gitSync(dest, ["rev-list", "--objects", "--all", "--missing=print"])
      .split("\n")
      .filter((l) => l.startsWith("?"))
      .map((l) => l.slice(1));
    return { dest, missing };
  }

  it("clone and fetch with --filter=blob:none (protocol v2)", async () => {
    const { dest, missing } = await partialClone("clone");
    assert.equal(gitSync(dest, ["config", "remote.origin.partialclonefilter"]), "blob:none");
    assert.equal(await readFile(path.join(dest, "f.txt"), "utf8"), "file 2\n");
    // Blobs of older commits were never fetched: the server honoured the filter.
    assert.ok(missing.length >= 4, `expected missing blobs, got ${missing.length}`);

    const src = path.join(work, "src");
    execFileSync("sh", ["-c", "echo more > more.txt"], { cwd: src });
    gitSync(src, ["add", "-A"]);
    gitSync(src, ["commit", "-q", "-m", "more"]);
    assert.equal((await gitRun(src, ["push", remote(srv.adminKey), "main"])).code, 0);
    const f = await gitRun(dest, ["-c", "protocol.version=2", "fetch", "-q", "--filter=blob:none", "origin"]);
    assert.equal(f.code, 0, f.stderr);
    assert.equal(gitSync(dest, ["rev-parse", "origin/main"]), gitSync(src, ["rev-parse", "HEAD"]));
  });

  it("fetches of blobs by id are answered without starting git; others still reach upload-pack", async () => {
    const { dest, missing } = await partialClone("lazy", "--no-checkout");
    const src = path.join(work, "src");
    assert.ok(missing.length >= 2, `expected missing blobs, got ${missing.length}`);
    const blobAt = (cwd: string, oid: string) =>
      execFileSync("git", ["cat-file", "blob", oid], { cwd, env: GIT_ENV, timeout: 60_000 });
    // The server's log says how each fetch was answered (it is written a moment later).
    const answered = () => {
      const lines = srv.logs().split("\n");
      return {
        inProcess: lines.filter((l) => l.includes('"inProcess":true')).length,
        uploadPack: lines.filter((l) => l.includes('"rest":"git-upload-pack"')).length,
      };
    };
    const settled = async (want: (a: ReturnType<typeof answered>) => boolean) => {
      assert.ok(await waitFor(async () => want(answered()), 5_000, 20), JSON.stringify(answered()));
    };
    const a0 = answered();
    // The real git client's lazy fetches (want, filter, done): its index-pack checks every object.
    for (const oid of missing.slice(0, 2)) assert.deepEqual(blobAt(dest, oid), blobAt(src, oid));
    await settled((a) => a.inProcess === a0.inProcess + 2);
    assert.equal(answered().uploadPack, a0.uploadPack, "a lazy fetch reached upload-pack");
    // A commit asked for by id, and an object the repo lacks, go to upload-pack.
    const client = new GitRemote({ url: remote(null), credential: srv.adminKey, timeoutMs: 20_000 });
    const head = gitSync(src, ["rev-parse", "HEAD"]);
    const objects = await client.fetchObjects([head], { filter: "blob:none", depth: 1 });
    assert.equal(objects.get(head)?.type, "commit");
    await assert.rejects(client.fetchBlobs(["0123456789012345678901234567890123456789"]));
    await settled((a) => a.uploadPack === a0.uploadPack + 2);
    assert.equal(answered().inProcess, a0.inProcess + 2);
    // Every blob of the repo in one request, as a mount asks for them: each arrives, verified.
    const all = gitSync(src, ["rev-list", "--objects", "--all"])
      .split("\n")
      .map((l) => l.split(" ")[0] as string)
      .filter((o) => gitSync(src, ["cat-file", "-t", o]) === "blob");
    const blobs = await client.fetchBlobs(all);
    for (const o of all) assert.deepEqual(blobs.get(o), blobAt(src, o));
    await settled((a) => a.inProcess === a0.inProcess + 3);
    // A blob past what is held in-process (16 MB) goes to upload-pack, whole; then small ones
    // are answered in-process again.
    const big = Buffer.alloc(17 << 20, "0123456789abcdef");
    writeFileSync(path.join(src, "big.bin"), big);
    gitSync(src, ["add", "big.bin"]);
    gitSync(src, ["commit", "-q", "-m", "big"]);
    assert.equal((await gitRun(src, ["push", remote(srv.adminKey), "main"])).code, 0);
    const bigOid = gitSync(src, ["rev-parse", "HEAD:big.bin"]);
    const a1 = answered();
    assert.ok((await client.fetchBlobs([bigOid])).get(bigOid)?.equals(big), "the big blob");
    await settled((a) => a.uploadPack === a1.uploadPack + 1);
    assert.deepEqual(
      (await client.fetchBlobs([all[0] as string])).get(all[0] as string),
      blobAt(src, all[0] as string),
    );
    await settled((a) => a.inProcess === a1.inProcess + 1);
  });

  it("accepts gzip request bodies and passes Git-Protocol through", async () => {
    const pkt = (s: string) => `${(s.length + 4).toString(16).padStart(4, "0")}${s}`;
    const body = gzipSync(Buffer.from(`${pkt("command=ls-refs\n")}0001${pkt("peel\n")}0000`));
    const res = await fetch(`${srv.url}/local/app.git/git-upload-pack`, {
      method: "POST",
      headers: {
        authorization: `Bearer ${srv.adminKey}`,
        "content-type": "application/x-git-upload-pack-request",
        "content-encoding": "gzip",
        "git-protocol": "version=2",
      },
      body,
      signal: AbortSignal.timeout(20_000),
    });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get("content-type"), "application/x-git-upload-pack-result");
    const text = await res.text();
    assert.match(text, /refs\/heads\/main/);
    assert.match(text, /refs\/heads\/jj/);
    // An encoding git cannot read is refused before any git runs.
    const br = await fetch(`${srv.url}/local/app.git/git-upload-pack`, {
      method: "POST",
      headers: {
        authorization: `Bearer ${srv.adminKey}`,
        "content-type": "application/x-git-upload-pack-request",
        "content-encoding": "br",
        "git-protocol": "version=2",
      },
      body,
      signal: AbortSignal.timeout(20_000),
    });
    assert.equal(br.status, 415);
    assert.match(await br.text(), /unknown content encoding br/);
  });

  it("push to an unknown repo is 404; bad repo names never reach git", async () => {
    const src = path.join(work, "src");
    const r = await gitRun(src, ["push", remote(srv.adminKey, "nope"), "main"]);
    assert.equal(r.code, 128);
    assert.match(r.stderr, /^fatal: repository 'http:\/\/127\.0\.0\.1:\d+\/local\/nope\.git\/' not found\n$/);
    assert.equal(
      await status("GET", "/local/..%2Fx.git/info/refs?service=git-upload-pack", srv.adminKey),
      404,
    );
    assert.equal(await status("GET", "/local/app.git/info/refs", srv.adminKey), 403);
  });
});

describe("auth matrix (REST and Git)", () => {
  let readToken: string;
  it("each bad credential gets 401/403 and nothing changes on disk", async () => {
    const now = Math.floor(Date.now() / 1000);
    const expired = await mintFromApiKey(srv.adminKey, {
      scopes: ["write"],
      repos: null,
      ttlSeconds: 60,
      now: now - 3600,
    });
    const otherRepo = await mintFromApiKey(srv.adminKey, { scopes: ["write"], repos: ["local/other"] });
    readToken = await mintFromApiKey(srv.adminKey, { scopes: ["read"], repos: null });
    const good = await mintFromApiKey(srv.adminKey, { scopes: ["write"], repos: null });
    const [h, p, s] = good.split(".");
    const tamperedPayload = Buffer.from(p!, "base64url").toString("utf8").replace('"write"', '"admin"');
    const tampered = `${h}.${Buffer.from(tamperedPayload).toString("base64url")}.${s}`;
    const badSig = `${h}.${p}.${s!.slice(0, -2)}${s!.endsWith("AA") ? "BB" : "AA"}`;
    const pk = generatePrivateKey("local");
    const unregistered = await mintFromPrivateKey(pk.key, { scopes: ["write"], repos: null });
    // A revoked key and a token it signed.
    const made = await fetch(`${srv.url}/v1/local/api-keys`, {
      method: "POST",
      headers: { authorization: `Bearer ${srv.adminKey}`, "content-type": "application/json" },
      body: JSON.stringify({ scopes: ["write"] }),
    }).then((r) => r.json() as Promise<{ id: string; key: string }>);
    const revokedToken = await mintFromApiKey(made.key, { scopes: ["write"], repos: null });
    // A key that expires, and a token it signed that would itself still be valid.
    const shortLived = await fetch(`${srv.url}/v1/local/api-keys`, {
      method: "POST",
      headers: { authorization: `Bearer ${srv.adminKey}`, "content-type": "application/json" },
      body: JSON.stringify({ scopes: ["write"], expires_in_seconds: 1 }),
    }).then((r) => r.json() as Promise<{ key: string; expires_at: string }>);
    const expiredKeyToken = await mintFromApiKey(shortLived.key, { scopes: ["write"], repos: null });
    await new Promise((r) => setTimeout(r, Math.max(0, Date.parse(shortLived.expires_at) - Date.now() + 50)));
    assert.equal(await status("GET", "/v1/local/app", revokedToken), 200);
    assert.equal(await status("DELETE", `/v1/local/api-keys/${made.id}`, srv.adminKey), 200);

    const cases: Array<[string, string | null, number]> = [
      ["no credentials", null, 401],
      ["garbage", "garbage", 401],
      ["expired token", expired, 401],
      ["tampered payload", tampered, 401],
      ["tampered signature", badSig, 401],
      ["unregistered EdDSA key", unregistered, 401],
      ["revoked key", made.key, 401],
      ["token of a revoked key", revokedToken, 401],
      ["expired key", shortLived.key, 401],
      ["token of an expired key", expiredKeyToken, 401],
      ["token for another repo", otherRepo, 403],
      ["read-scoped token", readToken, 403],
    ];
    const before = await diskSnapshot();
    const src = path.join(work, "src");
    for (const [name, cred, expected] of cases) {
      assert.equal(
        await status("POST", "/v1/local/app/changes", cred, { base_change_id: "z".repeat(32) }),
        expected,
        `${name}: REST write`,
      );
      assert.equal(
        await status("POST", "/v1/local/app/bookmarks", cred, { name: "x", change_id: "z".repeat(32) }),
        expected,
        name,
      );
      const push = await gitRun(src, ["push", remote(cred), "main:evil"]);
      assert.equal(push.code, 128, `${name}: git push must fail: ${push.stderr}`);
      assert.match(
        push.stderr,
        cred === null
          ? /^fatal: could not read Username for 'http:\/\/127\.0\.0\.1:\d+': terminal prompts disabled\n$/
          : expected === 401
            ? /^fatal: Authentication failed for 'http:\/\/127\.0\.0\.1:\d+\/local\/app\.git\/'\n$/
            : /^fatal: unable to access 'http:\/\/127\.0\.0\.1:\d+\/local\/app\.git\/': The requested URL returned error: 403\n$/,
        name,
      );
      assert.equal(
        await status("GET", "/local/app.git/info/refs?service=git-receive-pack", cred),
        expected,
        `${name}: receive-pack`,
      );
      if (expected === 401) {
        assert.equal(await status("GET", "/v1/local/app", cred), 401, `${name}: REST read`);
        assert.notEqual((await gitRun(work, ["ls-remote", remote(cred)])).code, 0, `${name}: ls-remote`);
      }
    }
    assert.equal(await diskSnapshot(), before, "a refused request changed something on disk");
    // The read token and the other-repo token still do what they allow.
    assert.equal((await gitRun(work, ["ls-remote", remote(readToken)])).code, 0);
    assert.equal(await status("GET", "/v1/local/other", otherRepo), 200);
    assert.equal(await status("GET", "/v1/local/app", otherRepo), 403);
  });

  it("an EdDSA token works once its public key is registered for the org", async () => {
    const pk = generatePrivateKey("local");
    const token = await mintFromPrivateKey(pk.key, { scopes: ["read"], repos: ["local/app"] });
    assert.equal(await status("GET", "/v1/local/app", token), 401);
    assert.equal(await status("POST", "/v1/local/public-keys", readToken, { public_key: pk.publicX }), 403);
    assert.equal(
      await status("POST", "/v1/local/public-keys", srv.adminKey, { public_key: pk.publicX }),
      201,
    );
    assert.equal(
      await status("POST", "/v1/local/public-keys", srv.adminKey, { public_key: pk.publicX }),
      409,
    );
    assert.equal(await status("POST", "/v1/local/public-keys", srv.adminKey, { public_key: "short" }), 400);
    assert.equal(await status("GET", "/v1/local/app", token), 200);
    assert.equal(await status("GET", "/v1/local/other", token), 403);
    assert.equal(
      await status("POST", "/v1/local/app/changes", token, { base_change_id: "z".repeat(32) }),
      403,
    );
    const r = await gitRun(work, ["ls-remote", remote(token)]);
    assert.equal(r.code, 0, r.stderr);
  });

  it("tokens from `mesa token create` work for clone and REST; --scope read cannot push", async () => {
    const env = {
      MESA_NO_CONFIG_FILE: "1",
      MESA_ORG: "local",
      MESA_API_KEY: srv.adminKey,
      MESA_SERVICE_URL: srv.url,
    };
    const rw = await runMesa(["token", "create", "--org", "local", "--scope", "read,write"], { env });
    assert.equal(rw.code, 0, rw.stderr);
    const ro = await runMesa(["token", "create", "--org", "local", "--scope", "read", "--ttl", "600"], {
      env,
    });
    assert.equal(ro.code, 0, ro.stderr);
    const writeToken = rw.stdout.trim();
    const readOnly = ro.stdout.trim();
    assert.ok(!rw.stderr.includes(srv.adminKey));

    const client = new RestClient({ serviceUrl: srv.url, credential: writeToken });
    try {
      assert.deepEqual((await client.whoami()).scopes, ["read", "write"]);
    } finally {
      await client.close();
    }
    const dest = path.join(work, "token-clone");
    const c = await gitRun(work, ["clone", "-q", remote(readOnly), dest]);
    assert.equal(c.code, 0, c.stderr);
    execFileSync("sh", ["-c", "echo t > t.txt"], { cwd: dest });
    gitSync(dest, ["add", "-A"]);
    gitSync(dest, ["commit", "-q", "-m", "via token"]);
    const denied = await gitRun(dest, ["push", remote(readOnly), "HEAD:main"]);
    assert.equal(denied.code, 128);
    assert.match(
      denied.stderr,
      /^fatal: unable to access 'http:\/\/127\.0\.0\.1:\d+\/local\/app\.git\/': The requested URL returned error: 403\n$/,
    );
    const ok = await gitRun(dest, ["push", remote(writeToken), "HEAD:main"]);
    assert.equal(ok.code, 0, ok.stderr);
  });
});

describe("mesa serve import and lifecycle", () => {
  it("imports every branch while the server runs; fsck --strict is clean", async () => {
    const src = path.join(work, "imp");
    gitSync(work, ["init", "-q", "-b", "trunk", "imp"]);
    execFileSync("sh", ["-c", "echo a > a && mkdir -p d && echo b > d/b && ln -s a lnk"], { cwd: src });
    gitSync(src, ["add", "-A"]);
    gitSync(src, ["commit", "-q", "-m", "one"]);
    gitSync(src, ["tag", "v1"]);
    for (const b of ["feature", "fix/bug"]) {
      gitSync(src, ["checkout", "-q", "-b", b, "trunk"]);
      execFileSync("sh", ["-c", `echo ${b} > branch.txt`], { cwd: src });
      gitSync(src, ["add", "-A"]);
      gitSync(src, ["commit", "-q", "-m", b]);
    }
    gitSync(src, ["checkout", "-q", "trunk"]);
    const out = await srv.importRepo("local/imported", src);
    assert.match(out, /3 branch/);

    const bookmarks = [];
    for await (const b of api.listBookmarks("local", "imported")) bookmarks.push(b);
    assert.deepEqual(bookmarks.map((b) => b.name).sort(), ["feature", "fix/bug", "trunk"]);
    assert.equal(bookmarks.find((b) => b.name === "trunk")?.is_default, true);
    const bare = path.join(srv.dataDir, "repos", "local", "imported.git");
    gitSync(bare, ["fsck", "--strict"]);
    assert.equal(gitSync(bare, ["rev-parse", "v1"]), gitSync(src, ["rev-parse", "v1"]));
    // The source URL is not kept in the served repo's config.
    assert.notEqual((await gitRun(bare, ["config", "--get-regexp", "^remote\\."])).code, 0);
    const fix = await api.getChange(
      "local",
      "imported",
      changeIdFromOid(gitSync(src, ["rev-parse", "fix/bug"])),
    );
    assert.equal(fix.message, "fix/bug\n");
    const clone = await gitRun(work, [
      "clone",
      "-q",
      "-b",
      "fix/bug",
      remote(srv.adminKey, "imported"),
      path.join(work, "imp-clone"),
    ]);
    assert.equal(clone.code, 0, clone.stderr);

    // Over HTTP with credentials in the URL: they reach git only through its environment.
    await srv.importRepo("local/via-http", remote(srv.adminKey, "imported"));
    const viaHttp = path.join(srv.dataDir, "repos", "local", "via-http.git");
    assert.equal(gitSync(viaHttp, ["rev-parse", "fix/bug"]), gitSync(src, ["rev-parse", "fix/bug"]));
    assert.ok(!(await readFile(path.join(viaHttp, "config"), "utf8")).includes(srv.adminKey));
    const badKey = await runMesa([
      "serve",
      "import",
      "local/x2",
      remote("wrong-key", "imported"),
      "--data-dir",
      srv.dataDir,
    ]);
    assert.notEqual(badKey.code, 0);
    assert.ok(!badKey.stderr.includes("wrong-key"), badKey.stderr);

    await assert.rejects(srv.importRepo("local/imported", src), /already exists/);
    const bad = await runMesa(["serve", "import", "local/../x", src, "--data-dir", srv.dataDir]);
    assert.equal(bad.code, 2, bad.stderr);
    const missing = await runMesa([
      "serve",
      "import",
      "local/none",
      path.join(work, "does-not-exist"),
      "--data-dir",
      srv.dataDir,
    ]);
    assert.notEqual(missing.code, 0);
    assert.equal((await readdir(path.join(srv.dataDir, "tmp"))).length, 0);
  });

  it("one server per data dir; restart keeps keys and prints no new admin key; SIGTERM exits cleanly", async (t) => {
    const life = fixture(t, "serve-life");
    const dir = life.dir;
    const first = await life.serve({ dataDir: dir });
    assert.match(first.adminKey, /^mesa_live_/);
    const second = await runMesa(["serve", "--data-dir", dir, "--listen", "127.0.0.1:0"], {
      timeoutMs: 20_000,
    });
    assert.equal(second.code, 2);
    assert.match(second.stderr, /another mesa serve/);
    await first.stop();
    const again = await life.serve({ dataDir: dir });
    assert.equal(again.adminKey, "");
    const res = await fetch(`${again.url}/v1/whoami`, {
      headers: { authorization: `Bearer ${first.adminKey}` },
    });
    assert.equal(res.status, 200);
    process.kill(again.pid, "SIGTERM");
    const deadline = Date.now() + 10_000;
    let alive = true;
    while (alive && Date.now() < deadline) {
      try {
        process.kill(again.pid, 0);
        await new Promise((r) => setTimeout(r, 50));
      } catch {
        alive = false;
      }
    }
    assert.equal(alive, false, "mesa serve did not exit after SIGTERM");
    assert.match(again.logs(), /shutting down/);
    // A new --org on an existing data dir gets its own admin key, printed once.
    const third = await life.serve({ dataDir: dir, org: "team" });
    assert.match(third.adminKey, /^mesa_live_/);
    const who = await fetch(`${third.url}/v1/whoami`, {
      headers: { authorization: `Bearer ${third.adminKey}` },
    });
    assert.equal(((await who.json()) as { org: { slug: string } }).org.slug, "team");
    const cross = await fetch(`${third.url}/v1/local/repos`, {
      headers: { authorization: `Bearer ${third.adminKey}` },
    });
    assert.equal(cross.status, 403);
  });
});
