import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { test } from "node:test";
import { decodeJwt, decodeProtectedHeader, EmbeddedJWK, jwtVerify, SignJWT } from "jose";
import {
  apiKeyHash,
  apiKeyId,
  generateApiKey,
  generatePrivateKey,
  parsePrivateKey,
  parseScopes,
  scopeAllows,
  validateKeyText,
} from "../src/auth/keys.js";
import { mintAccessToken } from "../src/auth/mint.js";
import {
  API_KEY_TTL,
  mintFromApiKey,
  mintFromPrivateKey,
  PRIVATE_KEY_TTL,
  type TokenKeyLookup,
  verifyAccessToken,
} from "../src/auth/tokens.js";
import { isMesaError } from "../src/errors.js";

/** What a server stores: SHA-256 of each API key by id, and registered public keys. */
function serverLookup(apiKeys: string[], publicKeys: Array<{ org: string; x: string }> = []): TokenKeyLookup {
  const hashes = new Map(apiKeys.map((k) => [apiKeyId(k)!, apiKeyHash(k)]));
  return {
    apiKeyHashById: (id) => hashes.get(id),
    isRegisteredPublicKey: (org, x) => publicKeys.some((p) => p.org === org && p.x === x),
  };
}

const now = () => Math.floor(Date.now() / 1000);

function tamper(token: string, change: (payload: Record<string, unknown>) => void): string {
  const [h, p, s] = token.split(".");
  const payload = JSON.parse(Buffer.from(p!, "base64url").toString("utf8"));
  change(payload);
  return `${h}.${Buffer.from(JSON.stringify(payload)).toString("base64url")}.${s}`;
}

async function rejects(
  p: Promise<unknown>,
  code: "TOKEN_INVALID" | "TOKEN_EXPIRED" | "INVALID_ARGUMENT" | "INVALID_KEY",
) {
  await assert.rejects(p, (e) => isMesaError(e, code));
}

test("auth: scopes are hierarchical and parsed strictly", () => {
  assert.deepEqual(parseScopes("read, write,read"), ["read", "write"]);
  assert.ok(scopeAllows(["admin"], "write"));
  assert.ok(scopeAllows(["write"], "read"));
  assert.ok(!scopeAllows(["read"], "write"));
  assert.throws(
    () => parseScopes("read,owner"),
    (e) => isMesaError(e, "INVALID_ARGUMENT"),
  );
  assert.throws(
    () => parseScopes(" , "),
    (e) => isMesaError(e, "INVALID_ARGUMENT"),
  );
});

test("auth: key text and key formats", () => {
  const { id, key } = generateApiKey();
  assert.match(key, /^mesa_live_[a-z0-9]{16}_[A-Za-z0-9]{40}$/);
  assert.equal(apiKeyId(key), id);
  assert.equal(apiKeyId("sk_foreign_123"), undefined);
  for (const bad of ["", "a b", "a\nb", "a\tb", "x".repeat(4097)])
    assert.throws(
      () => validateKeyText(bad),
      (e) => isMesaError(e, "INVALID_KEY") && !e.message.includes(bad || "\u0000"),
    );
  const pk = generatePrivateKey("acme");
  assert.equal(parsePrivateKey(pk.key).publicX, pk.publicX);
  assert.equal(parsePrivateKey(pk.key).org, "acme");
  for (const bad of [
    `${pk.key.slice(0, -64)}AAAA${pk.key.slice(-60)}`,
    pk.key.slice(0, -1),
    "mesa_private_key_acme_",
    "mesa_private_key_.._" + pk.key.slice(-64),
  ]) {
    assert.throws(
      () => parsePrivateKey(bad),
      (e) =>
        (isMesaError(e, "INVALID_KEY") || isMesaError(e, "INVALID_NAME")) &&
        !e.message.includes(pk.key.slice(-20)),
    );
  }
});

test("auth: API-key token verifies with jose from the stored SHA-256 alone (compat.md §5)", async () => {
  const { id, key } = generateApiKey();
  const token = await mintFromApiKey(key, { scopes: ["read"], repos: ["acme/app"], ttlSeconds: 120 });
  const header = decodeProtectedHeader(token);
  assert.deepEqual(header, { alg: "HS256", typ: "mesa-at+jwt", kid: `${id}.v1` });
  // Independent derivation: HMAC key = UTF-8 of base64url(SHA-256(key)), from the stored hex hash.
  const storedHex = createHash("sha256").update(key).digest("hex");
  const secret = new TextEncoder().encode(Buffer.from(storedHex, "hex").toString("base64url"));
  const { payload } = await jwtVerify(token, secret, {
    audience: "mesa-api",
    issuer: id,
    typ: "mesa-at+jwt",
  });
  assert.deepEqual(payload.scopes, ["read"]);
  assert.deepEqual(payload.repos, ["acme/app"]);
  assert.equal(payload.exp! - payload.iat!, 120);
  assert.equal(typeof payload.jti, "string");

  const v = await verifyAccessToken(token, serverLookup([key]));
  assert.deepEqual(v, {
    kind: "api-key-token",
    keyId: id,
    scopes: ["read"],
    repos: ["acme/app"],
    exp: payload.exp,
  });
  const all = await verifyAccessToken(
    await mintFromApiKey(key, { scopes: ["write"], repos: null }),
    serverLookup([key]),
  );
  assert.equal(all.repos, null);
});

test("auth: API-key tokens fail when expired, tampered, signed by another key or unknown", async () => {
  const a = generateApiKey();
  const b = generateApiKey();
  const lookup = serverLookup([a.key, b.key]);
  const expired = await mintFromApiKey(a.key, {
    scopes: ["read"],
    repos: null,
    ttlSeconds: 60,
    now: now() - 120,
  });
  await rejects(verifyAccessToken(expired, lookup), "TOKEN_EXPIRED");
  const good = await mintFromApiKey(a.key, { scopes: ["read"], repos: ["acme/app"] });
  await rejects(
    verifyAccessToken(
      tamper(good, (p) => (p.scopes = ["admin"])),
      lookup,
    ),
    "TOKEN_INVALID",
  );
  await rejects(
    verifyAccessToken(
      tamper(good, (p) => (p.repos = null)),
      lookup,
    ),
    "TOKEN_INVALID",
  );
  await rejects(
    verifyAccessToken(
      tamper(good, (p) => (p.exp = (p.exp as number) + 3600)),
      lookup,
    ),
    "TOKEN_INVALID",
  );
  // b signs a token claiming to be a's key.
  const forged = await mintFromApiKey(b.key, { scopes: ["admin"], repos: null, keyId: a.id });
  await rejects(verifyAccessToken(forged, lookup), "TOKEN_INVALID");
  // Revoked (unknown) key.
  await rejects(verifyAccessToken(good, serverLookup([b.key])), "TOKEN_INVALID");
  await rejects(verifyAccessToken("not.a.jwt", lookup), "TOKEN_INVALID");
  await rejects(verifyAccessToken(`${good.split(".").slice(0, 2).join(".")}.`, lookup), "TOKEN_INVALID");
});

test("auth: a key holder cannot stretch a token past the TTL rules", async () => {
  const { id, key } = generateApiKey();
  const secret = new TextEncoder().encode(Buffer.from(apiKeyHash(key), "hex").toString("base64url"));
  const sign = (iat: number, exp: number) =>
    new SignJWT({ scopes: ["read"], repos: null })
      .setProtectedHeader({ alg: "HS256", typ: "mesa-at+jwt", kid: `${id}.v1` })
      .setIssuer(id)
      .setAudience("mesa-api")
      .setIssuedAt(iat)
      .setExpirationTime(exp)
      .sign(secret);
  const lookup = serverLookup([key]);
  await rejects(verifyAccessToken(await sign(now(), now() + API_KEY_TTL.max + 10), lookup), "TOKEN_INVALID");
  await rejects(verifyAccessToken(await sign(now() + 3600, now() + 3700), lookup), "TOKEN_INVALID");
  const ok = await verifyAccessToken(await sign(now(), now() + API_KEY_TTL.max), lookup);
  assert.equal(ok.kind === "api-key-token" && ok.keyId, id);
});

test("auth: private-key token verifies with only the registered public key", async () => {
  const pk = generatePrivateKey("acme");
  const other = generatePrivateKey("acme");
  const lookup = serverLookup([], [{ org: "acme", x: pk.publicX }]);
  const token = await mintFromPrivateKey(pk.key, { scopes: ["read", "write"], repos: ["acme/app"] });
  assert.deepEqual(decodeProtectedHeader(token), {
    alg: "EdDSA",
    typ: "mesa-at+jwt",
    jwk: { kty: "OKP", crv: "Ed25519", x: pk.publicX },
  });
  const { payload } = await jwtVerify(token, EmbeddedJWK, { audience: "mesa-api", issuer: "acme" });
  assert.equal(payload.exp! - payload.iat!, PRIVATE_KEY_TTL.default);
  const v = await verifyAccessToken(token, lookup);
  assert.equal(v.kind, "private-key-token");
  assert.deepEqual(v.kind === "private-key-token" && [v.org, v.publicX, v.scopes], [
    "acme",
    pk.publicX,
    ["read", "write"],
  ]);

  await rejects(
    verifyAccessToken(await mintFromPrivateKey(other.key, { scopes: ["read"], repos: null }), lookup),
    "TOKEN_INVALID",
  );
  await rejects(
    verifyAccessToken(
      tamper(token, (p) => (p.scopes = ["admin"])),
      lookup,
    ),
    "TOKEN_INVALID",
  );
  await rejects(
    verifyAccessToken(
      tamper(token, (p) => (p.iss = "beta")),
      lookup,
    ),
    "TOKEN_INVALID",
  );
  const expired = await mintFromPrivateKey(pk.key, {
    scopes: ["read"],
    repos: null,
    ttlSeconds: 10,
    now: now() - 100,
  });
  await rejects(verifyAccessToken(expired, lookup), "TOKEN_EXPIRED");
  // The header's key swapped for another registered-looking key does not verify the signature.
  const [h, p, s] = token.split(".");
  const header = JSON.parse(Buffer.from(h!, "base64url").toString());
  header.jwk.x = other.publicX;
  const swapped = `${Buffer.from(JSON.stringify(header)).toString("base64url")}.${p}.${s}`;
  await rejects(
    verifyAccessToken(swapped, serverLookup([], [{ org: "acme", x: other.publicX }])),
    "TOKEN_INVALID",
  );
});

test("auth: TTL bounds: 1 s–24 h for API keys, 1 s–4 h for private keys", async () => {
  const { key } = generateApiKey();
  const pk = generatePrivateKey("acme");
  for (const ttl of [0, -1, 1.5, API_KEY_TTL.max + 1])
    await rejects(
      mintFromApiKey(key, { scopes: ["read"], repos: null, ttlSeconds: ttl }),
      "INVALID_ARGUMENT",
    );
  for (const ttl of [0, PRIVATE_KEY_TTL.max + 1])
    await rejects(
      mintFromPrivateKey(pk.key, { scopes: ["read"], repos: null, ttlSeconds: ttl }),
      "INVALID_ARGUMENT",
    );
  const edge = decodeJwt(
    await mintFromApiKey(key, { scopes: ["read"], repos: null, ttlSeconds: API_KEY_TTL.max }),
  );
  assert.equal(edge.exp! - edge.iat!, 86400);
  const one = decodeJwt(await mintFromPrivateKey(pk.key, { scopes: ["read"], repos: null, ttlSeconds: 1 }));
  assert.equal(one.exp! - one.iat!, 1);
  await rejects(mintFromApiKey(key, { scopes: [], repos: null }), "INVALID_ARGUMENT");
  await assert.rejects(mintFromApiKey(key, { scopes: ["read"], repos: ["../x"] }), (e) =>
    isMesaError(e, "INVALID_NAME"),
  );
});

test("auth: mintAccessToken picks the token kind from the credential", async () => {
  const ours = generateApiKey();
  let asked = 0;
  const keyIdOf = async () => {
    asked++;
    return "foreign-key-7";
  };
  const req = { org: "acme", repos: null, scopes: ["read" as const] };
  const t1 = await mintAccessToken(ours.key, req, keyIdOf);
  assert.equal(decodeJwt(t1).iss, ours.id);
  assert.equal(asked, 0, "our keys need no network");
  const foreign = "sk_live_Foreign0123456789";
  const t2 = await mintAccessToken(foreign, req, keyIdOf);
  assert.equal(asked, 1);
  assert.equal(decodeProtectedHeader(t2).kid, "foreign-key-7.v1");
  const verified = await verifyAccessToken(t2, {
    apiKeyHashById: (id) => (id === "foreign-key-7" ? apiKeyHash(foreign) : undefined),
    isRegisteredPublicKey: () => false,
  });
  assert.equal(verified.kind, "api-key-token");
  const pk = generatePrivateKey("acme");
  assert.equal(decodeJwt(await mintAccessToken(pk.key, req, keyIdOf)).iss, "acme");
  await rejects(mintAccessToken(generatePrivateKey("beta").key, req, keyIdOf), "INVALID_KEY");
  await rejects(mintAccessToken(t1, req, keyIdOf), "INVALID_KEY");
  await assert.rejects(
    mintAccessToken(foreign, req, async () => "bad id\n"),
    (e) => isMesaError(e, "PROTOCOL"),
  );
});
