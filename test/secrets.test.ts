import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { loadConfig } from "../src/config/load.js";
import type { Config } from "../src/config/types.js";
import { isMesaError } from "../src/errors.js";
import {
  applyEnvOrgs,
  openSecretStore,
  parseScopeName,
  plaintextPath,
  resolveCredential,
  type SecretScope,
  scopeName,
  vaultPath,
} from "../src/secrets/index.js";

const KEY_G = "mesa_live_aaaaaaaaaaaaaaaa_GLOBALGLOBALGLOBALGLOBALGLOBALGLOBAL0000";
const KEY_O = "mesa_live_bbbbbbbbbbbbbbbb_ORGORGORGORGORGORGORGORGORGORGORGORG0000";
const KEY_R = "mesa_live_cccccccccccccccc_REPOREPOREPOREPOREPOREPOREPOREPOREPO0000";

function setup(t: { after(fn: () => void): void }, env: Record<string, string> = {}): Config {
  const home = mkdtempSync(join(tmpdir(), "mesa-secrets-"));
  t.after(() => rmSync(home, { recursive: true, force: true }));
  // No keychain is reachable from these unit tests; the CLI tests cover it.
  return loadConfig({ env: { MESA_NO_CONFIG_FILE: "1", ...env }, home });
}

const G: SecretScope = { kind: "global" };
const O: SecretScope = { kind: "org", org: "acme" };
const R: SecretScope = { kind: "repo", org: "acme", repo: "app" };

test("secrets: scope names round-trip and reject unsafe names", () => {
  assert.equal(scopeName(G), "global");
  assert.equal(scopeName(O), "orgs/acme");
  assert.equal(scopeName(R), "orgs/acme/repos/app");
  for (const s of [G, O, R]) assert.deepEqual(parseScopeName(scopeName(s)), s);
  for (const bad of ["orgs/..", "orgs/a/repos/b/c", "orgs/a\0b", "org/acme", "orgs/acme/repos/"])
    assert.equal(parseScopeName(bad), undefined, bad);
  for (const org of ["..", "a/b", "a\0b", "x".repeat(101)])
    assert.throws(
      () => scopeName({ kind: "org", org }),
      (e) => isMesaError(e, "INVALID_NAME"),
    );
});

test("secrets: plaintext file round-trips, 0600, atomic, lookup order repo → org → global", async (t) => {
  const config = setup(t, { MESA_SECRETS_BACKEND: "plaintext-file" });
  const store = await openSecretStore(config);
  assert.equal(store.backend, "plaintext-file");
  await assert.rejects(resolveCredential(config, store, "acme", "app"), (e) => {
    assert.ok(isMesaError(e, "NO_API_KEY"));
    assert.equal(e.message, "no API key found in the secret store for organization 'acme'");
    assert.equal(e.hint, "run `mesa auth set-key --org acme`");
    return true;
  });
  await store.set(G, KEY_G);
  assert.equal(await resolveCredential(config, store, "acme", "app"), KEY_G);
  await store.set(O, KEY_O);
  assert.equal(await resolveCredential(config, store, "acme", "app"), KEY_O);
  assert.equal(await resolveCredential(config, store, "other"), KEY_G);
  await store.set(R, KEY_R);
  assert.equal(await resolveCredential(config, store, "acme", "app"), KEY_R);
  assert.equal(await resolveCredential(config, store, "acme", "lib"), KEY_O);
  assert.deepEqual(await store.list(), [G, O, R]);

  const file = plaintextPath(config);
  assert.equal(statSync(file).mode & 0o777, 0o600);
  for (const bad of ["", "two words", "line\nbreak"])
    await assert.rejects(store.set(O, bad), (e) => isMesaError(e, "INVALID_KEY"));
  assert.deepEqual(
    readdirSync(config.dataDir),
    ["secrets.plaintext.toml"],
    "no temp or lock files left behind",
  );
  // A second process view (a fresh store) sees the same keys.
  assert.equal(await (await openSecretStore(config)).get(R), KEY_R);

  assert.equal(await store.remove(R), true);
  assert.equal(await store.remove(R), false);
  assert.equal(await resolveCredential(config, store, "acme", "app"), KEY_O);
  assert.deepEqual(await store.list(), [G, O]);
});

test("secrets: MESA_API_KEY wins when MESA_ORG is unset or matches; MESA_ORGS keys are used as given and registered", async (t) => {
  const env = { MESA_SECRETS_BACKEND: "plaintext-file", MESA_API_KEY: "env-key", MESA_ORG: "acme" };
  const config = setup(t, { ...env, MESA_ORGS: `beta:${KEY_O},gamma:${KEY_R}` });
  const store = await openSecretStore(config);
  await store.set(O, KEY_G);
  assert.equal(await resolveCredential(config, store, "acme"), "env-key");
  // The environment's key needs no store (a detached daemon reads the same variables).
  assert.equal(await resolveCredential(config, store, "beta"), KEY_O);
  await assert.rejects(resolveCredential(config, store, "delta"), (e) => isMesaError(e, "NO_API_KEY"));
  const said: string[] = [];
  await applyEnvOrgs(config, store, (l) => said.push(l));
  assert.deepEqual(said, [
    `stored the key for orgs/beta in plaintext-file (${store.location})`,
    `stored the key for orgs/gamma in plaintext-file (${store.location})`,
  ]);
  await applyEnvOrgs(config, store, (l) => said.push(l));
  assert.equal(said.length, 2, "said once: nothing when the store holds the key already");
  assert.equal(await resolveCredential(config, store, "beta"), KEY_O);
  assert.equal(await resolveCredential(config, store, "gamma"), KEY_R);
  assert.deepEqual(await store.list(), [O, { kind: "org", org: "beta" }, { kind: "org", org: "gamma" }]);
  const anyOrg = loadConfig({
    env: { MESA_NO_CONFIG_FILE: "1", MESA_API_KEY: "env-key" },
    home: config.dataDir,
  });
  assert.equal(await resolveCredential(anyOrg, store, "zeta"), "env-key");
});

test("secrets: concurrent writers do not lose each other's keys", async (t) => {
  const config = setup(t, { MESA_SECRETS_BACKEND: "plaintext-file" });
  const orgs = Array.from({ length: 12 }, (_, i) => `org${i}`);
  await Promise.all(
    orgs.map(async (org) => (await openSecretStore(config)).set({ kind: "org", org }, `key-${org}`)),
  );
  const store = await openSecretStore(config);
  for (const org of orgs) assert.equal(await store.get({ kind: "org", org }), `key-${org}`);
});

test("secrets: a damaged plaintext file is reported, never echoed, never overwritten", async (t) => {
  const config = setup(t, { MESA_SECRETS_BACKEND: "plaintext-file" });
  mkdirSync(config.dataDir, { recursive: true });
  const file = plaintextPath(config);
  for (const text of [
    `[keys]\n"orgs/acme" = "${KEY_O}\n`, // unterminated string
    `[keys]\n"orgs/acme" = "${KEY_O} x"\n`, // whitespace in key
    `[keys]\n"orgs/../x" = "${KEY_O}"\n`, // not a scope
    `${KEY_O}\n`, // not TOML
  ]) {
    writeFileSync(file, text, { mode: 0o600 });
    const store = await openSecretStore(config);
    for (const op of [() => store.get(O), () => store.set(G, KEY_G), () => store.list()]) {
      await assert.rejects(op(), (e) => {
        assert.ok(isMesaError(e, "SECRET_STORE_CORRUPT"), String(e));
        assert.ok(!e.message.includes("ORGORG") && !(e.hint ?? "").includes("ORGORG"), e.message);
        return true;
      });
    }
    assert.equal(readFileSync(file, "utf8"), text, "the damaged file is left as it was");
  }
});

test("secrets: encrypted vault: decrypt once, wrong passphrase and damage leave it untouched", async (t) => {
  const config = setup(t, { MESA_SECRETS_BACKEND: "encrypted-file", MESA_VAULT_PASSPHRASE: "correct horse" });
  const store = await openSecretStore(config);
  assert.equal(store.backend, "encrypted-file");
  await store.set(O, KEY_O);
  const file = vaultPath(config);
  const bytes = readFileSync(file);
  assert.equal(statSync(file).mode & 0o777, 0o600);
  assert.match(bytes.subarray(0, 40).toString("latin1"), /^age-encryption\.org\/v1\n-> scrypt /);
  assert.ok(!bytes.includes(Buffer.from("ORGORG")), "the key is not stored in the clear");

  // Decrypted once per process: stores opened later read the decrypted copy while the
  // file is unchanged (a scrypt run takes seconds; a cached read well under one).
  const t0 = performance.now();
  for (let i = 0; i < 5; i++) assert.equal(await (await openSecretStore(config)).get(O), KEY_O);
  const cached = performance.now() - t0;
  assert.ok(cached < 250, `5 reads took ${cached} ms: the vault was decrypted again`);
  // A new version of the file (as another process would write) is decrypted again, not served stale.
  const other = await openSecretStore(config);
  writeFileSync(file, readFileSync(file));
  assert.equal(await other.get(O), KEY_O);

  const wrong = { ...config, env: { ...config.env, vaultPassphrase: "wrong horse" } };
  const bad = await openSecretStore(wrong);
  for (const op of [() => bad.get(O), () => bad.set(G, KEY_G)]) {
    await assert.rejects(
      op(),
      (e) => isMesaError(e, "VAULT_PASSPHRASE") && /wrong passphrase/.test(e.message),
    );
  }
  assert.deepEqual(readFileSync(file), bytes, "a wrong passphrase changes nothing");

  const none = { ...config, env: { ...config.env, vaultPassphrase: undefined } };
  await assert.rejects((await openSecretStore(none, { nonInteractive: true })).get(O), (e) =>
    isMesaError(e, "VAULT_PASSPHRASE"),
  );

  const damaged = Buffer.from("age-encryption.org/v1\n-> scrypt broken\n");
  writeFileSync(file, damaged);
  await assert.rejects((await openSecretStore(config)).set(G, KEY_G), (e) =>
    isMesaError(e, "SECRET_STORE_CORRUPT"),
  );
  assert.deepEqual(readFileSync(file), damaged, "a damaged vault is not overwritten");
});
