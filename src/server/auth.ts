import { apiKeyHash, SCOPES, type Scope, scopeAllows } from "../auth/keys.js";
import { looksLikeJwt, verifyAccessToken } from "../auth/tokens.js";
import { isMesaError } from "../errors.js";
import { forbidden, unauthorized } from "./errors.js";
import type { ApiKeyRecord, OrgRecord, StateStore } from "./state.js";

/** Who a request acts as, after clamping a token to its signing key's current rights. */
export interface Principal {
  org: OrgRecord;
  /** API key id, or `pk_…` for a registered public key. */
  keyId: string;
  keyName: string | null;
  scopes: Scope[];
  /** `org/repo` names, or null for every repo of the org. */
  repos: string[] | null;
}

function usable(k: { revoked_at: string | null; expires_at?: string | null }, now: number): boolean {
  if (k.revoked_at) return false;
  return !k.expires_at || Date.parse(k.expires_at) > now;
}

/** Scopes of `asked` that `allowed` grants; the hierarchy means the result is all-or-prefix. */
function clampScopes(asked: Scope[], allowed: Scope[]): Scope[] {
  return SCOPES.filter((s) => asked.some((a) => scopeAllows([a], s)) && scopeAllows(allowed, s));
}

function clampRepos(asked: string[] | null, allowed: string[] | null): string[] | null {
  if (asked === null) return allowed;
  if (allowed === null) return asked;
  return asked.filter((r) => allowed.includes(r));
}

/** The credential of a REST (Bearer) or Git (Basic password, or Bearer) request. */
export function credentialFrom(header: string | undefined): string | undefined {
  if (!header || header.length > 16_384) return undefined;
  const m = /^(Bearer|Basic)\s+(\S+)\s*$/i.exec(header);
  if (!m) return undefined;
  if (m[1]!.toLowerCase() === "bearer") return m[2];
  const decoded = Buffer.from(m[2]!, "base64").toString("utf8");
  const colon = decoded.indexOf(":");
  const pass = colon < 0 ? "" : decoded.slice(colon + 1);
  return pass.length > 0 ? pass : undefined;
}

const keyPrincipal = (org: OrgRecord, key: ApiKeyRecord): Principal => ({
  org,
  keyId: key.id,
  keyName: key.name,
  scopes: SCOPES.filter((s) => scopeAllows(key.scopes, s)),
  repos: key.repos,
});

/** Verifies an API key or access token; throws the 401 ApiError otherwise. */
export async function authenticate(store: StateStore, credential: string | undefined): Promise<Principal> {
  if (!credential) throw unauthorized();
  const now = Date.now();
  if (!looksLikeJwt(credential)) {
    const hit = store.keyByHash(apiKeyHash(credential));
    if (!hit || !usable(hit.key, now)) throw unauthorized();
    return keyPrincipal(hit.org, hit.key);
  }
  let token: Awaited<ReturnType<typeof verifyAccessToken>>;
  try {
    token = await verifyAccessToken(credential, {
      apiKeyHashById(id) {
        const hit = store.keyById(id);
        return hit && usable(hit.key, now) ? hit.key.hash : undefined;
      },
      isRegisteredPublicKey(org, x) {
        return store.org(org)?.public_keys.some((k) => k.x === x && !k.revoked_at) ?? false;
      },
    });
  } catch (err) {
    if (isMesaError(err, "TOKEN_EXPIRED")) throw unauthorized("the access token has expired");
    throw unauthorized();
  }
  if (token.kind === "api-key-token") {
    const hit = store.keyById(token.keyId);
    if (!hit || !usable(hit.key, now)) throw unauthorized();
    const base = keyPrincipal(hit.org, hit.key);
    return {
      ...base,
      scopes: clampScopes(token.scopes, base.scopes),
      repos: clampRepos(token.repos, base.repos),
    };
  }
  const org = store.org(token.org);
  const pk = org?.public_keys.find((k) => k.x === token.publicX && !k.revoked_at);
  if (!org || !pk) throw unauthorized();
  return {
    org,
    keyId: pk.id,
    keyName: pk.name,
    scopes: clampScopes(token.scopes, pk.scopes),
    repos: token.repos,
  };
}

/** 403 unless the principal may act with `scope` on the org (and the repo, when given). */
export function authorize(p: Principal, org: string, repo: string | undefined, scope: Scope): void {
  if (p.org.name !== org) throw forbidden();
  if (!scopeAllows(p.scopes, scope)) throw forbidden(`this credential lacks the '${scope}' scope`);
  if (repo !== undefined && p.repos !== null && !p.repos.includes(`${org}/${repo}`))
    throw forbidden("this credential does not cover this repository");
}

export function canSeeRepo(p: Principal, org: string, repo: string): boolean {
  return p.org.name === org && (p.repos === null || p.repos.includes(`${org}/${repo}`));
}

/** A usable API key with the admin scope over every repo of its org: the key that can recover all others. */
export function isOrgAdminKey(k: ApiKeyRecord, now = Date.now()): boolean {
  return usable(k, now) && k.repos === null && scopeAllows(k.scopes, "admin");
}

/**
 * True when a key's rights lie within the principal's: every scope of the key is one the principal
 * holds, and the key reaches only repos the principal reaches. An org-wide admin sees every key.
 */
export function keyWithinRights(p: Principal, k: ApiKeyRecord): boolean {
  if (!k.scopes.every((s) => scopeAllows(p.scopes, s))) return false;
  if (p.repos === null) return true;
  const within = p.repos;
  return k.repos?.every((r) => within.includes(r)) ?? false;
}
