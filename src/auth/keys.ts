import {
  createHash,
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  type KeyObject,
  randomBytes,
} from "node:crypto";
import { MesaError } from "../errors.js";
import { validateOrgName } from "../names.js";

/** Hierarchical scopes (compat.md §5): each one includes the ones before it. */
export const SCOPES = ["read", "write", "admin"] as const;
export type Scope = (typeof SCOPES)[number];

export function isScope(s: string): s is Scope {
  return (SCOPES as readonly string[]).includes(s);
}

/** True when the granted scopes include `needed` (write implies read, admin implies both). */
export function scopeAllows(granted: readonly Scope[], needed: Scope): boolean {
  const rank = SCOPES.indexOf(needed);
  return granted.some((g) => SCOPES.indexOf(g) >= rank);
}

export function parseScopes(list: string): Scope[] {
  const scopes = list
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean);
  if (scopes.length === 0)
    throw new MesaError("INVALID_ARGUMENT", "no scope given: use read, write or admin");
  for (const s of scopes) {
    if (!isScope(s))
      throw new MesaError("INVALID_ARGUMENT", `unknown scope ${JSON.stringify(s)}: use read, write or admin`);
  }
  return [...new Set(scopes)] as Scope[];
}

/**
 * API keys of our own format carry their key id, so a token can be minted from them
 * without asking the server who they are: `mesa_live_<16 lowercase alnum>_<40 alnum>`.
 */
const API_KEY_RE = /^mesa_live_([a-z0-9]{16})_([A-Za-z0-9]{40})$/;
const ALNUM = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";

function randomString(alphabet: string, length: number): string {
  // Rejection sampling keeps the distribution uniform.
  let out = "";
  const limit = 256 - (256 % alphabet.length);
  while (out.length < length) {
    for (const b of randomBytes(length * 2)) {
      if (b < limit && out.length < length) out += alphabet[b % alphabet.length];
    }
  }
  return out;
}

export function generateApiKey(): { id: string; key: string } {
  const id = randomString(ALNUM.slice(0, 26) + ALNUM.slice(52), 16);
  return { id, key: `mesa_live_${id}_${randomString(ALNUM, 40)}` };
}

/** The key id embedded in one of our API keys, or undefined for a foreign key. */
export function apiKeyId(key: string): string | undefined {
  return API_KEY_RE.exec(key)?.[1];
}

/** What a server stores instead of the key: its SHA-256, hex. */
export function apiKeyHash(key: string): string {
  return createHash("sha256").update(key, "utf8").digest("hex");
}

/**
 * The HS256 secret for tokens minted from an API key: the UTF-8 bytes of
 * base64url-without-padding(SHA-256(key)) — derivable from the stored hash alone.
 */
export function hmacSecretFromHash(sha256Hex: string): Uint8Array {
  return new TextEncoder().encode(Buffer.from(sha256Hex, "hex").toString("base64url"));
}

export function isPrivateKey(key: string): boolean {
  return key.startsWith("mesa_private_key_");
}

/** Ed25519 PKCS#8 DER is 48 bytes, so its unpadded base64url is exactly 64 characters. */
const PRIVATE_KEY_B64_LEN = 64;

export interface ParsedPrivateKey {
  org: string;
  privateKey: KeyObject;
  /** base64url public key (the JWK `x`), which the server registers for the org. */
  publicX: string;
}

export function parsePrivateKey(key: string): ParsedPrivateKey {
  const rest = key.slice("mesa_private_key_".length);
  const bad = () =>
    new MesaError("INVALID_KEY", "malformed private key: expected mesa_private_key_<org>_<key>");
  if (rest.length < PRIVATE_KEY_B64_LEN + 2 || rest[rest.length - PRIVATE_KEY_B64_LEN - 1] !== "_")
    throw bad();
  const org = rest.slice(0, rest.length - PRIVATE_KEY_B64_LEN - 1);
  validateOrgName(org);
  let privateKey: KeyObject;
  try {
    const der = Buffer.from(rest.slice(-PRIVATE_KEY_B64_LEN), "base64url");
    privateKey = createPrivateKey({ key: der, format: "der", type: "pkcs8" });
  } catch {
    throw bad();
  }
  if (privateKey.asymmetricKeyType !== "ed25519") throw bad();
  const jwk = createPublicKey(privateKey).export({ format: "jwk" });
  return { org, privateKey, publicX: jwk.x as string };
}

export function generatePrivateKey(org: string): { key: string; publicX: string } {
  validateOrgName(org);
  const { privateKey, publicKey } = generateKeyPairSync("ed25519");
  const der = privateKey.export({ format: "der", type: "pkcs8" });
  const x = publicKey.export({ format: "jwk" }).x as string;
  return { key: `mesa_private_key_${org}_${der.toString("base64url")}`, publicX: x };
}

/**
 * Keys are single tokens: no whitespace anywhere. Input from stdin has its trailing
 * newline trimmed by the caller before this check.
 */
export function validateKeyText(key: string): string {
  if (key.length === 0) throw new MesaError("INVALID_KEY", "the key is empty");
  if (/\s/.test(key)) throw new MesaError("INVALID_KEY", "the key contains whitespace or a line break");
  if (key.length > 4096) throw new MesaError("INVALID_KEY", "the key is longer than 4096 characters");
  return key;
}
