import type { FastifyRequest } from "fastify";
import type { Scope } from "../auth/keys.js";
import type { Logger } from "../log.js";
import { nameProblem } from "../names.js";
import { authenticate, authorize, credentialFrom, type Principal } from "./auth.js";
import { badRequest, notFound } from "./errors.js";
import type { StateStore } from "./state.js";
import type { DataDir } from "./storage.js";

/** What every route handler needs. */
export interface ServerContext {
  data: DataDir;
  store: StateStore;
  log: Logger;
}

/** Names of routes under /v1/{org}/ that a repo therefore cannot be called. */
export const RESERVED_REPO_NAMES = new Set(["repos", "api-keys", "public-keys"]);

export async function principalOf(ctx: ServerContext, req: FastifyRequest): Promise<Principal> {
  return authenticate(ctx.store, credentialFrom(req.headers.authorization));
}

/** Authenticates, authorizes `scope` on the org, returns the principal. */
export async function forOrg(ctx: ServerContext, req: FastifyRequest, scope: Scope) {
  const p = await principalOf(ctx, req);
  const { org } = req.params as { org: string };
  authorize(p, org, undefined, scope);
  return { p, org };
}

/**
 * Authenticates, authorizes `scope` on the repo, and checks it exists. The order (401, 403,
 * 404) means a credential never learns whether repos outside its rights exist.
 */
export async function forRepo(ctx: ServerContext, req: FastifyRequest, scope: Scope) {
  const p = await principalOf(ctx, req);
  const { org, repo } = req.params as { org: string; repo: string };
  authorize(p, org, repo, scope);
  if (nameProblem(repo) || !(await ctx.data.repoExists(org, repo)))
    throw notFound(`repository ${org}/${repo} not found`);
  return { p, org, repo, gitDir: ctx.data.repoDir(org, repo) };
}

/** Parses a body with a zod schema into a 400 that names the first problem. */
export function parseBody<T>(
  schema: {
    safeParse(
      v: unknown,
    ):
      | { success: true; data: T }
      | { success: false; error: { issues: Array<{ path: PropertyKey[]; message: string }> } };
  },
  body: unknown,
): T {
  const r = schema.safeParse(body ?? {});
  if (!r.success) {
    const issue = r.error.issues[0]!;
    const where = issue.path.length > 0 ? `${issue.path.map(String).join(".")}: ` : "";
    throw badRequest(`invalid request body: ${where}${issue.message}`);
  }
  return r.data;
}
