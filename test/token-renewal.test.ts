/**
 * Token renewal against a real `mesa serve`, which checks every token: with a TTL of a few
 * seconds, a daemon holding an API key keeps reading, pushing and polling across three
 * renewals; a daemon given a bare access token stops at its expiry, failing closed (EIO) with
 * a clear `mesa status` line.
 */
import assert from "node:assert/strict";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { type TestContext, test } from "node:test";
import { mintFromApiKey } from "../src/auth/tokens.js";
import { type Fixture, fixture } from "./helpers/fixture.js";
import { generateRepo, gitSync, waitFor } from "./helpers/mount.js";
import type { ServeHandle } from "./helpers/serve.js";
import { authHeader, cloneRepo, type Daemon, waitPushed } from "./helpers/write.js";

const NO_PREFETCH = { MESA_PREFETCH_ENABLED: "false", MESA_CACHE_ENABLED: "false" };

function renewals(d: Daemon): number {
  const log = readFileSync(d.env.MESA_DAEMON_LOG_FILE as string, "utf8");
  return log.split("\n").filter((l) => l.includes('"msg":"access token renewed"')).length;
}

/** One server for the file; each test has its own dir and daemon. */
const suite = fixture({ after: test.after }, "renew-serve");
let serve: ServeHandle | undefined;

async function serveWithRepo(t: TestContext, repo: string): Promise<{ serve: ServeHandle; fx: Fixture }> {
  const fx = fixture(t, "renew");
  serve ??= await suite.serve();
  generateRepo(join(fx.dir, "src"), { files: 60 });
  await serve.importRepo(`local/${repo}`, join(fx.dir, "src"));
  return { serve, fx };
}

test("an API key's daemon renews its token: reads, pushes and polls keep working across three renewals", async (t) => {
  const { serve, fx } = await serveWithRepo(t, "app");
  const dir = fx.dir;
  const d = await fx.daemon(serve, { name: "a", env: { MESA_TOKEN_TTL: "4", ...NO_PREFETCH } });
  const clone = cloneRepo(serve, "app", join(dir, "clone"));
  const files = gitSync(clone, ["ls-files"])
    .split("\n")
    .filter((f) => /^file-\d+\.txt$/.test(f));
  assert.ok(files.length >= 6, files.join(" "));

  let step = 0;
  const deadline = Date.now() + 90_000;
  while ((renewals(d) < 3 || step < 4) && Date.now() < deadline) {
    // An uncached file each time (no cache, no prefetch): a request with the current token.
    const file = files[step % files.length]!;
    const read = await d.sh("app", `cat ${file}`);
    assert.equal(read.code, 0, `step ${step}: cat ${file}: ${read.stderr}`);
    assert.equal(read.stdout, readFileSync(join(clone, file), "utf8"));
    const write = await d.sh("app", `echo step ${step} > renew-${step}.txt`);
    assert.equal(write.code, 0, write.stderr);
    await waitPushed(d, "app");
    step++;
    await new Promise((r) => setTimeout(r, 300));
  }
  assert.ok(renewals(d) >= 3, `only ${renewals(d)} renewals in 90 s`);

  // Polls: a change pushed by someone else shows up in the mount.
  gitSync(clone, ["-c", authHeader(serve.adminKey), "pull", "-q", "--ff-only"]);
  for (let i = 0; i < step; i++)
    assert.equal(readFileSync(join(clone, `renew-${i}.txt`), "utf8"), `step ${i}\n`);
  writeFileSync(join(clone, "from-outside.txt"), "pushed with git\n");
  gitSync(clone, ["add", "from-outside.txt"]);
  gitSync(clone, ["commit", "-q", "-m", "from outside"]);
  gitSync(clone, ["-c", authHeader(serve.adminKey), "push", "-q", "origin", "main"]);
  assert.ok(
    await waitFor(
      async () => (await d.sh("app", "cat from-outside.txt")).stdout === "pushed with git\n",
      30_000,
      250,
    ),
    "the mount never showed the pushed change",
  );
  assert.deepEqual((await d.status()).errors, []);
});

test("a bare access token stops at its expiry: reads fail with EIO and status says why", async (t) => {
  const { serve, fx } = await serveWithRepo(t, "bare");
  const token = await mintFromApiKey(serve.adminKey, {
    scopes: ["read", "write"],
    repos: null,
    ttlSeconds: 8,
  });
  const exp = JSON.parse(Buffer.from(token.split(".")[1]!, "base64url").toString("utf8")).exp as number;
  const d = await fx.daemon(serve, { name: "b", env: { MESA_API_KEY: token, ...NO_PREFETCH } });
  assert.equal((await d.sh("bare", "cat README.md")).stdout, "# generated\n");

  const message = `local: access token expired at ${new Date(exp * 1000).toISOString()}; run \`mesa unmount\` and \`mesa mount -d\` to start a new session`;
  assert.ok(
    await waitFor(async () => (await d.status()).errors.includes(message), 30_000, 250),
    JSON.stringify((await d.status()).errors),
  );
  const read = await d.sh("bare", "cat file-1.txt");
  assert.equal(read.code, 1);
  assert.equal(read.stderr, "cat: file-1.txt: Input/output error\n");
  assert.equal(renewals(d), 0);
});
