/**
 * Connects the daemon to the rest of mesa for one mount session: credentials (one access
 * token per org per session), the Git and REST clients behind `RepoBackend`, and the blob
 * cache with its prefetcher behind the filesystem's `ContentProvider`.
 */

import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { apiKeyId, isPrivateKey, isScope, scopeAllows } from "../auth/keys.js";
import { mintAccessToken } from "../auth/mint.js";
import { looksLikeJwt, PRIVATE_KEY_TTL } from "../auth/tokens.js";
import { BlobStore, type BlobStoreStats } from "../cache/blob-store.js";
import { failFastWhileDown } from "../cache/fail-fast.js";
import { ForegroundActivity } from "../cache/foreground.js";
import { Prefetcher, type PrefetcherStats } from "../cache/prefetcher.js";
import { type TreeEntry, TreeStore } from "../cache/tree-store.js";
import type { Config, RevSpec } from "../config/types.js";
import { isMesaError } from "../errors.js";
import type { Logger } from "../log.js";
import { openSecretStore, resolveCredential } from "../secrets/index.js";
import { resolveRevision } from "../vcs/refs.js";
import { type FetchStats, GitRemote } from "../vcs/remote.js";
import { RestClient, whoamiKeyId } from "../vcs/rest.js";
import type { ContentProvider } from "../workspace/content.js";
import { listBlobs, type RepoSnapshot } from "../workspace/snapshot.js";
import type { CommitTrees, RepoBackend, ResolvedRevision } from "./backend.js";
import { type MintedCredential, SessionToken } from "./session-token.js";

export interface SessionContent extends ContentProvider {
  stats(): BlobStoreStats & { prefetch: PrefetcherStats; network: FetchStats };
}

export interface Session {
  backend: RepoBackend;
  content: SessionContent;
  readTimeoutMs: number;
  /** Problems that `mesa status` should show (e.g. an expired token). */
  errors(): string[];
  /** How the service is used when it lacks optional Git capabilities (for `mesa status`). */
  notes(): string[];
  /** The Git client of one repo (the writer pushes through it). */
  gitRemote(org: string, repo: string): Promise<GitRemote>;
  /** Lets background streams held by `SessionOptions.holdBackground` start (once; later calls do nothing). */
  startBackground(): void;
  /** This session's credential for `org` (the access token it minted), for CLI commands to reuse. */
  credential(org: string): Promise<string>;
  /** Whether this session's credential may push to `org` (false for a read-scoped key or token). */
  canWrite(org: string): Promise<boolean>;
  close(): Promise<void>;
}

/** A foreground read waits at most this long for the server before failing with EIO. */
const READ_TIMEOUT_MS = 20_000;
/** Metadata reaches the disk this long after it arrived: a walk right after the mount goes first. */
const PERSIST_DELAY_MS = 3000;

function jwtExpiry(token: string): Date | undefined {
  try {
    const payload = JSON.parse(Buffer.from(token.split(".")[1], "base64url").toString("utf8")) as {
      exp?: number;
    };
    return typeof payload.exp === "number" ? new Date(payload.exp * 1000) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The key for `org` turned into this session's token (SPEC §6); a JWT given as the key is used
 * as is. A key of another service that the backend cannot identify (plain Git hosting has no
 * /v1/whoami, or guards every path) is sent as it is, as Git clients do.
 */
async function sessionCredential(config: Config, org: string, key: string): Promise<MintedCredential> {
  if (looksLikeJwt(key)) return { credential: key, expiresAt: jwtExpiry(key) };
  let keyId: string | undefined;
  if (!isPrivateKey(key) && !apiKeyId(key)) {
    try {
      keyId = await whoamiKeyId(config.serviceUrl, key);
    } catch {
      // Not identifiable here: the Git requests themselves tell whether the key is accepted.
      return { credential: key };
    }
  }
  const ttlSeconds = isPrivateKey(key)
    ? Math.min(config.daemon.tokenTtlSeconds, PRIVATE_KEY_TTL.max)
    : config.daemon.tokenTtlSeconds;
  const token = await mintAccessToken(
    key,
    { org, repos: null, scopes: ["read", "write"], ttlSeconds },
    async () => keyId!,
  );
  return { credential: token, expiresAt: jwtExpiry(token) };
}

export interface SessionOptions {
  /**
   * The credential of every org, instead of the secret store's (the SDK's mount passes the
   * one token it minted). A JWT is used as it is, until it expires.
   */
  credential?: string;
  /**
   * Background content streams wait for `startBackground` (the daemon calls it once the
   * mount is ready, so a 100 MB pack stream does not compete with mounting on the same cores).
   */
  holdBackground?: boolean;
}

export async function createSession(
  config: Config,
  log: Logger,
  opts: SessionOptions = {},
): Promise<Session> {
  // The daemon has no terminal: a vault passphrase must come from MESA_VAULT_PASSPHRASE.
  const store =
    opts.credential === undefined ? await openSecretStore(config, { nonInteractive: true }) : undefined;
  const problems: string[] = [];
  const creds = new Map<string, Promise<SessionToken>>();
  const tokens = new Map<string, SessionToken>();
  const notes = new Set<string>();
  const remotes = new Map<string, GitRemote>();

  const credentialFor = (org: string): Promise<SessionToken> => {
    let c = creds.get(org);
    if (!c) {
      c = (async () => {
        // The SDK passes the one token it minted; the daemon resolves a key from the store.
        const key = opts.credential ?? (await resolveCredential(config, store!, org));
        const first = await sessionCredential(config, org, key);
        // Only a token this daemon minted can be minted again; a JWT given as the key cannot.
        const renewable = first.credential !== key;
        const token = new SessionToken(first, {
          org,
          log,
          mint: renewable ? () => sessionCredential(config, org, key) : undefined,
        });
        tokens.set(org, token);
        return token;
      })();
      c.catch(() => creds.delete(org));
      creds.set(org, c);
    }
    return c;
  };

  const remoteFor = async (org: string, repo: string): Promise<GitRemote> => {
    const id = `${org}/${repo}`;
    let r = remotes.get(id);
    if (!r) {
      const token = await credentialFor(org);
      r = new GitRemote({
        url: `${config.serviceUrl.replace(/\/+$/, "")}/${org}/${repo}.git`,
        credential: () => token.current(),
        logger: log,
      });
      remotes.set(id, r);
    }
    return r;
  };

  // Trees, sizes and commit times are immutable: cached on disk by oid for fast remounts.
  const metadataDir = join(config.dataDir, "metadata");
  const metadata = new TreeStore({ path: metadataDir, logger: log });
  await metadata.open();
  const knownSizes = new Map<string, number>();
  // Written one after another a few seconds after they arrived, so the first walk of a fresh
  // mount does not share the event loop with them; close writes what is still queued (a
  // remount that finds them missing fetches them again).
  const queuedWrites: Array<{ what: string; write: () => Promise<void> }> = [];
  let persistTimer: NodeJS.Timeout | undefined;
  let persisting = Promise.resolve();
  const flushWrites = (): Promise<void> => {
    clearTimeout(persistTimer);
    persistTimer = undefined;
    const batch = queuedWrites.splice(0);
    persisting = persisting.then(async () => {
      for (const { what, write } of batch)
        await write().catch((err: unknown) =>
          log.warn({ err: (err as Error).message }, `could not cache ${what} on disk`),
        );
    });
    return persisting;
  };
  const persist = (what: string, write: () => Promise<void>): void => {
    queuedWrites.push({ what, write });
    persistTimer ??= setTimeout(() => void flushWrites(), PERSIST_DELAY_MS);
  };
  const timeFile = (oid: string) => join(metadataDir, "commit-times", oid);
  const readCommitTime = async (oid: string): Promise<Date | undefined> => {
    try {
      const n = Number((await readFile(timeFile(oid), "utf8")).trim());
      return Number.isFinite(n) ? new Date(n * 1000) : undefined;
    } catch {
      return undefined;
    }
  };
  const writeCommitTime = async (oid: string, t: Date): Promise<void> => {
    await mkdir(join(metadataDir, "commit-times"), { recursive: true });
    await writeFile(timeFile(oid), `${Math.floor(t.getTime() / 1000)}\n`);
  };

  const blobs = new BlobStore({
    disk: config.cache.enabled ? { path: config.cache.path, maxBytes: config.cache.maxSize } : undefined,
    maxMemoryBytes: config.cache.maxMemorySize,
    // A directory's sizes on a server without object-info come in one request.
    maxBatch: 1000,
    logger: log,
  });
  await blobs.open();

  const backend: RepoBackend = {
    async listRepos(org) {
      const credential = (await credentialFor(org)).current();
      const rest = new RestClient({ serviceUrl: config.serviceUrl, credential });
      try {
        const names: string[] = [];
        for await (const r of rest.listRepos(org)) names.push(r.name);
        return names;
      } catch (err) {
        // A plain Git smart-HTTP server has no REST API: fall back to the repos in config.
        if (isMesaError(err, "NOT_FOUND")) {
          log.info({ org }, "the service has no REST API; mounting only repos named in config");
          return null;
        }
        throw err;
      } finally {
        await rest.close();
      }
    },

    async resolveRevision(org, repo, rev: RevSpec | undefined): Promise<ResolvedRevision> {
      return resolveRevision({ git: await remoteFor(org, repo), org, repo }, rev);
    },

    async commitTrees(org, repo, commitOid): Promise<CommitTrees> {
      const cached = await metadata.getSnapshot(commitOid);
      const time = await readCommitTime(commitOid);
      if (cached && time) {
        for (const [oid, size] of cached.sizes) knownSizes.set(oid, size);
        return { commitTime: time, rootTree: cached.tree, trees: cached.trees };
      }
      const remote = await remoteFor(org, repo);
      if (!(await remote.hasFilter()))
        notes.add(
          `${org}/${repo}: the Git server lacks fetch filters; each new commit is fetched whole (like a shallow clone) before it is shown`,
        );
      // Without filters the whole commit arrives anyway: keep its content in the cache.
      const { commit, trees } = await remote.fetchCommitTrees(commitOid, {
        onBlob: (oid, data) => blobs.storePrefetched(oid, data).then(() => undefined),
      });
      const commitTime = new Date(commit.committer.timestamp * 1000);
      await writeCommitTime(commitOid, commitTime);
      return { commitTime, rootTree: commit.tree, trees };
    },

    async objectSizes(org, repo, oids) {
      const out = await metadata.getSizes(oids.filter((o) => !knownSizes.has(o)));
      for (const o of oids) {
        const k = knownSizes.get(o);
        if (k !== undefined) out.set(o, k);
      }
      const missing = oids.filter((o) => !out.has(o));
      if (missing.length > 0) {
        const remote = await remoteFor(org, repo);
        // Without object-info, sizes would cost the content: they load lazily (sizesOf) instead.
        const fetched = (await remote.hasObjectInfo())
          ? await remote.objectSizes(missing)
          : remote.knownSizesOf(missing);
        if (!(await remote.hasObjectInfo()))
          notes.add(
            `${org}/${repo}: the Git server lacks object-info; file sizes load per directory when first needed`,
          );
        persist("file sizes", () => metadata.putSizes(fetched));
        for (const [o, s] of fetched) out.set(o, s);
      }
      return out;
    },

    async fetchBlobs(org, repo, oids) {
      // Through the blob cache, so symlink targets are on disk for the next mount.
      const remote = await remoteFor(org, repo);
      const data = await Promise.all(oids.map((o) => blobs.get(o, remote)));
      return new Map(oids.map((o, i) => [o, data[i]]));
    },

    remember(snap) {
      // The trees came from the Git client, so their entries are Git tree entries.
      const trees = snap.trees as Map<string, TreeEntry[]>;
      persist("the snapshot", () =>
        metadata.putSnapshot({ commit: snap.commitOid, tree: snap.rootTree, trees, sizes: snap.sizes }),
      );
    },
  };

  let heldStreams: Array<() => void> | undefined = opts.holdBackground ? [] : undefined;
  const foreground = new ForegroundActivity();
  const prefetcher = new Prefetcher({
    yieldTo: () => foreground.quiet(),
    beforeStream: () => foreground.beforeStream(),
    store: blobs,
    enabled: config.prefetch.enabled,
    maxDepth: config.prefetch.maxDepth,
    maxConcurrency: config.prefetch.maxConcurrency,
    pressureLimit: config.prefetch.cachePressureLimit,
    logger: log,
  });
  /** Sizes the snapshot lacks (a server without object-info): local ones, else their content. */
  const sizesOf = async (snap: RepoSnapshot, oids: string[]): Promise<Map<string, number>> => {
    const out = new Map<string, number>();
    let missing: string[] = [];
    for (const o of oids) {
      const s = knownSizes.get(o) ?? blobs.localSize(o);
      if (s === undefined) missing.push(o);
      else out.set(o, s);
    }
    if (missing.length > 0) {
      for (const [o, s] of await metadata.getSizes(missing)) out.set(o, s);
      missing = missing.filter((o) => !out.has(o));
    }
    if (missing.length > 0) {
      const remote = await remoteFor(snap.org, snap.repo);
      const fetched = new Map<string, number>();
      if (await remote.hasObjectInfo())
        for (const [o, s] of await remote.objectSizes(missing)) fetched.set(o, s);
      else {
        // Content is wanted now (for sizes): the stream, which brings it all, must not wait.
        foreground.read();
        // One request for the directory's files (the store coalesces them); their content is cached.
        const data = await Promise.all(missing.map((o) => blobs.get(o, remote)));
        for (const [i, o] of missing.entries()) fetched.set(o, data[i]!.length);
      }
      await metadata.putSizes(fetched);
      for (const [o, s] of fetched) out.set(o, s);
    }
    for (const [o, s] of out) knownSizes.set(o, s);
    return out;
  };

  const content: SessionContent = {
    async read(snap: RepoSnapshot, oid, offset, length) {
      foreground.read();
      return blobs.readRange(oid, offset, length, await remoteFor(snap.org, snap.repo));
    },
    sizes: sizesOf,
    onListing: () => foreground.listed(),
    onSnapshotReady(snap) {
      if (!prefetcher.streams) return;
      const start = () => {
        const files: Array<{ oid: string; size?: number }> = [];
        for (const [oid, kind] of listBlobs(snap))
          if (kind === "file" || kind === "exec") files.push({ oid, size: snap.sizes.get(oid) });
        void remoteFor(snap.org, snap.repo).then(
          (remote) => prefetcher.streamCommit(remote, snap.commitOid, files),
          () => undefined,
        );
      };
      if (heldStreams) heldStreams.push(start);
      else start();
    },
    pin: (oid) => blobs.pin(oid),
    unpin: (oid) => blobs.unpin(oid),
    localBlob: (oid) => blobs.localBlob(oid),
    onLocal: (listener) => blobs.onLocal(listener),
    // Whole-tree streams bring every file of each shown commit; listings then queue nothing
    // (and skip walking the tree below the listed directory).
    onDirectoryListed: prefetcher.streams
      ? undefined
      : (snap, files) => {
          void remoteFor(snap.org, snap.repo).then(
            (remote) => prefetcher.onDirectoryListed(remote, files),
            () => undefined,
          );
        },
    stats: () => {
      // Git requests of every repo, and the pack bytes they brought (content and trees).
      const network: FetchStats = { requests: 0, objects: 0, bytes: 0 };
      for (const r of remotes.values()) {
        network.requests += r.stats.requests;
        network.objects += r.stats.objects;
        network.bytes += r.stats.bytes;
      }
      return { ...blobs.stats(), prefetch: prefetcher.stats(), network };
    },
  };

  return {
    backend,
    content: failFastWhileDown(content, (oid) => blobs.hasLocal(oid)),
    readTimeoutMs: READ_TIMEOUT_MS,
    errors: () => [
      ...problems,
      ...[...tokens.values()].map((t) => t.status()).filter((p): p is string => p !== undefined),
    ],
    notes: () => [...notes],
    gitRemote: remoteFor,
    startBackground() {
      if (!heldStreams) return;
      const held = heldStreams;
      heldStreams = undefined;
      for (const start of held) start();
      // What an earlier run left in the disk cache becomes readable by the binding.
      void blobs
        .verifyInBackground()
        .catch((err: unknown) =>
          log.warn(
            { err: err instanceof Error ? err.message : String(err) },
            "verifying the disk cache failed",
          ),
        );
    },
    credential: async (org) => (await credentialFor(org)).current(),
    async canWrite(org) {
      const credential = (await credentialFor(org)).current();
      const rest = new RestClient({ serviceUrl: config.serviceUrl, credential });
      try {
        const who = await rest.whoami();
        return scopeAllows(who.scopes.filter(isScope), "write");
      } catch (err) {
        // A plain Git server has no REST API: the push itself will tell.
        if (isMesaError(err, "NOT_FOUND")) return true;
        throw err;
      } finally {
        await rest.close();
      }
    },
    async close() {
      for (const t of tokens.values()) t.stop();
      await prefetcher.stop();
      await flushWrites();
      await blobs.close();
      await Promise.all([...remotes.values()].map((r) => r.close()));
    },
  };
}
