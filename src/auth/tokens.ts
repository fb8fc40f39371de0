import { randomUUID } from "node:crypto";
import { decodeProtectedHeader, EmbeddedJWK, errors as joseErrors, jwtVerify, SignJWT } from "jose";
import { MesaError } from "../errors.js";
import { nameProblem, parseRepoSlug } from "../names.js";
import { apiKeyHash, apiKeyId, hmacSecretFromHash, isScope, parsePrivateKey, type Scope } from "./keys.js";

export const TOKEN_TYPE = "mesa-at+jwt";
export const TOKEN_AUDIENCE = "mesa-api";

/** TTL bounds in seconds (compat.md §5). */
export const API_KEY_TTL = { min: 1, max: 24 * 3600, default: 3600 } as const;
export const PRIVATE_KEY_TTL = { min: 1, max: 4 * 3600, default: 15 * 60 } as const;

export interface MintOptions {
  scopes: Scope[];
  /** `org/repo` names, or null for every repo the key can reach. */
  repos: string[] | null;
  ttlSeconds?: number;
  /** Seconds since the epoch; injectable for tests. */
  now?: number;
}

/** Scopes must be non-empty and repos `org/repo` names, or the server could not clamp them. */
function checkClaims(opts: MintOptions): void {
  if (opts.scopes.length === 0 || !opts.scopes.every((s) => isScope(s)))
    throw new MesaError("INVALID_ARGUMENT", "a token needs at least one scope of read, write or admin");
  if (opts.repos !== null) for (const slug of opts.repos) parseRepoSlug(slug);
}

function checkTtl(ttl: number, bounds: { min: number; max: number }): void {
  if (!Number.isInteger(ttl) || ttl < bounds.min || ttl > bounds.max) {
    throw new MesaError(
      "INVALID_ARGUMENT",
      `token TTL ${ttl} s is out of range: use ${bounds.min} to ${bounds.max} seconds`,
    );
  }
}

/** HS256 token from an API key. `keyId` must be given for keys that do not embed it. */
export async function mintFromApiKey(
  apiKey: string,
  opts: MintOptions & { keyId?: string },
): Promise<string> {
  const keyId = opts.keyId ?? apiKeyId(apiKey);
  if (!keyId)
    throw new MesaError(
      "INVALID_KEY",
      "this API key does not carry its key id and the server did not name it",
      {
        hint: "check the key and that MESA_SERVICE_URL points at the server that issued it",
      },
    );
  checkClaims(opts);
  const ttl = opts.ttlSeconds ?? API_KEY_TTL.default;
  checkTtl(ttl, API_KEY_TTL);
  const iat = opts.now ?? Math.floor(Date.now() / 1000);
  return new SignJWT({ scopes: opts.scopes, repos: opts.repos })
    .setProtectedHeader({ alg: "HS256", typ: TOKEN_TYPE, kid: `${keyId}.v1` })
    .setIssuer(keyId)
    .setAudience(TOKEN_AUDIENCE)
    .setIssuedAt(iat)
    .setExpirationTime(iat + ttl)
    .setJti(randomUUID())
    .sign(hmacSecretFromHash(apiKeyHash(apiKey)));
}

/** EdDSA token from a `mesa_private_key_<org>_…` key; the public key travels in the header. */
export async function mintFromPrivateKey(privateKey: string, opts: MintOptions): Promise<string> {
  const parsed = parsePrivateKey(privateKey);
  checkClaims(opts);
  const ttl = opts.ttlSeconds ?? PRIVATE_KEY_TTL.default;
  checkTtl(ttl, PRIVATE_KEY_TTL);
  const iat = opts.now ?? Math.floor(Date.now() / 1000);
  return new SignJWT({ scopes: opts.scopes, repos: opts.repos })
    .setProtectedHeader({
      alg: "EdDSA",
      typ: TOKEN_TYPE,
      jwk: { kty: "OKP", crv: "Ed25519", x: parsed.publicX },
    })
    .setIssuer(parsed.org)
    .setAudience(TOKEN_AUDIENCE)
    .setIssuedAt(iat)
    .setExpirationTime(iat + ttl)
    .setJti(randomUUID())
    .sign(parsed.privateKey);
}

export function looksLikeJwt(credential: string): boolean {
  return /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/.test(credential);
}

export type VerifiedToken =
  | { kind: "api-key-token"; keyId: string; scopes: Scope[]; repos: string[] | null; exp: number }
  | {
      kind: "private-key-token";
      org: string;
      publicX: string;
      scopes: Scope[];
      repos: string[] | null;
      exp: number;
    };

/** What a verifier knows: only hashes of API keys and registered public keys. */
export interface TokenKeyLookup {
  /** SHA-256 hex of the API key with this id, if it exists and is not revoked. */
  apiKeyHashById(keyId: string): Promise<string | undefined> | string | undefined;
  /** Whether this Ed25519 public key (JWK x) is registered for the org. */
  isRegisteredPublicKey(org: string, publicX: string): Promise<boolean> | boolean;
}

const invalid = (why: string) => new MesaError("TOKEN_INVALID", `invalid access token: ${why}`);

function readClaims(payload: Record<string, unknown>): { scopes: Scope[]; repos: string[] | null } {
  const { scopes, repos } = payload;
  if (
    !Array.isArray(scopes) ||
    scopes.length === 0 ||
    !scopes.every((s) => typeof s === "string" && isScope(s))
  )
    throw invalid("bad scopes");
  const slug = (r: unknown) => {
    if (typeof r !== "string") return false;
    const parts = r.split("/");
    return parts.length === 2 && !nameProblem(parts[0]!) && !nameProblem(parts[1]!);
  };
  if (repos !== null && repos !== undefined && !(Array.isArray(repos) && repos.every(slug))) {
    throw invalid("bad repos");
  }
  return { scopes: scopes as Scope[], repos: (repos as string[] | undefined) ?? null };
}

/** Tolerated clock difference between minter and verifier, in seconds. */
export const CLOCK_SKEW_SECONDS = 60;

/**
 * A token may not live longer than its kind allows, nor be issued in the future: a key
 * holder signing `exp` far ahead would otherwise get a token that outlives the TTL rules.
 */
function checkLifetime(payload: { iat?: number; exp?: number }, max: number, now: number): void {
  const { iat, exp } = payload;
  if (typeof iat !== "number" || typeof exp !== "number") throw invalid("missing iat or exp");
  if (iat > now + CLOCK_SKEW_SECONDS) throw invalid("issued in the future");
  if (exp - iat > max) throw invalid(`lifetime over ${max} s`);
}

/** Verifies either token kind; throws TOKEN_EXPIRED or TOKEN_INVALID. */
export async function verifyAccessToken(
  token: string,
  lookup: TokenKeyLookup,
  now?: number,
): Promise<VerifiedToken> {
  let header: ReturnType<typeof decodeProtectedHeader>;
  try {
    header = decodeProtectedHeader(token);
  } catch {
    throw invalid("malformed");
  }
  if (header.typ !== TOKEN_TYPE) throw invalid("wrong type");
  const nowSeconds = now ?? Math.floor(Date.now() / 1000);
  const common = {
    audience: TOKEN_AUDIENCE,
    typ: TOKEN_TYPE,
    currentDate: now ? new Date(now * 1000) : undefined,
  };
  try {
    if (header.alg === "HS256") {
      const kid =
        typeof header.kid === "string" && header.kid.endsWith(".v1") ? header.kid.slice(0, -3) : undefined;
      if (!kid) throw invalid("missing key id");
      const hash = await lookup.apiKeyHashById(kid);
      if (!hash) throw invalid("unknown key");
      const { payload } = await jwtVerify(token, hmacSecretFromHash(hash), {
        ...common,
        algorithms: ["HS256"],
        issuer: kid,
        requiredClaims: ["exp", "iat"],
      });
      checkLifetime(payload, API_KEY_TTL.max, nowSeconds);
      return { kind: "api-key-token", keyId: kid, exp: payload.exp!, ...readClaims(payload) };
    }
    if (header.alg === "EdDSA") {
      const jwk = header.jwk;
      if (jwk?.kty !== "OKP" || jwk.crv !== "Ed25519" || typeof jwk.x !== "string") throw invalid("bad key");
      const { payload } = await jwtVerify(token, EmbeddedJWK, {
        ...common,
        algorithms: ["EdDSA"],
        requiredClaims: ["exp", "iat", "iss"],
      });
      checkLifetime(payload, PRIVATE_KEY_TTL.max, nowSeconds);
      const org = payload.iss!;
      if (nameProblem(org)) throw invalid("bad issuer");
      if (!(await lookup.isRegisteredPublicKey(org, jwk.x))) throw invalid("unregistered key");
      return { kind: "private-key-token", org, publicX: jwk.x, exp: payload.exp!, ...readClaims(payload) };
    }
  } catch (err) {
    if (err instanceof MesaError) throw err;
    if (err instanceof joseErrors.JWTExpired)
      throw new MesaError("TOKEN_EXPIRED", "the access token has expired");
    throw invalid("signature or claims do not verify");
  }
  throw invalid("unsupported algorithm");
}
