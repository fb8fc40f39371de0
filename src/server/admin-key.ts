import { watch } from "node:fs";
import { readdir, readFile, rm, stat } from "node:fs/promises";
import path from "node:path";
import { z } from "zod";
import { writeFileAtomic } from "../atomic-file.js";
import { apiKeyHash, generateApiKey } from "../auth/keys.js";
import { MesaError } from "../errors.js";
import type { Logger } from "../log.js";
import { validateOrgName } from "../names.js";
import { lockHolder, withLock } from "./lock.js";
import { type ApiKeyRecord, nowIso, StateStore } from "./state.js";
import { DataDir } from "./storage.js";

/**
 * `mesa serve admin-key`: a new org-wide admin key, minted by whoever can write the data dir,
 * so a lost or revoked admin key is recoverable. With no server running the key goes straight
 * into state.json (under serve.lock); with one running, the record (the key's hash, never the
 * key) is dropped into `admin-keys/`, which the server watches, adds to its state and deletes.
 */
const PENDING_FILE = /^[a-z0-9]{16}\.json$/;
const pendingSchema = z.object({
  org: z.string(),
  key: z.object({
    id: z.string().regex(/^[a-z0-9]{16}$/),
    name: z.string().nullable(),
    hash: z.string().regex(/^[0-9a-f]{64}$/),
    created_at: z.string(),
  }),
});

function adminRecord(id: string, key: string, name: string | null): ApiKeyRecord {
  return {
    id,
    name,
    hash: apiKeyHash(key),
    scopes: ["admin"],
    repos: null,
    created_at: nowIso(),
    expires_at: null,
    revoked_at: null,
  };
}

export interface MintedAdminKey {
  id: string;
  key: string;
  /** "state" when written directly, "server" when a running server took it in. */
  via: "state" | "server";
}

/** Mints an org-wide admin key for `org` in the data dir at `dataDir`. */
export async function mintAdminKey(
  dataDir: string,
  org: string,
  opts: { name?: string; waitMs?: number } = {},
): Promise<MintedAdminKey> {
  validateOrgName(org);
  const data = new DataDir(dataDir);
  try {
    await stat(data.stateFile);
  } catch {
    throw new MesaError("NOT_FOUND", `${dataDir} is not the data dir of a mesa serve (no state.json)`, {
      hint: "pass the server's --data-dir",
    });
  }
  const { id, key } = generateApiKey();
  const record = adminRecord(id, key, opts.name ?? "admin (recovered)");
  const offline = await withLock(data.lockFile, async () => {
    const store = new StateStore(data.stateFile);
    await store.load();
    if (!store.org(org)) throw noOrg(org);
    await store.update((s) => {
      s.orgs[org]!.api_keys.push(record);
    });
  });
  if (offline) return { id, key, via: "state" };

  // A server holds the data dir: it must take the key in itself, or it would overwrite it.
  const store = new StateStore(data.stateFile);
  await store.load();
  if (!store.org(org)) throw noOrg(org);
  const file = path.join(pendingDir(data), `${id}.json`);
  const pending = { org, key: { id, name: record.name, hash: record.hash, created_at: record.created_at } };
  await writeFileAtomic(file, JSON.stringify(pending), { mode: 0o600, dirMode: 0o700 });
  const deadline = Date.now() + (opts.waitMs ?? 15_000);
  while (Date.now() < deadline) {
    try {
      await stat(file);
    } catch {
      return { id, key, via: "server" };
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  await rm(file, { force: true });
  const pid = await lockHolder(data.lockFile);
  throw new MesaError("DAEMON", `the running mesa serve (pid ${pid ?? "?"}) did not take the new key in`, {
    hint: "stop the server and run the command again",
  });
}

function noOrg(org: string): MesaError {
  return new MesaError("NOT_FOUND", `organization ${org} does not exist in this data dir`, {
    hint: `start the server once with --org ${org} to create it`,
  });
}

function pendingDir(data: DataDir): string {
  return path.join(data.root, "admin-keys");
}

/**
 * The server's side: takes in every pending admin key now and whenever one appears. Returns
 * a function that stops watching.
 */
export async function acceptPendingAdminKeys(
  data: DataDir,
  store: StateStore,
  log: Logger,
): Promise<() => void> {
  const dir = pendingDir(data);
  await writeFileAtomic(path.join(dir, ".keep"), "", { mode: 0o600, dirMode: 0o700 });
  let running = Promise.resolve();
  const sweep = () => {
    running = running.then(() => ingest(dir, store, log)).catch((err) => log.error({ err }, "admin-keys"));
  };
  const watcher = watch(dir, () => sweep());
  sweep();
  await running;
  return () => watcher.close();
}

async function ingest(dir: string, store: StateStore, log: Logger): Promise<void> {
  for (const name of await readdir(dir)) {
    if (!PENDING_FILE.test(name)) continue;
    const file = path.join(dir, name);
    let parsed: z.infer<typeof pendingSchema> | undefined;
    try {
      const r = pendingSchema.safeParse(JSON.parse(await readFile(file, "utf8")));
      if (r.success) parsed = r.data;
    } catch {}
    if (parsed && store.org(parsed.org)) {
      const { org, key } = parsed;
      await store.update((s) => {
        const keys = s.orgs[org]!.api_keys;
        if (keys.some((k) => k.id === key.id)) return;
        keys.push({ ...key, scopes: ["admin"], repos: null, expires_at: null, revoked_at: null });
      });
      log.info({ org, key_id: key.id }, "org-wide admin key added from the data dir");
    } else {
      log.warn({ file }, "ignored an invalid pending admin key");
    }
    await rm(file, { force: true });
  }
}
