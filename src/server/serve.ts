import { randomUUID } from "node:crypto";
import { apiKeyHash, generateApiKey } from "../auth/keys.js";
import { MesaError } from "../errors.js";
import type { Logger } from "../log.js";
import { validateOrgName } from "../names.js";
import { acceptPendingAdminKeys } from "./admin-key.js";
import { buildApp } from "./app.js";
import { indexChanges } from "./changes.js";
import { takeLock } from "./lock.js";
import { nowIso, StateStore } from "./state.js";
import { DataDir, importRepo } from "./storage.js";

export interface ServeOptions {
  dataDir: string;
  host: string;
  port: number;
  org: string;
  log: Logger;
  /** A git http-backend idle this long is killed (default 120 s). */
  gitIdleTimeoutMs?: number;
  /** Where the one-time `admin key: …` line goes (stdout). */
  announce: (line: string) => void;
}

export function parseListen(listen: string): { host: string; port: number } {
  const m = /^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/.exec(listen);
  const port = m ? Number(m[2]) : Number.NaN;
  if (!m || port > 65535)
    throw new MesaError("INVALID_ARGUMENT", `invalid --listen ${JSON.stringify(listen)}: expected HOST:PORT`);
  return { host: m[1]!.replace(/^\[|\]$/g, ""), port };
}

/**
 * First start (or a new --org on an existing data dir): the org and its admin key; the key is
 * shown once and stored as SHA-256. An org that exists is left as it is.
 */
async function bootstrap(store: StateStore, org: string, announce: (line: string) => void): Promise<void> {
  if (store.org(org)) return;
  const { id, key } = generateApiKey();
  const now = nowIso();
  await store.update((s) => {
    s.orgs[org] = {
      id: `org_${randomUUID().replaceAll("-", "")}`,
      name: org,
      created_at: now,
      api_keys: [
        {
          id,
          name: "admin",
          hash: apiKeyHash(key),
          scopes: ["admin"],
          repos: null,
          created_at: now,
          expires_at: null,
          revoked_at: null,
        },
      ],
      public_keys: [],
    };
  });
  announce(`admin key: ${key}`);
}

/** Runs `mesa serve` until SIGTERM/SIGINT; resolves after a graceful close. */
export async function runServe(opts: ServeOptions): Promise<void> {
  validateOrgName(opts.org);
  const data = new DataDir(opts.dataDir);
  await data.ensure();
  const unlock = await takeLock(data.lockFile);
  try {
    const store = new StateStore(data.stateFile);
    await store.load();
    await bootstrap(store, opts.org, opts.announce);
    const stopAccepting = await acceptPendingAdminKeys(data, store, opts.log);
    const app = buildApp({ data, store, log: opts.log, gitIdleTimeoutMs: opts.gitIdleTimeoutMs });
    await app.listen({ host: opts.host, port: opts.port });
    const addr = app.server.address();
    const port = typeof addr === "object" && addr ? addr.port : opts.port;
    const host = opts.host.includes(":") ? `[${opts.host}]` : opts.host;
    opts.log.info({ url: `http://${host}:${port}`, dataDir: opts.dataDir }, "listening");
    await new Promise<void>((resolve) => {
      const stop = (signal: string) => {
        opts.log.info({ signal }, "shutting down");
        process.off("SIGTERM", onTerm);
        process.off("SIGINT", onInt);
        // Requests in flight finish; a bounded wait keeps shutdown from hanging.
        const force = setTimeout(() => {
          app.server.closeAllConnections();
        }, 10_000);
        force.unref();
        app.close().then(resolve, resolve);
      };
      const onTerm = () => stop("SIGTERM");
      const onInt = () => stop("SIGINT");
      process.on("SIGTERM", onTerm);
      process.on("SIGINT", onInt);
    });
    stopAccepting();
  } finally {
    await unlock();
  }
}

/** `mesa serve import`: clone an existing repository into the data dir, server running or not. */
export async function runImport(
  dataDir: string,
  slugOrg: string,
  slugRepo: string,
  source: string,
  onProgress?: (line: string) => void,
) {
  const data = new DataDir(dataDir);
  await data.ensure();
  return importRepo(
    data,
    slugOrg,
    slugRepo,
    source,
    async (gitDir) => {
      onProgress?.("Indexing changes…");
      // The repo is still private in tmp/, so its change refs go straight into packed-refs.
      const n = await indexChanges(gitDir, { privateRepo: true });
      onProgress?.(`Indexing changes: ${n}, done.`);
    },
    onProgress,
  );
}
