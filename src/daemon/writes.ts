/**
 * Makes the daemon's mount writable: the `WritableFileSystem` over the read-only core, and
 * one overlay + `RepoWriter` per writable repo. Read-only repos (config `read-only`, a
 * change-id pin, a read-scoped credential) stay with the core, which answers EROFS.
 */
import { join } from "node:path";
import type { Logger } from "pino";
import type { Config, RepoConfig } from "../config/types.js";
import { MesaError } from "../errors.js";
import type { SnapshotFileSystem } from "../fuse/core.js";
import { type IgnoreMatcher, loadMesaignore } from "../fuse/mesaignore.js";
import { RepoOverlay } from "../fuse/overlay.js";
import type { RepoSnapshot } from "../fuse/snapshot.js";
import { WritableFileSystem } from "../fuse/writable.js";
import {
  DEFAULT_WRITER_OPTIONS,
  RepoWriter,
  snapshotAt,
  type WriterRemote,
  type WriterStatus,
} from "./persister.js";
import type { Session } from "./wiring.js";

/** How long unmount waits for pending pushes before giving up (data stays in the overlay). */
const STOP_FLUSH_MS = 20_000;

export class WriteManager {
  readonly fs: WritableFileSystem;
  private readonly writers = new Map<string, RepoWriter>();
  private readonly ignored: IgnoreMatcher;
  private readonly readOnly = new Map<string, string>();

  constructor(
    private readonly config: Config,
    private readonly session: Session,
    private readonly core: SnapshotFileSystem,
    private readonly log: Logger,
  ) {
    this.fs = new WritableFileSystem(core, session.content, {
      uid: config.uid,
      gid: config.gid,
      dataDir: config.dataDir,
      readTimeoutMs: session.readTimeoutMs,
    });
    this.ignored = loadMesaignore(config.mesaignorePath);
  }

  private remote(org: string, repo: string): WriterRemote {
    const backend = this.session.backend;
    return {
      refOid: async (ref) => {
        const git = await this.session.gitRemote(org, repo);
        const { refs } = await git.lsRefs({ prefixes: [ref] });
        return refs.find((r) => r.name === ref)?.oid ?? null;
      },
      push: async (updates, objects, spoolDir) =>
        (await this.session.gitRemote(org, repo)).push(updates, objects, { spoolDir }),
      snapshotAt: (commit, label) => snapshotAt(backend, org, repo, commit, label),
      blob: async (oid) => {
        const got = (await backend.fetchBlobs(org, repo, [oid])).get(oid);
        if (!got) throw new MesaError("NOT_FOUND", `blob ${oid} not found`);
        return got;
      },
    };
  }

  /** Makes a loaded repo writable (unless it must stay read-only). Errors leave it read-only. */
  async attach(snap: RepoSnapshot, repoConfig: RepoConfig | undefined): Promise<void> {
    const { org, repo } = snap;
    const key = `${org}/${repo}`;
    if (this.writers.has(key)) return;
    let reason: string | undefined;
    if (snap.readOnly)
      reason = snap.revision.startsWith("change-id:") ? "pinned to a change id" : "read-only in config";
    else if (!(await this.session.canWrite(org).catch(() => true)))
      reason = "the credential has read scope only";
    if (reason) {
      this.readOnly.set(key, reason);
      this.log.info({ org, repo, reason }, "repo is read-only");
      return;
    }
    const overlay = await RepoOverlay.open(join(this.config.dataDir, "overlay", org, repo), snap);
    const writer = new RepoWriter(
      org,
      repo,
      overlay,
      this.remote(org, repo),
      this.ignored,
      this.log,
      { ...DEFAULT_WRITER_OPTIONS, pollIntervalMs: this.config.daemon.pollIntervalMs },
      (s) => this.core.setRepo({ ...s, revision: snap.revision, readOnly: false }),
    );
    try {
      await writer.init(repoConfig?.branchedFrom);
    } catch (err) {
      overlay.close();
      throw err;
    }
    this.writers.set(key, writer);
    this.fs.attach(org, repo, { overlay, persistNow: () => writer.persistNow() });
  }

  async detach(org: string, repo: string): Promise<void> {
    const key = `${org}/${repo}`;
    const w = this.writers.get(key);
    this.fs.detach(org, repo);
    this.writers.delete(key);
    if (w) await w.stop(STOP_FLUSH_MS);
  }

  private pick(org?: string, repo?: string): RepoWriter {
    if (org && repo) {
      const w = this.writers.get(`${org}/${repo}`);
      if (!w) {
        const why = this.readOnly.get(`${org}/${repo}`);
        throw new MesaError(
          "INVALID_ARGUMENT",
          `${org}/${repo} is not a writable mounted repo${why ? ` (${why})` : ""}`,
        );
      }
      return w;
    }
    const all = [...this.writers.values()].filter(
      (w) => (!org || w.org === org) && (!repo || w.repo === repo),
    );
    if (all.length === 1) return all[0];
    if (all.length === 0) throw new MesaError("INVALID_ARGUMENT", "no writable repo is mounted");
    throw new MesaError("USAGE", "several repos are mounted", {
      hint: "pass --org and --repo, or run it inside the repo",
    });
  }

  /** `mesa new`: seal the working change of one repo. */
  async newChange(org?: string, repo?: string, message?: string): Promise<object> {
    const w = this.pick(org, repo);
    const r = await w.seal(message);
    return { org: w.org, repo: w.repo, ...r };
  }

  status(): Array<WriterStatus | { org: string; repo: string; readOnly: string }> {
    return [
      ...[...this.writers.values()].map((w) => w.status()),
      ...[...this.readOnly].map(([k, reason]) => {
        const [org, repo] = k.split("/");
        return { org, repo, readOnly: reason };
      }),
    ];
  }

  /** Problems for `mesa status`: failing pushes and conflicts. */
  errors(): string[] {
    const out: string[] = [];
    for (const w of this.writers.values()) {
      const s = w.status();
      if (s.lastError) out.push(s.lastError);
      for (const c of s.conflicts)
        out.push(`${s.org}/${s.repo}: conflict in ${c} (both versions kept with conflict markers)`);
    }
    return out;
  }

  /** Pushes everything pending (bounded); returns the repos whose data could not be pushed. */
  async stop(): Promise<string[]> {
    const failed: string[] = [];
    await Promise.all(
      [...this.writers.values()].map(async (w) => {
        if (!(await w.stop(STOP_FLUSH_MS))) failed.push(`${w.org}/${w.repo}`);
      }),
    );
    if (failed.length > 0)
      this.log.warn(
        { repos: failed },
        "unpushed changes stay in the overlay and are pushed on the next mount",
      );
    return failed;
  }
}
