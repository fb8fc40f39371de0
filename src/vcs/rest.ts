/**
 * Typed client for the Mesa REST API v1 (compat.md §6) over undici: Bearer auth, a timeout
 * per request, JSON errors mapped to the typed errors of the VCS layer, and an async
 * iterator that walks `?cursor=` pages. The credential never appears in errors.
 */
import { Pool } from "undici";
import { MesaError } from "../errors.js";
import { VERSION } from "../version.js";
import { errorFromStatus, unreachable, withHint } from "./errors.js";

export interface Repo {
  id: string;
  org: string;
  name: string;
  default_bookmark: string;
  head_change_id: string;
  created_at: string;
}

export interface WhoAmI {
  org: { id: string; slug: string; name: string };
  key_id: string;
  key_name: string | null;
  scopes: string[];
  repos?: string[] | null;
}

export interface ApiKey {
  id: string;
  name: string | null;
  scopes: string[];
  /** `org/repo` names the key is limited to, or null for every repo. */
  repos: string[] | null;
  created_at: string;
  expires_at: string | null;
  revoked: boolean;
}

export interface Bookmark {
  name: string;
  change_id: string;
  is_default: boolean;
}

export interface Person {
  name: string;
  email: string;
  date?: string;
}

export interface Change {
  id: string;
  current_commit_oid: string;
  message: string;
  author: Person;
  committer: Person;
  parents: string[];
  created_at: string;
  updated_at: string;
}

export type FileChange =
  | { path: string; content: string; mode?: "100644" | "100755" | "120000"; action?: "upsert" }
  | { path: string; action: "delete" };

export interface MergeResult {
  merge_type: "merge_commit" | "no_op" | "fast_forward";
  commit_oid: string;
  change_id: string;
  target: string;
  source: string;
  source_deleted: boolean;
}

export interface DirEntry {
  type: "file" | "symlink" | "dir" | "submodule";
  name: string;
  path: string;
  sha: string;
  size?: number;
  mode?: string;
}

export type Content =
  | {
      type: "file" | "symlink";
      name: string;
      path: string;
      sha: string;
      size: number;
      encoding: "base64";
      content: string;
      mode: string;
    }
  | { type: "dir"; name: string; path: string; sha: string; child_count: number; entries: DirEntry[] };

export interface PageResult<T> {
  items: T[];
  next_cursor: string | null;
  has_more: boolean;
}

export interface RestClientOptions {
  /** Base URL of the service; REST lives at `<serviceUrl>/v1`. */
  serviceUrl: string;
  /** API key or access token. */
  credential: string;
  /** Per-request timeout (default 30 s). */
  timeoutMs?: number;
}

const enc = encodeURIComponent;

export class RestClient {
  private readonly pool: Pool;
  private readonly basePath: string;
  private readonly credential: string;
  private readonly timeoutMs: number;
  private readonly serviceUrl: string;

  constructor(opts: RestClientOptions) {
    let u: URL;
    try {
      u = new URL(opts.serviceUrl);
    } catch {
      throw new MesaError("INVALID_ARGUMENT", `invalid service URL '${opts.serviceUrl}'`);
    }
    if (u.protocol !== "http:" && u.protocol !== "https:")
      throw new MesaError("INVALID_ARGUMENT", `service URL must be http(s): '${opts.serviceUrl}'`);
    if (u.username || u.password)
      throw new MesaError("INVALID_ARGUMENT", "the service URL must not contain credentials");
    this.pool = new Pool(u.origin, { connections: 8 });
    this.basePath = `${u.pathname.replace(/\/+$/, "")}/v1`;
    this.credential = opts.credential;
    this.timeoutMs = opts.timeoutMs ?? 30_000;
    this.serviceUrl = opts.serviceUrl;
  }

  async close(): Promise<void> {
    await this.pool.close();
  }

  /** One request; JSON in and out. `raw` returns the body bytes instead. */
  async request<T>(
    method: "GET" | "POST" | "PATCH" | "DELETE",
    path: string,
    opts: {
      query?: Record<string, string | number | boolean | undefined>;
      body?: unknown;
      raw?: boolean;
    } = {},
  ): Promise<T> {
    const qs = new URLSearchParams();
    for (const [k, v] of Object.entries(opts.query ?? {})) if (v !== undefined) qs.set(k, String(v));
    const url = `${this.basePath}${path}${qs.size > 0 ? `?${qs}` : ""}`;
    const headers: Record<string, string> = {
      authorization: `Bearer ${this.credential}`,
      "user-agent": `mesa/${VERSION}`,
      accept: opts.raw ? "application/octet-stream" : "application/json",
    };
    if (opts.body !== undefined) headers["content-type"] = "application/json";
    let res: Awaited<ReturnType<Pool["request"]>>;
    try {
      res = await this.pool.request({
        method,
        path: url,
        headers,
        body: opts.body === undefined ? undefined : JSON.stringify(opts.body),
        headersTimeout: this.timeoutMs,
        bodyTimeout: this.timeoutMs,
      });
    } catch (err) {
      const code = (err as { code?: string }).code ?? "";
      if (/TIMEOUT/.test(code))
        throw new MesaError(
          "TIMEOUT",
          `the Mesa server at ${this.serviceUrl} did not answer within ${this.timeoutMs / 1000} s`,
          {
            cause: err,
            hint: "check MESA_SERVICE_URL (service-url in config.toml) and that the server is up",
          },
        );
      throw unreachable(this.serviceUrl, err);
    }
    const bytes = Buffer.from(await res.body.arrayBuffer());
    if (res.statusCode >= 400) {
      let code: string | undefined;
      let message = `HTTP ${res.statusCode}`;
      let details: Record<string, unknown> | undefined;
      try {
        const e = (
          JSON.parse(bytes.toString("utf8")) as {
            error?: { code?: string; message?: string; details?: Record<string, unknown> };
          }
        ).error;
        code = e?.code;
        if (e?.message) message = e.message;
        details = e?.details;
      } catch {}
      // The server's sentence, in the user's terms; the request itself stays in the details.
      throw withHint(
        errorFromStatus(res.statusCode, message, { apiCode: code, request: `${method} ${path}`, ...details }),
        this.serviceUrl,
      );
    }
    if (opts.raw) return bytes as T;
    try {
      return JSON.parse(bytes.toString("utf8")) as T;
    } catch (err) {
      throw new MesaError("PROTOCOL", `${method} ${path}: the server sent invalid JSON`, { cause: err });
    }
  }

  /** Walks every page of a list endpoint; `name` is the list's key in the response. */
  async *paginate<T>(
    path: string,
    name: string,
    query: Record<string, string | undefined> = {},
    limit = 100,
  ): AsyncGenerator<T> {
    let cursor: string | undefined;
    // A server that keeps returning the same cursor would loop forever; stop on repeats.
    const seen = new Set<string>();
    for (;;) {
      const page = await this.request<Record<string, unknown>>("GET", path, {
        query: { ...query, limit, cursor },
      });
      const items = page[name];
      if (!Array.isArray(items)) throw new MesaError("PROTOCOL", `GET ${path}: the response lacks '${name}'`);
      for (const item of items) yield item as T;
      const next = page.next_cursor;
      if (page.has_more !== true || typeof next !== "string" || seen.has(next)) return;
      seen.add(next);
      cursor = next;
    }
  }

  whoami(): Promise<WhoAmI> {
    return this.request("GET", "/whoami");
  }

  listRepos(org: string): AsyncGenerator<Repo> {
    return this.paginate<Repo>(`/${enc(org)}/repos`, "repos");
  }

  getRepo(org: string, repo: string): Promise<Repo> {
    return this.request("GET", `/${enc(org)}/${enc(repo)}`);
  }

  createRepo(org: string, name: string, defaultBookmark?: string): Promise<Repo> {
    return this.request("POST", `/${enc(org)}/repos`, { body: { name, default_bookmark: defaultBookmark } });
  }

  deleteRepo(org: string, repo: string): Promise<Repo> {
    return this.request("DELETE", `/${enc(org)}/${enc(repo)}`);
  }

  /** Creates an API key (admin); the secret `key` is in this answer only. */
  createApiKey(
    org: string,
    body: { name?: string | null; scopes: string[]; repos?: string[] | null; expires_in_seconds?: number },
  ): Promise<ApiKey & { key: string }> {
    return this.request("POST", `/${enc(org)}/api-keys`, { body });
  }

  listApiKeys(org: string): AsyncGenerator<ApiKey> {
    return this.paginate<ApiKey>(`/${enc(org)}/api-keys`, "api_keys");
  }

  revokeApiKey(org: string, id: string): Promise<ApiKey> {
    return this.request("DELETE", `/${enc(org)}/api-keys/${enc(id)}`);
  }

  listBookmarks(org: string, repo: string, glob?: string): AsyncGenerator<Bookmark> {
    return this.paginate<Bookmark>(`/${enc(org)}/${enc(repo)}/bookmarks`, "bookmarks", { glob });
  }

  createBookmark(org: string, repo: string, name: string, changeId: string): Promise<Bookmark> {
    return this.request("POST", `/${enc(org)}/${enc(repo)}/bookmarks`, {
      body: { name, change_id: changeId },
    });
  }

  moveBookmark(
    org: string,
    repo: string,
    name: string,
    changeId: string,
    opts: { allowBackwards?: boolean } = {},
  ): Promise<Bookmark & { from_change_id: string }> {
    return this.request("PATCH", `/${enc(org)}/${enc(repo)}/bookmarks/${enc(name)}`, {
      body: { change_id: changeId, allow_backwards: opts.allowBackwards },
    });
  }

  deleteBookmark(org: string, repo: string, name: string): Promise<Bookmark> {
    return this.request("DELETE", `/${enc(org)}/${enc(repo)}/bookmarks/${enc(name)}`);
  }

  mergeBookmarks(
    org: string,
    repo: string,
    body: { target: string; source: string; delete_source?: boolean; message?: string },
  ): Promise<MergeResult> {
    return this.request("POST", `/${enc(org)}/${enc(repo)}/bookmarks/merge`, { body });
  }

  listChanges(org: string, repo: string, bookmark?: string): AsyncGenerator<Change> {
    return this.paginate<Change>(`/${enc(org)}/${enc(repo)}/changes`, "changes", { bookmark });
  }

  getChange(org: string, repo: string, id: string): Promise<Change> {
    return this.request("GET", `/${enc(org)}/${enc(repo)}/changes/${enc(id)}`);
  }

  createChange(
    org: string,
    repo: string,
    body: {
      base_change_id: string;
      message?: string;
      author?: { name: string; email: string };
      files?: FileChange[];
    },
  ): Promise<Change> {
    return this.request("POST", `/${enc(org)}/${enc(repo)}/changes`, { body });
  }

  updateChange(
    org: string,
    repo: string,
    id: string,
    body: { message?: string; files?: FileChange[]; base_commit_oid?: string },
  ): Promise<Change> {
    return this.request("PATCH", `/${enc(org)}/${enc(repo)}/changes/${enc(id)}`, { body });
  }

  content(
    org: string,
    repo: string,
    opts: { changeId?: string; path?: string; depth?: number } = {},
  ): Promise<Content> {
    return this.request("GET", `/${enc(org)}/${enc(repo)}/content`, {
      query: { change_id: opts.changeId, path: opts.path, depth: opts.depth },
    });
  }

  /** Raw bytes of a file (Accept: application/octet-stream). */
  contentRaw(org: string, repo: string, filePath: string, changeId?: string): Promise<Buffer> {
    return this.request("GET", `/${enc(org)}/${enc(repo)}/content`, {
      query: { change_id: changeId, path: filePath },
      raw: true,
    });
  }
}

/** The key id of an API key that does not embed it, from GET /v1/whoami. */
export async function whoamiKeyId(serviceUrl: string, apiKey: string): Promise<string> {
  const client = new RestClient({ serviceUrl, credential: apiKey, timeoutMs: 15_000 });
  try {
    return (await client.whoami()).key_id;
  } finally {
    await client.close();
  }
}
