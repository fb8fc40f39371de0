/**
 * Faults between client and server: a proxy truncates, corrupts, delays, resets or answers
 * 500/401/403. Each must give the right typed error or a successful retry, never wrong data.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { isMesaError } from "../src/errors.js";
import {
  GitRemote,
  type GitRemoteOptions,
  hashObject,
  serializeCommit,
  signatureNow,
} from "../src/vcs/index.js";
import { DELIM, FLUSH, pkt } from "../src/vcs/pktline.js";
import { fixture } from "./helpers/fixture.js";
import { type FaultProxy, faultProxy, type GitServer, serveGit } from "./helpers/git-http.js";
import { catFiles, git, listObjects, makeRepo, type TestRepo } from "./helpers/repos.js";

function expectCode(code: string) {
  return (err: unknown) => {
    assert.ok(isMesaError(err, code as never), `expected ${code}, got ${String(err)}`);
    return true;
  };
}

describe("fault injection", () => {
  let root: string;
  let server: GitServer;
  let proxy: FaultProxy;
  let repo: TestRepo;
  let blobs: string[];
  let expected: Map<string, { type: string; data: Buffer }>;
  const fx = fixture({ after }, "faults");
  const remote = (opts: Partial<GitRemoteOptions> = {}) =>
    fx.use(new GitRemote({ url: `${proxy.url}/${repo.slug}`, timeoutMs: 3000, retries: 2, ...opts }));
  /** Fetches all blobs and checks every byte, so a "success" can never be wrong data. */
  const fetchAndVerify = async (r: GitRemote) => {
    const got = await r.fetchBlobs(blobs);
    assert.equal(got.size, blobs.length);
    for (const oid of blobs) assert.ok(got.get(oid)!.equals(expected.get(oid)!.data));
  };

  before(async () => {
    root = fx.dir;
    const files: Record<string, string> = {};
    for (let i = 0; i < 40; i++) files[`dir${i % 4}/file${i}.txt`] = `content of file ${i}\n`.repeat(50 + i);
    repo = makeRepo(root, files);
    blobs = listObjects(repo.bare, "HEAD")
      .filter((o) => o.type === "blob")
      .map((o) => o.oid);
    expected = catFiles(repo.bare, blobs);
    server = fx.use(await serveGit(root));
    proxy = fx.use(await faultProxy(server.url));
  });

  test("500 once is retried and succeeds; 500 every time is SERVER after bounded retries", async () => {
    const r = remote();
    await r.capabilities();
    const n = proxy.count("/git-upload-pack");
    proxy.inject("/git-upload-pack", { kind: "status", status: 500 });
    await fetchAndVerify(r);
    assert.equal(proxy.count("/git-upload-pack") - n, 2);
    const m = proxy.count("/git-upload-pack");
    proxy.inject("/git-upload-pack", ...Array(3).fill({ kind: "status", status: 503 }));
    await assert.rejects(r.fetchBlobs(blobs), expectCode("SERVER"));
    assert.equal(proxy.count("/git-upload-pack") - m, 3, "1 attempt + 2 retries");
  });

  test("401 and 403 are typed and never retried", async () => {
    for (const [status, code] of [
      [401, "UNAUTHORIZED"],
      [403, "FORBIDDEN"],
    ] as const) {
      const r = remote();
      const n = proxy.count("/info/refs");
      proxy.inject("/info/refs", { kind: "status", status });
      await assert.rejects(r.lsRefs(), expectCode(code));
      assert.equal(proxy.count("/info/refs") - n, 1);
    }
  });

  test("connection reset before or during the response is retried", async () => {
    const r = remote();
    await r.capabilities();
    proxy.inject("/git-upload-pack", { kind: "reset" });
    await fetchAndVerify(r);
    proxy.inject("/git-upload-pack", { kind: "reset-mid-body", afterBytes: 200 });
    await fetchAndVerify(r);
    proxy.inject("/git-upload-pack", ...Array(3).fill({ kind: "reset" }));
    await assert.rejects(r.fetchBlobs(blobs), expectCode("NETWORK"));
  });

  test("a delay beyond the timeout is TIMEOUT, then a retry succeeds", async () => {
    const r = remote({ timeoutMs: 300, retries: 0 });
    await r.capabilities();
    proxy.inject("/git-upload-pack", { kind: "delay", ms: 1500 });
    await assert.rejects(r.fetchBlobs(blobs), expectCode("TIMEOUT"));
    const r2 = remote({ timeoutMs: 300, retries: 1 });
    await r2.capabilities();
    proxy.inject("/git-upload-pack", { kind: "delay", ms: 1500 });
    await fetchAndVerify(r2);
  });

  test("a truncated response is CORRUPT_DATA and returns nothing", async () => {
    const r = remote();
    await r.capabilities();
    for (const keepBytes of [-4, -30, -500, 60]) {
      proxy.inject("/git-upload-pack", { kind: "truncate", keepBytes });
      await assert.rejects(r.fetchBlobs(blobs), expectCode("CORRUPT_DATA"), `keep ${keepBytes}`);
    }
    proxy.inject("/git-upload-pack", { kind: "truncate", keepBytes: -40 });
    await assert.rejects(r.fetchCommitTrees(repo.head()), expectCode("CORRUPT_DATA"));
    proxy.inject("/info/refs", { kind: "truncate", keepBytes: -3 });
    await assert.rejects(remote().lsRefs(), expectCode("CORRUPT_DATA"));
  });

  test("a corrupted byte in object data or the pack trailer is CORRUPT_DATA", async () => {
    const r = remote();
    await r.capabilities();
    // The response ends with the pack's 20-byte SHA-1 and a 4-byte flush.
    for (const offsetFromEnd of [10, 20, 30, 100, 1000]) {
      proxy.inject("/git-upload-pack", { kind: "corrupt", offsetFromEnd });
      await assert.rejects(r.fetchBlobs(blobs), expectCode("CORRUPT_DATA"), `flip at -${offsetFromEnd}`);
    }
    await fetchAndVerify(r);
  });

  test("a pack holding other objects than the ones requested is CORRUPT_DATA", async () => {
    const r = remote();
    await r.capabilities();
    const [asked, other] = [blobs[0]!, blobs[1]!];
    const body = Buffer.concat([
      pkt("command=fetch\n"),
      DELIM,
      ...[`want ${other}`, "no-progress", "ofs-delta", "done"].map((l) => pkt(`${l}\n`)),
      FLUSH,
    ]);
    proxy.inject("/git-upload-pack", { kind: "swap-request", body });
    await assert.rejects(r.fetchBlobs([asked]), expectCode("CORRUPT_DATA"));
    const tree = git(repo.bare, ["rev-parse", "HEAD^{tree}"]);
    const treeBody = Buffer.concat([
      pkt("command=fetch\n"),
      DELIM,
      pkt(`want ${tree}\n`),
      pkt("done\n"),
      FLUSH,
    ]);
    proxy.inject("/git-upload-pack", { kind: "swap-request", body: treeBody });
    await assert.rejects(
      r.fetchBlobs([tree]),
      expectCode("CORRUPT_DATA"),
      "a tree where a blob was asked for",
    );
  });

  test("cancellation aborts a slow request promptly", async () => {
    const r = remote({ timeoutMs: 10_000 });
    await r.capabilities();
    proxy.inject("/git-upload-pack", { kind: "delay", ms: 3000 });
    const ctl = new AbortController();
    const started = Date.now();
    setTimeout(() => ctl.abort(), 100);
    await assert.rejects(r.fetchBlobs(blobs, { signal: ctl.signal }), expectCode("ABORTED"));
    assert.ok(Date.now() - started < 2000);
  });

  test("a push whose first POST fails with 500 is retried and lands exactly once", async () => {
    const r = remote();
    const head = repo.head();
    const sig = signatureNow("Mesa", "mesa@example.com");
    const data = serializeCommit({
      tree: git(repo.bare, ["rev-parse", "HEAD^{tree}"]),
      parents: [head],
      author: sig,
      committer: sig,
      message: "retried push\n",
    });
    const oid = hashObject("commit", data);
    proxy.inject("/git-receive-pack", { kind: "status", status: 500 });
    await r.push([{ ref: "refs/heads/main", old: head, new: oid }], [{ type: "commit", data }]);
    assert.equal(repo.head(), oid);
    assert.equal(git(repo.bare, ["rev-parse", "HEAD~1"]), head);
    git(repo.bare, ["fsck", "--strict", "--no-dangling"]);
  });
});
