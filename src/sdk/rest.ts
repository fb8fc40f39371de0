/**
 * The REST namespaces of `Mesa`: repos, API keys, bookmarks, changes. Every method takes a
 * repo as "app" or "org/app" (the client's org) and returns the server's JSON objects.
 */
import type { Scope } from "../auth/keys.js";
import type { ApiKey, Bookmark, Change, FileChange, MergeResult, Repo } from "../vcs/rest.js";
import type { Client } from "./client.js";
import { InvalidOptionsError } from "./errors.js";

export type { ApiKey, Bookmark, Change, FileChange, MergeResult, Repo };

async function collect<T>(it: AsyncGenerator<T>, limit = Number.POSITIVE_INFINITY): Promise<T[]> {
  const out: T[] = [];
  if (limit <= 0) return out;
  for await (const x of it) {
    out.push(x);
    if (out.length >= limit) break;
  }
  return out;
}

export class Repos {
  constructor(private readonly client: Client) {}

  list(): Promise<Repo[]> {
    return this.client.withRest((rest, org) => collect(rest.listRepos(org)));
  }

  async create(opts: { name: string; defaultBookmark?: string }): Promise<Repo> {
    const name = await this.client.repoName(opts.name);
    return this.client.withRest((rest, org) => rest.createRepo(org, name, opts.defaultBookmark));
  }

  async get(repo: string): Promise<Repo> {
    const name = await this.client.repoName(repo);
    return this.client.withRest((rest, org) => rest.getRepo(org, name));
  }

  async delete(repo: string): Promise<Repo> {
    const name = await this.client.repoName(repo);
    return this.client.withRest((rest, org) => rest.deleteRepo(org, name));
  }
}

export interface CreateApiKeyOptions {
  name?: string;
  scopes: Scope[];
  /** Lifetime in seconds; default no expiry. */
  expiresInSeconds?: number;
  /** The original SDK's spelling of `expiresInSeconds`. */
  expires_in_seconds?: number;
  /** Repos the key is limited to ("app" or "org/app"); default every repo. */
  repos?: string[];
}

export class ApiKeys {
  constructor(private readonly client: Client) {}

  async create(opts: CreateApiKeyOptions): Promise<ApiKey & { key: string }> {
    if (!Array.isArray(opts.scopes) || opts.scopes.length === 0)
      throw new InvalidOptionsError("scopes must be a non-empty list of read, write, admin");
    const exp = opts.expiresInSeconds ?? opts.expires_in_seconds;
    if (exp !== undefined && (!Number.isInteger(exp) || exp < 1))
      throw new InvalidOptionsError("expiresInSeconds must be a positive whole number");
    const org = await this.client.org();
    const repos =
      opts.repos === undefined
        ? undefined
        : await Promise.all(opts.repos.map(async (r) => `${org}/${await this.client.repoName(r)}`));
    return this.client.withRest((rest) =>
      rest.createApiKey(org, { name: opts.name, scopes: opts.scopes, repos, expires_in_seconds: exp }),
    );
  }

  list(): Promise<ApiKey[]> {
    return this.client.withRest((rest, org) => collect(rest.listApiKeys(org)));
  }

  revoke(id: string): Promise<ApiKey> {
    return this.client.withRest((rest, org) => rest.revokeApiKey(org, id));
  }
}

export class Bookmarks {
  constructor(private readonly client: Client) {}

  async list(repo: string): Promise<Bookmark[]> {
    const name = await this.client.repoName(repo);
    return this.client.withRest((rest, org) => collect(rest.listBookmarks(org, name)));
  }

  async create(repo: string, opts: { name: string; changeId: string }): Promise<Bookmark> {
    const name = await this.client.repoName(repo);
    return this.client.withRest((rest, org) => rest.createBookmark(org, name, opts.name, opts.changeId));
  }

  /** Moves `bookmark` to a change; only forward unless `allowBackwards`. */
  async move(
    repo: string,
    bookmark: string,
    opts: { changeId: string; allowBackwards?: boolean },
  ): Promise<Bookmark & { from_change_id: string }> {
    const name = await this.client.repoName(repo);
    return this.client.withRest((rest, org) =>
      rest.moveBookmark(org, name, bookmark, opts.changeId, { allowBackwards: opts.allowBackwards }),
    );
  }

  /** Merges `source` into `target`: a no-op, a fast-forward or a merge commit. */
  async merge(
    repo: string,
    opts: { target: string; source: string; deleteSource?: boolean; message?: string },
  ): Promise<MergeResult> {
    const name = await this.client.repoName(repo);
    return this.client.withRest((rest, org) =>
      rest.mergeBookmarks(org, name, {
        target: opts.target,
        source: opts.source,
        delete_source: opts.deleteSource,
        message: opts.message,
      }),
    );
  }

  async delete(repo: string, bookmark: string): Promise<Bookmark> {
    const name = await this.client.repoName(repo);
    return this.client.withRest((rest, org) => rest.deleteBookmark(org, name, bookmark));
  }
}

export interface CreateChangeOptions {
  /** The parent change. */
  baseChangeId: string;
  message?: string;
  author?: { name: string; email: string };
  /** Files as bytes or text; `null` deletes the path. */
  files?: Record<string, string | Uint8Array | null>;
}

export class Changes {
  constructor(private readonly client: Client) {}

  /** Changes of a bookmark (default: the repo's default bookmark), newest first. */
  async list(repo: string, opts: { bookmark?: string; limit?: number } = {}): Promise<Change[]> {
    const name = await this.client.repoName(repo);
    return this.client.withRest((rest, org) =>
      collect(rest.listChanges(org, name, opts.bookmark), opts.limit ?? 50),
    );
  }

  async get(repo: string, changeId: string): Promise<Change> {
    const name = await this.client.repoName(repo);
    return this.client.withRest((rest, org) => rest.getChange(org, name, changeId));
  }

  /** A new change on top of `baseChangeId`, with `files` written or deleted (no mount needed). */
  async create(repo: string, opts: CreateChangeOptions): Promise<Change> {
    const name = await this.client.repoName(repo);
    const files: FileChange[] = Object.entries(opts.files ?? {}).map(([path, data]) =>
      data === null
        ? { path, action: "delete" }
        : {
            path,
            content: Buffer.from(typeof data === "string" ? Buffer.from(data) : data).toString("base64"),
          },
    );
    return this.client.withRest((rest, org) =>
      rest.createChange(org, name, {
        base_change_id: opts.baseChangeId,
        message: opts.message,
        author: opts.author,
        files: files.length > 0 ? files : undefined,
      }),
    );
  }
}
