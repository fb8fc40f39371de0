import { MesaError } from "../errors.js";
import { apiKeyId, isPrivateKey, parsePrivateKey, type Scope } from "./keys.js";
import { looksLikeJwt, mintFromApiKey, mintFromPrivateKey } from "./tokens.js";

export interface TokenRequest {
  org: string;
  /** `org/repo` names, or null for every repo the key reaches. */
  repos: string[] | null;
  scopes: Scope[];
  /** Default: 1 h for API keys, 15 min for private keys (compat.md §5). */
  ttlSeconds?: number;
}

/** Key ids must be safe in a JWT `kid`/`iss`; anything else from a server is refused. */
const KEY_ID_RE = /^[A-Za-z0-9._-]{1,128}$/;

/**
 * Mints an access token locally from whatever credential the store holds for the org:
 * a private key (EdDSA), one of our API keys (HS256, key id embedded), or a foreign API
 * key whose id `keyIdOf` asks the server for (GET /v1/whoami). Tokens cannot mint tokens.
 */
export async function mintAccessToken(
  credential: string,
  req: TokenRequest,
  keyIdOf: (apiKey: string) => Promise<string>,
): Promise<string> {
  if (looksLikeJwt(credential))
    throw new MesaError(
      "INVALID_KEY",
      `the credential for organization '${req.org}' is an access token, which cannot mint tokens`,
      { hint: `store an API key or private key with \`mesa auth set-key --org ${req.org}\`` },
    );
  const opts = { scopes: req.scopes, repos: req.repos, ttlSeconds: req.ttlSeconds };
  if (isPrivateKey(credential)) {
    const { org } = parsePrivateKey(credential);
    if (org !== req.org)
      throw new MesaError(
        "INVALID_KEY",
        `the stored private key belongs to organization '${org}', not '${req.org}'`,
      );
    return mintFromPrivateKey(credential, opts);
  }
  const keyId = apiKeyId(credential) ?? (await keyIdOf(credential));
  if (!KEY_ID_RE.test(keyId))
    throw new MesaError("PROTOCOL", "the server answered /v1/whoami with an unusable key id");
  return mintFromApiKey(credential, { ...opts, keyId });
}
