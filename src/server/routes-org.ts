import { randomBytes } from "node:crypto";
import type { FastifyInstance } from "fastify";
import { z } from "zod";
import { apiKeyHash, generateApiKey, SCOPES, scopeAllows } from "../auth/keys.js";
import { bookmarkProblem } from "../config/revs.js";
import { isMesaError } from "../errors.js";
import { nameProblem, parseRepoSlug } from "../names.js";
import { ROOT_CHANGE_ID } from "../vcs/objects.js";
import { canSeeRepo, isOrgAdminKey, keyWithinRights } from "./auth.js";
import { changeIdOf, readCommitAt } from "./changes.js";
import {
  forOrg,
  forRepo,
  parseBody,
  principalOf,
  RESERVED_REPO_NAMES,
  type ServerContext,
} from "./context.js";
import { badRequest, conflict, forbidden, notFound } from "./errors.js";
import { pageOf, parsePage } from "./pagination.js";
import { nowIso } from "./state.js";
import { createRepo, deleteRepo, readRepoMeta } from "./storage.js";

/** Routes on orgs: whoami, repos, API keys, public keys (compat.md §5–§6). */
export async function repoJson(ctx: ServerContext, org: string, repo: string) {
  const gitDir = ctx.data.repoDir(org, repo);
  const meta = await readRepoMeta(gitDir);
  const head = await readCommitAt(gitDir, `refs/heads/${meta.defaultBookmark}`);
  const headChange = head ? changeIdOf(head.oid, head.commit) : undefined;
  return {
    id: meta.id,
    org,
    name: repo,
    default_bookmark: meta.defaultBookmark,
    head_change_id: headChange ?? ROOT_CHANGE_ID,
    created_at: meta.createdAt,
  };
}

/** Bookmark names: the same rules as the CLI and config (git's ref-name rules, made stricter). */
const bookmarkName = z.string().superRefine((n, ctx) => {
  const problem = bookmarkProblem(n);
  if (problem) ctx.addIssue({ code: "custom", message: problem });
});

export { bookmarkName };

const createRepoBody = z.object({ name: z.string(), default_bookmark: bookmarkName.optional() }).strict();
const scopesSchema = z.array(z.enum(SCOPES)).min(1).max(3);
const createKeyBody = z
  .object({
    name: z.string().max(200).nullable().optional(),
    scopes: scopesSchema,
    repos: z.array(z.string().max(201)).max(1000).nullable().optional(),
    expires_in_seconds: z
      .number()
      .int()
      .min(1)
      .max(10 * 366 * 86400)
      .optional(),
  })
  .strict();
const publicKeyBody = z
  .object({
    public_key: z.string().regex(/^[A-Za-z0-9_-]{43}$/, "must be the base64url Ed25519 public key (JWK x)"),
    name: z.string().max(200).nullable().optional(),
    scopes: scopesSchema.optional(),
  })
  .strict();

export function registerOrgRoutes(app: FastifyInstance, ctx: ServerContext): void {
  app.get("/v1/whoami", async (req) => {
    const p = await principalOf(ctx, req);
    return {
      org: { id: p.org.id, slug: p.org.name, name: p.org.name },
      key_id: p.keyId,
      key_name: p.keyName,
      scopes: p.scopes,
      repos: p.repos,
    };
  });

  app.get("/v1/:org/repos", async (req) => {
    const { p, org } = await forOrg(ctx, req, "read");
    const page = parsePage(req.query as Record<string, unknown>);
    const names = (await ctx.data.listRepos(org)).filter((r) => canSeeRepo(p, org, r));
    const listed = pageOf("repos", names, page);
    const repos = [];
    for (const name of listed.repos as string[]) {
      // A repo deleted between listing and reading is simply left out.
      try {
        repos.push(await repoJson(ctx, org, name));
      } catch {}
    }
    return { ...listed, repos };
  });

  app.post("/v1/:org/repos", async (req, reply) => {
    const { p, org } = await forOrg(ctx, req, "write");
    const body = parseBody(createRepoBody, req.body);
    const problem = nameProblem(body.name);
    if (problem) throw badRequest(`invalid repository name ${JSON.stringify(body.name)}: it ${problem}`);
    if (RESERVED_REPO_NAMES.has(body.name))
      throw badRequest(`the repository name '${body.name}' is reserved`);
    if (!canSeeRepo(p, org, body.name)) throw forbidden("this credential does not cover this repository");
    try {
      await createRepo(ctx.data, org, body.name, body.default_bookmark ?? "main");
    } catch (err) {
      if (isMesaError(err, "CONFLICT")) throw conflict(`repository ${org}/${body.name} already exists`);
      throw err;
    }
    return reply.code(201).send(await repoJson(ctx, org, body.name));
  });

  app.get("/v1/:org/:repo", async (req) => {
    const { org, repo } = await forRepo(ctx, req, "read");
    return repoJson(ctx, org, repo);
  });

  app.delete("/v1/:org/:repo", async (req) => {
    const { org, repo } = await forRepo(ctx, req, "write");
    const json = await repoJson(ctx, org, repo);
    await deleteRepo(ctx.data, org, repo);
    return json;
  });

  // ---- API keys (admin) ----
  const keyJson = (k: {
    id: string;
    name: string | null;
    scopes: string[];
    repos: string[] | null;
    created_at: string;
    expires_at: string | null;
    revoked_at: string | null;
  }) => ({
    id: k.id,
    name: k.name,
    scopes: k.scopes,
    repos: k.repos,
    created_at: k.created_at,
    expires_at: k.expires_at,
    revoked: k.revoked_at !== null,
  });

  app.post("/v1/:org/api-keys", async (req, reply) => {
    const { p, org } = await forOrg(ctx, req, "admin");
    const body = parseBody(createKeyBody, req.body);
    const repos = body.repos ?? null;
    for (const slug of repos ?? []) {
      let parsed: { org: string; repo: string };
      try {
        parsed = parseRepoSlug(slug);
      } catch {
        throw badRequest(`invalid repository ${JSON.stringify(slug)}: expected org/repo`);
      }
      if (parsed.org !== org) throw badRequest(`repository ${slug} is not in organization ${org}`);
      if (!canSeeRepo(p, org, parsed.repo)) throw forbidden("a key cannot reach repos its creator cannot");
    }
    if (repos === null && p.repos !== null) throw forbidden("a key cannot reach repos its creator cannot");
    if (!body.scopes.every((s) => scopeAllows(p.scopes, s)))
      throw forbidden("a key cannot exceed its creator's scopes");
    const { id, key } = generateApiKey();
    const record = {
      id,
      name: body.name ?? null,
      hash: apiKeyHash(key),
      scopes: [...new Set(body.scopes)],
      repos: repos ? [...new Set(repos)] : null,
      created_at: nowIso(),
      expires_at: body.expires_in_seconds
        ? new Date(Date.now() + body.expires_in_seconds * 1000).toISOString()
        : null,
      revoked_at: null,
    };
    await ctx.store.update((s) => {
      s.orgs[org]!.api_keys.push(record);
    });
    ctx.log.info({ org, key_id: id }, "api key created");
    return reply.code(201).send({ ...keyJson(record), key });
  });

  app.get("/v1/:org/api-keys", async (req) => {
    const { p, org } = await forOrg(ctx, req, "admin");
    const page = parsePage(req.query as Record<string, unknown>);
    const visible = ctx.store.org(org)!.api_keys.filter((k) => keyWithinRights(p, k));
    return pageOf("api_keys", visible.map(keyJson), page);
  });

  app.delete("/v1/:org/api-keys/:id", async (req) => {
    const { p, org } = await forOrg(ctx, req, "admin");
    const { id } = req.params as { id: string };
    const existing = ctx.store.org(org)!.api_keys.find((k) => k.id === id);
    // A key outside the caller's rights answers exactly as a missing one: nothing leaks.
    if (!existing || !keyWithinRights(p, existing)) throw notFound(`API key ${id} not found`);
    const when = nowIso();
    await ctx.store.update((s) => {
      const keys = s.orgs[org]!.api_keys;
      const k = keys.find((x) => x.id === id)!;
      if (k.revoked_at) return;
      const now = Date.now();
      if (isOrgAdminKey(k, now) && !keys.some((x) => x.id !== id && isOrgAdminKey(x, now)))
        throw conflict(
          "this is the last org-wide admin key; create another one first (or `mesa serve admin-key`)",
          "LAST_ADMIN_KEY",
        );
      k.revoked_at = when;
    });
    ctx.log.info({ org, key_id: id }, "api key revoked");
    return keyJson(ctx.store.org(org)!.api_keys.find((k) => k.id === id)!);
  });

  // ---- Ed25519 public keys for EdDSA tokens (admin) ----
  const pkJson = (k: {
    id: string;
    name: string | null;
    x: string;
    scopes: string[];
    created_at: string;
    revoked_at: string | null;
  }) => ({
    id: k.id,
    public_key: k.x,
    name: k.name,
    scopes: k.scopes,
    created_at: k.created_at,
    revoked: k.revoked_at !== null,
  });

  app.post("/v1/:org/public-keys", async (req, reply) => {
    const { p, org } = await forOrg(ctx, req, "admin");
    const body = parseBody(publicKeyBody, req.body);
    if (p.repos !== null) throw forbidden("only a key for every repo can register org public keys");
    if (ctx.store.org(org)!.public_keys.some((k) => k.x === body.public_key && !k.revoked_at))
      throw conflict("this public key is already registered");
    const record = {
      id: `pk_${randomBytes(8).toString("hex")}`,
      name: body.name ?? null,
      x: body.public_key,
      scopes: [...new Set(body.scopes ?? ["admin"])] as Array<(typeof SCOPES)[number]>,
      created_at: nowIso(),
      revoked_at: null,
    };
    await ctx.store.update((s) => {
      s.orgs[org]!.public_keys.push(record);
    });
    return reply.code(201).send(pkJson(record));
  });

  // A registered public key signs tokens for any repo of the org, so only org-wide admins see them.
  app.get("/v1/:org/public-keys", async (req) => {
    const { p, org } = await forOrg(ctx, req, "admin");
    const page = parsePage(req.query as Record<string, unknown>);
    const visible = p.repos === null ? ctx.store.org(org)!.public_keys : [];
    return pageOf("public_keys", visible.map(pkJson), page);
  });

  app.delete("/v1/:org/public-keys/:id", async (req) => {
    const { p, org } = await forOrg(ctx, req, "admin");
    const { id } = req.params as { id: string };
    if (p.repos !== null || !ctx.store.org(org)!.public_keys.some((k) => k.id === id))
      throw notFound(`public key ${id} not found`);
    const when = nowIso();
    await ctx.store.update((s) => {
      const k = s.orgs[org]!.public_keys.find((x) => x.id === id)!;
      k.revoked_at ??= when;
    });
    return pkJson(ctx.store.org(org)!.public_keys.find((k) => k.id === id)!);
  });
}
