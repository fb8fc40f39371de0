/** `mesa.tokens`: access tokens signed locally from the client's key (no network call). */
import { isScope, type Scope } from "../auth/keys.js";
import { API_KEY_TTL } from "../auth/tokens.js";
import type { Client } from "./client.js";
import { InvalidOptionsError } from "./errors.js";

export interface CreateTokenOptions {
  /** Default ["read", "write"]. */
  scopes?: Scope[];
  /** Repos the token reaches ("app" or "org/app"); default every repo the key reaches. */
  repos?: string[];
  /** 1–86,400 s for API keys (default 3,600); 1–14,400 s for private keys (default 900). */
  ttlSeconds?: number;
  /** The original SDK's spelling of `ttlSeconds`. */
  ttl_seconds?: number;
}

export interface Token {
  token: string;
  expiresAt: Date;
}

function expiry(token: string): Date {
  const payload = JSON.parse(Buffer.from(token.split(".")[1], "base64url").toString("utf8")) as {
    exp: number;
  };
  return new Date(payload.exp * 1000);
}

export class Tokens {
  constructor(private readonly client: Client) {}

  async create(opts: CreateTokenOptions = {}): Promise<Token> {
    const scopes = opts.scopes ?? ["read", "write"];
    if (!Array.isArray(scopes) || scopes.length === 0 || !scopes.every((s) => isScope(s)))
      throw new InvalidOptionsError("scopes must be a non-empty list of read, write, admin");
    const ttl = opts.ttlSeconds ?? opts.ttl_seconds;
    if (ttl !== undefined && (!Number.isInteger(ttl) || ttl < 1 || ttl > API_KEY_TTL.max))
      throw new InvalidOptionsError(`ttlSeconds must be a whole number from 1 to ${API_KEY_TTL.max}`);
    const org = await this.client.org();
    const repos =
      opts.repos === undefined
        ? null
        : await Promise.all(opts.repos.map(async (r) => `${org}/${await this.client.repoName(r)}`));
    const token = await this.client.mint({ repos, scopes, ttlSeconds: ttl });
    return { token, expiresAt: expiry(token) };
  }
}

export { expiry as tokenExpiry };
