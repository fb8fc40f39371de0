/**
 * What every part of the SDK shares: the configuration (the CLI's config.toml and MESA_*
 * environment, overridden by the constructor's options), the organization, the credential,
 * and REST clients that authenticate with it.
 */
import { isPrivateKey, parsePrivateKey } from "../auth/keys.js";
import { mintAccessToken } from "../auth/mint.js";
import { looksLikeJwt, PRIVATE_KEY_TTL } from "../auth/tokens.js";
import { loadConfig } from "../config/load.js";
import type { Config } from "../config/types.js";
import { validateOrgName, validateRepoName } from "../names.js";
import { envCredential, openSecretStore, resolveCredential } from "../secrets/index.js";
import { RestClient, whoamiKeyId } from "../vcs/rest.js";
import { InvalidOptionsError, sdkCall } from "./errors.js";

export interface MesaOptions {
  /** An API key (or an access token); default MESA_API_KEY, else the CLI's secret store. */
  apiKey?: string;
  /** The organization; default MESA_ORG, the only configured one, or the key's own. */
  org?: string;
  /** A `mesa_private_key_<org>_…` key: tokens are signed with it (EdDSA) instead. */
  privateKey?: string;
  /** Base URL of the service; default MESA_SERVICE_URL or config.toml's `service-url`. */
  serviceUrl?: string;
  /** A config.toml to read instead of the default search. */
  configPath?: string;
}

/** Lifetime of the token a private key signs for the SDK's own REST calls. */
const REST_TOKEN_TTL = 15 * 60;

export class Client {
  readonly config: Config;
  private orgName?: string;
  private credentialValue?: Promise<string>;
  private restToken?: { token: string; until: number };

  constructor(private readonly opts: MesaOptions) {
    if (opts.apiKey !== undefined && opts.privateKey !== undefined)
      throw new InvalidOptionsError("pass apiKey or privateKey, not both");
    if (opts.privateKey !== undefined && !isPrivateKey(opts.privateKey))
      throw new InvalidOptionsError("privateKey must be a mesa_private_key_<org>_… key");
    try {
      const config = loadConfig({ configPath: opts.configPath });
      this.config = opts.serviceUrl ? { ...config, serviceUrl: opts.serviceUrl } : config;
    } catch (err) {
      throw new InvalidOptionsError((err as Error).message);
    }
    const keyOrg = opts.privateKey ? parsePrivateKey(opts.privateKey).org : undefined;
    if (opts.org !== undefined) {
      try {
        validateOrgName(opts.org);
      } catch (err) {
        throw new InvalidOptionsError((err as Error).message);
      }
      if (keyOrg && keyOrg !== opts.org)
        throw new InvalidOptionsError(
          `the private key belongs to organization '${keyOrg}', not '${opts.org}'`,
        );
    }
    const configured = Object.keys(this.config.organizations);
    this.orgName =
      opts.org ?? keyOrg ?? this.config.env.org ?? (configured.length === 1 ? configured[0] : undefined);
  }

  /** The organization, asking the server whose key this is when nothing names it. */
  async org(): Promise<string> {
    if (this.orgName) return this.orgName;
    const rest = new RestClient({ serviceUrl: this.config.serviceUrl, credential: await this.credential() });
    try {
      this.orgName = (await sdkCall(() => rest.whoami())).org.slug;
      return this.orgName;
    } finally {
      await rest.close();
    }
  }

  /** The key (or token) everything is derived from. */
  credential(): Promise<string> {
    this.credentialValue ??= (async () => {
      const given = this.opts.privateKey ?? this.opts.apiKey;
      if (given !== undefined) return given;
      const org = this.orgName ?? this.config.env.org;
      const env = org ? envCredential(this.config, org) : this.config.env.apiKey;
      if (env !== undefined) return env;
      if (!org)
        throw new InvalidOptionsError(
          "no API key: pass apiKey or privateKey, or set MESA_API_KEY and MESA_ORG",
        );
      return sdkCall(async () =>
        resolveCredential(this.config, await openSecretStore(this.config, { nonInteractive: true }), org),
      );
    })();
    this.credentialValue.catch(() => {
      this.credentialValue = undefined;
    });
    return this.credentialValue;
  }

  /** Signs an access token locally (no network for mesa's own keys and private keys). */
  async mint(req: {
    repos: string[] | null;
    scopes: Array<"read" | "write" | "admin">;
    ttlSeconds?: number;
  }): Promise<string> {
    const credential = await this.credential();
    const org = await this.org();
    return sdkCall(() =>
      mintAccessToken(credential, { org, ...req }, (key) => whoamiKeyId(this.config.serviceUrl, key)),
    );
  }

  /** A REST client for one call; a private key is turned into a short token first. */
  async rest(): Promise<RestClient> {
    const credential = await this.credential();
    let bearer = credential;
    if (isPrivateKey(credential)) {
      const now = Date.now();
      if (!this.restToken || this.restToken.until < now + 60_000) {
        const ttl = Math.min(REST_TOKEN_TTL, PRIVATE_KEY_TTL.max);
        const token = await this.mint({ repos: null, scopes: ["read", "write", "admin"], ttlSeconds: ttl });
        this.restToken = { token, until: now + ttl * 1000 };
      }
      bearer = this.restToken.token;
    }
    return new RestClient({ serviceUrl: this.config.serviceUrl, credential: bearer });
  }

  /** Runs `fn` with a REST client and closes it; errors become the SDK's. */
  async withRest<T>(fn: (rest: RestClient, org: string) => Promise<T>): Promise<T> {
    const org = await this.org();
    const rest = await this.rest();
    try {
      return await sdkCall(() => fn(rest, org));
    } finally {
      await rest.close();
    }
  }

  /** "app" or "org/app" (the org must be this client's) → the repo name. */
  async repoName(repo: string): Promise<string> {
    const org = await this.org();
    const parts = repo.split("/");
    if (parts.length > 2) throw new InvalidOptionsError(`'${repo}' is not a repo name or org/repo`);
    if (parts.length === 2 && parts[0] !== org)
      throw new InvalidOptionsError(`'${repo}' is not in organization '${org}'`);
    const name = parts[parts.length - 1];
    try {
      return validateRepoName(name);
    } catch (err) {
      throw new InvalidOptionsError((err as Error).message);
    }
  }

  /** Whether the credential is an access token (it cannot sign others). */
  async isToken(): Promise<boolean> {
    return looksLikeJwt(await this.credential());
  }
}
