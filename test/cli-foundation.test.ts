import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { decodeJwt, decodeProtectedHeader, jwtVerify } from "jose";
import { generatePrivateKey } from "../src/auth/keys.js";

/**
 * The foundation commands run through `node bin/mesa` as a user would, with HOME and the
 * XDG dirs in a temp dir. Children start in a new session (detached), so they have no
 * controlling terminal and can never prompt.
 */
const ROOT = join(import.meta.dirname, "..", "..");
const BIN = join(ROOT, "bin", "mesa");
const MARK = "SECRETMARK";
const key = (tag: string) =>
  `mesa_live_${tag.padEnd(16, "0").slice(0, 16)}_${(MARK + tag).padEnd(40, "Z").slice(0, 40)}`;
const NO_BUS = "unix:path=/nonexistent/mesa-test-bus";

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function homeDir(t: { after(fn: () => void): void }): string {
  const home = mkdtempSync(join(tmpdir(), "mesa-cli-"));
  t.after(() => rmSync(home, { recursive: true, force: true }));
  return home;
}

function baseEnv(home: string): Record<string, string> {
  return {
    PATH: process.env.PATH ?? "/usr/bin:/bin",
    HOME: home,
    XDG_CONFIG_HOME: join(home, ".config"),
    MESA_NO_CONFIG_FILE: "1",
    DBUS_SESSION_BUS_ADDRESS: NO_BUS,
  };
}

function run(
  cmd: string,
  args: string[],
  env: Record<string, string>,
  input = "",
  timeoutMs = 120_000,
): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { env, cwd: ROOT, detached: true, stdio: ["pipe", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => (stdout += d));
    child.stderr.on("data", (d) => (stderr += d));
    const timer = setTimeout(() => {
      try {
        process.kill(-child.pid!, "SIGKILL");
      } catch {
        // already gone
      }
      reject(new Error(`${cmd} ${args.join(" ")} timed out after ${timeoutMs} ms`));
    }, timeoutMs);
    child.on("error", reject);
    child.on("close", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
    child.stdin.end(input);
  });
}

const mesa = (home: string, args: string[], env: Record<string, string> = {}, input = "") =>
  run(process.execPath, [BIN, ...args], { ...baseEnv(home), ...env }, input);

/**
 * argv inside a private D-Bus session with an unlocked gnome-keyring (CI runs as root, headless).
 * The command starts only once the keyring owns the Secret Service name: otherwise the bus may start
 * a second keyring on demand, which prints its environment on the bus's stdout (so that is /dev/null
 * and the command's own stdout is passed on fd 3).
 */
const KEYRING_SESSION = `exec 3>&1 >/dev/null
exec dbus-run-session -- sh -c '
printf pass | gnome-keyring-daemon --unlock --components=secrets 3>&-
for i in $(seq 200); do
  dbus-send --session --print-reply --dest=org.freedesktop.DBus /org/freedesktop/DBus \\
    org.freedesktop.DBus.NameHasOwner string:org.freedesktop.secrets 3>&- | grep -q "boolean true" && break
  sleep 0.05
done
exec "$@" >&3 3>&-' sh "$@"`;

function inKeyringSession(home: string, argv: string[], input = ""): Promise<Run> {
  const env = baseEnv(home) as Record<string, string | undefined>;
  delete env.DBUS_SESSION_BUS_ADDRESS;
  return run("sh", ["-c", KEYRING_SESSION, "sh", ...argv], env as Record<string, string>, input);
}

const mesaWithKeyring = (home: string, args: string[], input = "") =>
  inKeyringSession(home, [process.execPath, BIN, ...args], input);

function noSecret(r: Run, ...secrets: string[]): void {
  for (const s of [MARK, ...secrets])
    assert.ok(!r.stdout.includes(s) && !r.stderr.includes(s), `a secret leaked:\n${r.stdout}\n${r.stderr}`);
}

function ok(r: Run): Run {
  assert.equal(r.code, 0, `exit ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
  return r;
}

const dataDir = (home: string) => join(home, ".local", "share", "mesa");
const hmacKey = (k: string) => new TextEncoder().encode(createHash("sha256").update(k).digest("base64url"));

/** Every file under dir with its bytes, to prove a failed command changed nothing. */
function snapshot(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  if (!existsSync(dir)) return out;
  for (const name of readdirSync(dir, { recursive: true }) as string[]) {
    const p = join(dir, name);
    out[name] = statSync(p).isDirectory() ? "<dir>" : readFileSync(p).toString("base64");
  }
  return out;
}

test("cli: config show: default < file < env per key, with sources; secrets redacted", async (t) => {
  const home = homeDir(t);
  mkdirSync(join(home, ".config", "mesa"), { recursive: true });
  writeFileSync(
    join(home, ".config", "mesa", "config.toml"),
    `mount-point = "~/mnt"\n[cache]\nmax-size = "2GB"\n[prefetch]\nmax-concurrency = 4\n[organizations.acme]\nmount = "explicit"\n`,
  );
  const env = {
    MESA_NO_CONFIG_FILE: "",
    MESA_CACHE_MAX_SIZE: "1GiB",
    MESA_API_KEY: key("api"),
    MESA_ORGS: `beta:${key("beta")}`,
    MESA_VAULT_PASSPHRASE: `${MARK}-pass`,
    MESA_REPO_REVS: "acme/app=bookmark:dev",
  };
  const r = ok(await mesa(home, ["config", "show", "--json"], env));
  noSecret(r);
  const shown = JSON.parse(r.stdout) as {
    file: string;
    values: Record<string, { value: unknown; source: string }>;
  };
  assert.equal(shown.file, join(home, ".config", "mesa", "config.toml"));
  const v = shown.values;
  assert.deepEqual(v["mount-point"], { value: join(home, "mnt"), source: "file" });
  assert.deepEqual(v["cache.max-size"], { value: 2 ** 30, source: "env" });
  assert.deepEqual(v["prefetch.max-concurrency"], { value: 4, source: "file" });
  assert.deepEqual(v["cache.path"], { value: join(home, ".cache", "mesa"), source: "default" });
  assert.deepEqual(v["prefetch.max-depth"], { value: null, source: "default" });
  assert.deepEqual(v["organizations.acme.mount"], { value: "explicit", source: "file" });
  assert.deepEqual(v["organizations.acme.repos.app.rev"], { value: "bookmark:dev", source: "env" });
  assert.deepEqual(v["organizations.beta.mount"], { value: "all", source: "env" });
  assert.deepEqual(v.MESA_API_KEY, { value: "[redacted]", source: "env" });
  assert.deepEqual(v.MESA_ORGS, { value: "beta:[redacted]", source: "env" });
  assert.deepEqual(v.MESA_VAULT_PASSPHRASE, { value: "[redacted]", source: "env" });

  const text = ok(await mesa(home, ["config", "show"], env));
  noSecret(text);
  assert.match(text.stdout, /^cache\.max-size\s+1GiB\s+\(env\)$/m);
  assert.match(text.stdout, /^prefetch\.max-concurrency\s+4\s+\(file\)$/m);
  assert.match(text.stdout, /^cache\.max-memory-size\s+320MB\s+\(default\)$/m);

  // --config-path replaces the search; MESA_NO_CONFIG_FILE skips it.
  const other = join(home, "other.toml");
  writeFileSync(other, `[cache]\nmax-memory-size = "64MB"\n`);
  const c = JSON.parse(ok(await mesa(home, ["-c", other, "config", "show", "--json"])).stdout);
  assert.deepEqual(c.values["cache.max-memory-size"], { value: 64e6, source: "file" });
  assert.deepEqual(c.values["mount-point"].source, "default");
  const none = JSON.parse(
    ok(await mesa(home, ["config", "show", "--json"], { MESA_NO_CONFIG_FILE: "1" })).stdout,
  );
  assert.equal(none.file, null);
});

test("cli: a bad configuration exits 2 and lists every problem with file and key", async (t) => {
  const home = homeDir(t);
  const file = join(home, "config.toml");
  writeFileSync(file, `[cache]\nmax-size = "big"\nspeed = 3\n`);
  const r = await mesa(home, ["-c", file, "config", "show"], { MESA_PREFETCH_CACHE_PRESSURE_LIMIT: "2" });
  assert.equal(r.code, 2);
  assert.equal(r.stdout, "");
  assert.match(r.stderr, new RegExp(`${file}: cache\\.max-size: "big" is not a size`));
  assert.match(r.stderr, new RegExp(`${file}: cache\\.speed: unknown key`));
  assert.match(r.stderr, /environment: MESA_PREFETCH_CACHE_PRESSURE_LIMIT: must be at most 1/);
  assert.ok(!r.stderr.includes("    at "), "no stack trace");
  writeFileSync(file, `mount-point = "/x"\n[cache\n`);
  const syntax = await mesa(home, ["-c", file, "config", "show"]);
  assert.equal(syntax.code, 2);
  assert.match(syntax.stderr, new RegExp(`${file}: line 2, column \\d+: `));
});

test("cli: without keychain or passphrase, keys fall back to the plaintext file with a warning", async (t) => {
  const home = homeDir(t);
  const env = { MESA_NO_CONFIG_FILE: "1" };
  const set = ok(await mesa(home, ["auth", "set-key", "--org", "acme"], env, `${key("org")}\n`));
  noSecret(set);
  assert.match(set.stderr, /warning: no OS keychain is reachable.*unencrypted/);
  const file = join(dataDir(home), "secrets.plaintext.toml");
  assert.equal(statSync(file).mode & 0o777, 0o600);
  assert.ok(readFileSync(file, "utf8").includes(`"orgs/acme" = "${key("org")}"`), "trailing newline trimmed");
  ok(await mesa(home, ["auth", "set-key", "--org", "acme", "--repo", "app", key("repo")], env));
  ok(await mesa(home, ["auth", "set-key"], env, key("global")));
  const list = ok(await mesa(home, ["auth", "list"], env));
  noSecret(list);
  assert.equal(list.stdout, "global\norgs/acme\norgs/acme/repos/app\n");

  // token create picks the most specific key: repo, then org.
  const t1 = ok(await mesa(home, ["token", "create", "--org", "acme", "--repo", "app"], env));
  assert.match(t1.stdout, /^[\w-]+\.[\w-]+\.[\w-]+\n$/, "prints only the token");
  await jwtVerify(t1.stdout.trim(), hmacKey(key("repo")), { audience: "mesa-api" });
  const claims = decodeJwt(t1.stdout.trim());
  assert.deepEqual(
    [claims.scopes, claims.repos, claims.exp! - claims.iat!],
    [["read", "write"], ["acme/app"], 3600],
  );
  const t2 = ok(
    await mesa(home, ["token", "create", "--org", "acme", "--scope", "read", "--ttl", "60"], env),
  );
  await jwtVerify(t2.stdout.trim(), hmacKey(key("org")), { audience: "mesa-api" });
  assert.deepEqual([decodeJwt(t2.stdout).scopes, decodeJwt(t2.stdout).repos], [["read"], null]);
  const t3 = ok(await mesa(home, ["token", "create", "--org", "zeta"], env));
  await jwtVerify(t3.stdout.trim(), hmacKey(key("global")), { audience: "mesa-api" });

  ok(await mesa(home, ["auth", "remove", "--org", "acme", "--repo", "app"], env));
  const again = await mesa(home, ["auth", "remove", "--org", "acme", "--repo", "app"], env);
  assert.equal(again.code, 1);
  assert.match(again.stderr, /no key is stored for orgs\/acme\/repos\/app/);
  ok(await mesa(home, ["auth", "remove"], env));
  assert.equal(ok(await mesa(home, ["auth", "list"], env)).stdout, "orgs/acme\n");
  assert.deepEqual(readdirSync(dataDir(home)), ["secrets.plaintext.toml"]);

  // MESA_ORGS registers its keys, then the command proceeds.
  const orgs = ok(await mesa(home, ["auth", "list"], { ...env, MESA_ORGS: `beta:${key("beta")}` }));
  assert.equal(orgs.stdout, "orgs/acme\norgs/beta\n");
  noSecret(orgs);
});

test("cli: with a passphrase the vault is chosen, and Debian's age CLI decrypts it", async (t) => {
  const home = homeDir(t);
  const pass = "correct horse battery";
  const env = { MESA_VAULT_PASSPHRASE: pass };
  const set = ok(await mesa(home, ["auth", "set-key", "--org", "acme"], env, `${key("vault")}\n`));
  noSecret(set, pass);
  assert.match(set.stderr, /encrypted-file/);
  const vault = join(dataDir(home), "secrets.vault.age");
  assert.deepEqual(readdirSync(dataDir(home)), ["secrets.vault.age"]);
  assert.equal(statSync(vault).mode & 0o777, 0o600);
  const bytes = readFileSync(vault);
  assert.ok(!bytes.includes(Buffer.from(MARK)));
  assert.equal(ok(await mesa(home, ["auth", "list"], env)).stdout, "orgs/acme\n");

  // age reads the passphrase from its terminal: give it one with script(1)'s pty.
  const out = join(home, "decrypted.toml");
  const age = await run(
    "script",
    ["-qec", `age -d -o '${out}' '${vault}'`, "/dev/null"],
    { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: home, TERM: "dumb" },
    `${pass}\n`,
    60_000,
  );
  assert.equal(age.code, 0, age.stdout + age.stderr);
  assert.ok(readFileSync(out, "utf8").includes(`"orgs/acme" = "${key("vault")}"`));

  // Wrong or missing passphrase: a clear error, the vault untouched, nothing leaked.
  const wrong = await mesa(home, ["auth", "set-key", "--org", "beta", key("beta")], {
    MESA_VAULT_PASSPHRASE: "nope",
  });
  assert.equal(wrong.code, 1);
  assert.match(wrong.stderr, /wrong passphrase for the encrypted vault/);
  noSecret(wrong, pass);
  const missing = await mesa(home, ["auth", "list"]);
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /needs a passphrase: set MESA_VAULT_PASSPHRASE/);
  assert.deepEqual(readFileSync(vault), bytes, "the vault is unchanged");
});

test("cli: keychain backend round-trips through a real Secret Service (gnome-keyring under dbus-run-session)", async (t) => {
  const home = homeDir(t);
  const set = ok(await mesaWithKeyring(home, ["auth", "set-key", "--org", "acme"], `${key("kc")}\n`));
  noSecret(set);
  assert.match(set.stderr, /stored the key for orgs\/acme in keychain/);
  assert.doesNotMatch(set.stderr, /mesa: warning/);
  ok(await mesaWithKeyring(home, ["auth", "set-key", "--org", "acme", "--repo", "app"], key("kcrepo")));
  const list = ok(await mesaWithKeyring(home, ["auth", "list"]));
  assert.equal(list.stdout, "orgs/acme\norgs/acme/repos/app\n");
  // The key really is in the keyring, under service "mesa", account = scope name.
  const lookup = await inKeyringSession(home, [
    "secret-tool",
    "lookup",
    "service",
    "mesa",
    "username",
    "orgs/acme",
  ]);
  assert.equal(lookup.stdout, key("kc"));
  const tok = ok(await mesaWithKeyring(home, ["token", "create", "--org", "acme"]));
  await jwtVerify(tok.stdout.trim(), hmacKey(key("kc")), { audience: "mesa-api" });
  ok(await mesaWithKeyring(home, ["auth", "remove", "--org", "acme"]));
  assert.equal(ok(await mesaWithKeyring(home, ["auth", "list"])).stdout, "orgs/acme/repos/app\n");
  assert.ok(!existsSync(join(dataDir(home), "secrets.plaintext.toml")), "no file fallback was used");
  assert.ok(!existsSync(join(dataDir(home), "secrets.vault.age")));

  // Asking for the keychain where none is reachable is an error with the fix, not a silent fallback.
  const forced = await mesa(home, ["auth", "list"], { MESA_SECRETS_BACKEND: "keychain" });
  assert.equal(forced.code, 1);
  assert.match(forced.stderr, /the OS keychain is not reachable: start a Secret Service/);
});

test("cli: bad input gets one clear error, changes nothing and never prints a secret", async (t) => {
  const home = homeDir(t);
  const env = { MESA_SECRETS_BACKEND: "plaintext-file" };
  ok(await mesa(home, ["auth", "set-key", "--org", "acme", key("keep")], env));
  const S = key("bad");
  const cases: Array<{
    args: string[];
    input?: string;
    env?: Record<string, string>;
    code: number;
    msg: RegExp;
  }> = [
    { args: ["auth", "set-key", "--org", "acme"], input: `${S} tail\n`, code: 2, msg: /whitespace/ },
    { args: ["auth", "set-key", "--org", "acme"], input: `${S}\nsecond\n`, code: 2, msg: /line break/ },
    { args: ["auth", "set-key", "--org", "acme"], input: `${S}\n\n`, code: 2, msg: /line break/ },
    { args: ["auth", "set-key", "--org", "acme"], input: "", code: 2, msg: /the key is empty/ },
    { args: ["auth", "set-key", "--org", "acme"], input: "\n", code: 2, msg: /the key is empty/ },
    { args: ["auth", "set-key", "--org", "acme", `${S}\t`], code: 2, msg: /whitespace/ },
    { args: ["auth", "set-key", "--org", "..", S], code: 2, msg: /invalid organization name "\.\."/ },
    { args: ["auth", "set-key", "--org", "a/b", S], code: 2, msg: /path separator/ },
    { args: ["auth", "set-key", "--org", "x".repeat(101), S], code: 2, msg: /longer than 100/ },
    {
      args: ["auth", "set-key", "--org", "acme", "--repo", "..", S],
      code: 2,
      msg: /invalid repository name/,
    },
    { args: ["auth", "set-key", "--repo", "app", S], code: 2, msg: /--repo needs --org/ },
    {
      args: ["auth", "set-key", "--org", "beta", generatePrivateKey("acme").key],
      code: 2,
      msg: /belongs to organization 'acme'/,
    },
    {
      args: ["auth", "set-key", "--org", "acme", `mesa_private_key_acme_${MARK}`],
      code: 2,
      msg: /malformed private key/,
    },
    { args: ["token", "create", "--org", "acme", "--ttl", "0"], code: 2, msg: /TTL 0 s is out of range/ },
    {
      args: ["token", "create", "--org", "acme", "--ttl", "86401"],
      code: 2,
      msg: /out of range: use 1 to 86400/,
    },
    { args: ["token", "create", "--org", "acme", "--ttl", "1h"], code: 2, msg: /whole seconds/ },
    { args: ["token", "create", "--org", "acme", "--scope", "owner"], code: 2, msg: /unknown scope "owner"/ },
    { args: ["token", "create", "--org", "acme", "--repo", "a\\b"], code: 2, msg: /invalid repository name/ },
    {
      args: ["token", "create", "--org", "nokey"],
      code: 1,
      msg: /no API key found in the secret store for organization 'nokey'/,
    },
    {
      args: ["auth", "list"],
      env: { MESA_ORGS: `acme ${S}` },
      code: 2,
      msg: /MESA_ORGS: entry 1: expected org:key/,
    },
    {
      args: ["auth", "list"],
      env: { MESA_ORGS: `acme:${S} x` },
      code: 2,
      msg: /MESA_ORGS: entry 1: the key contains whitespace/,
    },
    {
      args: ["auth", "list"],
      env: { MESA_ORGS: `..:${S}` },
      code: 2,
      msg: /MESA_ORGS: entry 1: invalid organization name/,
    },
    {
      args: ["auth", "list"],
      env: { MESA_API_KEY: `${S} ` },
      code: 2,
      msg: /MESA_API_KEY: the key contains whitespace/,
    },
    {
      args: ["auth", "list"],
      env: { MESA_REPO_REVS: "acme/app=main" },
      code: 2,
      msg: /MESA_REPO_REVS: entry "acme\/app=main"/,
    },
    {
      args: ["auth", "list"],
      env: { MESA_SECRETS_BACKEND: "vault" },
      code: 2,
      msg: /MESA_SECRETS_BACKEND: /,
    },
  ];
  const before = snapshot(dataDir(home));
  for (const c of cases) {
    const r = await mesa(home, c.args, { ...env, ...c.env }, c.input ?? "");
    const what = `${c.args.join(" ")} ${JSON.stringify(c.env ?? {})}`;
    assert.equal(r.code, c.code, `${what}: exit ${r.code}\n${r.stderr}`);
    assert.match(r.stderr, c.msg, what);
    assert.equal(r.stderr.trim().split("\n")[0]!.startsWith("mesa: "), true, `${what}: ${r.stderr}`);
    assert.ok(!r.stderr.includes("    at "), `${what}: no stack trace`);
    noSecret(r, S);
    assert.deepEqual(snapshot(dataDir(home)), before, `${what} changed the secret store`);
  }

  // A damaged plaintext file: reported, not echoed, not overwritten.
  const file = join(dataDir(home), "secrets.plaintext.toml");
  const damaged = `[keys]\n"orgs/acme" = "${S}\n`;
  writeFileSync(file, damaged, { mode: 0o600 });
  for (const args of [
    ["auth", "list"],
    ["auth", "set-key", "--org", "beta", key("new")],
    ["token", "create", "--org", "acme"],
  ]) {
    const r = await mesa(home, args, env);
    assert.equal(r.code, 1, args.join(" "));
    assert.match(r.stderr, /secret store .*secrets\.plaintext\.toml is damaged \(line 2, column \d+/);
    noSecret(r, S);
    assert.equal(readFileSync(file, "utf8"), damaged);
  }
});

test("cli: token create with MESA_API_KEY needs no store; a foreign key's id comes from GET /v1/whoami", async (t) => {
  const home = homeDir(t);
  const foreign = `sk_foreign_${MARK}_0123456789`;
  const seen: string[] = [];
  const server = createServer((req, res) => {
    seen.push(
      `${req.method} ${req.url} ${req.headers.authorization === `Bearer ${foreign}` ? "auth-ok" : "auth-bad"}`,
    );
    if (req.url === "/v1/whoami" && req.headers.authorization === `Bearer ${foreign}`) {
      res.setHeader("content-type", "application/json");
      res.end(
        JSON.stringify({
          org: { id: "1", slug: "acme", name: "Acme" },
          key_id: "kid-42",
          key_name: null,
          scopes: ["read"],
        }),
      );
    } else {
      res.statusCode = 401;
      res.setHeader("content-type", "application/json");
      res.end(JSON.stringify({ error: { code: "UNAUTHORIZED", message: "bad key" } }));
    }
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  t.after(() => server.close());
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  const env = { MESA_API_KEY: foreign, MESA_ORG: "acme", MESA_SERVICE_URL: url };
  const r = ok(await mesa(home, ["token", "create", "--org", "acme", "--repo", "app", "--ttl", "300"], env));
  noSecret(r, foreign);
  assert.equal(r.stderr, "", "MESA_API_KEY needs no secret store, so no backend warning");
  assert.ok(!existsSync(dataDir(home)), "nothing written");
  const jwt = r.stdout.trim();
  assert.equal(decodeProtectedHeader(jwt).kid, "kid-42.v1");
  const { payload } = await jwtVerify(jwt, hmacKey(foreign), { audience: "mesa-api", issuer: "kid-42" });
  assert.deepEqual(payload.repos, ["acme/app"]);
  assert.equal(payload.exp! - payload.iat!, 300);
  assert.deepEqual(seen, ["GET /v1/whoami auth-ok"]);

  // A key the server rejects: the server's refusal, not a token.
  const bad = await mesa(home, ["token", "create", "--org", "acme"], { ...env, MESA_API_KEY: `${foreign}x` });
  assert.equal(bad.code, 1);
  assert.equal(bad.stdout, "");
  noSecret(bad, foreign);

  // A private key mints EdDSA tokens locally (default 15 min), with no request to the server.
  const pk = generatePrivateKey("acme");
  const ed = ok(await mesa(home, ["token", "create", "--org", "acme"], { ...env, MESA_API_KEY: pk.key }));
  const h = decodeProtectedHeader(ed.stdout.trim());
  assert.deepEqual([h.alg, (h.jwk as { x: string }).x], ["EdDSA", pk.publicX]);
  const edClaims = decodeJwt(ed.stdout.trim());
  assert.equal(edClaims.exp! - edClaims.iat!, 900);
  const tooLong = await mesa(home, ["token", "create", "--org", "acme", "--ttl", "14401"], {
    ...env,
    MESA_API_KEY: pk.key,
  });
  assert.equal(tooLong.code, 2);
  assert.match(tooLong.stderr, /out of range: use 1 to 14400/);
  // An access token cannot mint tokens.
  const fromJwt = await mesa(home, ["token", "create", "--org", "acme"], { ...env, MESA_API_KEY: jwt });
  assert.equal(fromJwt.code, 2);
  assert.match(fromJwt.stderr, /is an access token, which cannot mint tokens/);
  assert.equal(seen.length, 2, "our own and private keys never ask the server");
});
