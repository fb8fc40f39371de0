/**
 * Makes mounted repos writable: one overlay + `RepoWriter` per writable repo, attached to the
 * workspace filesystem. Read-only repos (config `read-only`, a change-id pin, a read-scoped
 * credential) keep showing their snapshot, and writes to them get EROFS.
 */

import { join } from "node:path";
import type { Logger } from "pino";
import { bookmarkProblem } from "../config/revs.js";
import type { Config, RepoConfig } from "../config/types.js";
import type { Session } from "../daemon/wiring.js";
import { MesaError } from "../errors.js";
import { changeIdFromOid, isChangeId, type Oid, parseCommit } from "../vcs/objects.js";
import { isFileBlob } from "../vcs/pack-file.js";
import { bookmarkRef, changeRef, isChangeRef, refOid } from "../vcs/refs.js";
import type { WorkspaceFileSystem } from "./filesystem.js";
import type { Change, ChangeListener } from "./fs-api.js";
import { snapshotAt } from "./loader.js";
import { type IgnoreMatcher, loadMesaignore } from "./mesaignore.js";
import { RepoOverlay } from "./overlay.js";
import type { RepoSnapshot } from "./snapshot.js";
import { changedPaths } from "./snapshot-diff.js";
import {
  DEFAULT_WRITER_OPTIONS,
  emptyChange,
  RepoWriter,
  type WriterRemote,
  type WriterStatus,
} from "./writer.js";

/** What `checkout` makes the working change: a new one on top of something, or an existing one. */
export type CheckoutTarget =
  | { new: true; bookmark?: string; changeId?: string; message?: string }
  | { new?: false; bookmark?: string; changeId?: string };

/** How long unmount waits for pending pushes before giving up (data stays in the overlay). */
const STOP_FLUSH_MS = 20_000;

export class WriteManager {
  private readonly writers = new Map<string, RepoWriter>();
  private readonly ignored: IgnoreMatcher;
  private readonly readOnly = new Map<string, string>();
  private readonly listeners = new Set<ChangeListener>();
  /** Per repo, the root tree whose content the mount shows apart from its overlay. */
  private readonly shown = new Map<string, string>();

  constructor(
    private readonly config: Config,
    private readonly session: Session,
    private readonly fs: WorkspaceFileSystem,
    private readonly log: Logger,
  ) {
    this.ignored = loadMesaignore(config.mesaignorePath);
  }

  /**
   * Others' changes (polls, rebases, checkouts) once the mount shows them, without this mount's
   * own pushes (for SDK subscribers; the kernel's caches follow the filesystem's own feed, which
   * also covers repos opened, closed or switched). Returns the unsubscribe.
   */
  onChange(listener: ChangeListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private emit(changes: Change[]): void {
    if (changes.length === 0) return;
    for (const l of this.listeners) {
      try {
        l(changes);
      } catch (err) {
        this.log.warn({ err: (err as Error).message }, "a change listener failed");
      }
    }
  }

  private remote(org: string, repo: string): WriterRemote {
    const backend = this.session.backend;
    const key = `${org}/${repo}`;
    return {
      refOid: async (ref) => refOid(await this.session.gitRemote(org, repo), ref),
      push: async (updates, objects, spoolDir) => {
        await (await this.session.gitRemote(org, repo)).push(updates, objects, { spoolDir });
        // What we pushed is already on screen: a later base with this tree is no news.
        const commit = objects.find((o) => o.type === "commit" && !isFileBlob(o));
        if (commit && !isFileBlob(commit)) this.shown.set(key, parseCommit(commit.data).tree);
      },
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
    this.shown.set(key, snap.rootTree);
    const writer = new RepoWriter(
      org,
      repo,
      overlay,
      this.remote(org, repo),
      this.ignored,
      this.log,
      { ...DEFAULT_WRITER_OPTIONS, pollIntervalMs: this.config.daemon.pollIntervalMs },
      (s) => {
        this.fs.baseMoved(org, repo);
        const before = this.shown.get(key) ?? s.rootTree;
        this.shown.set(key, s.rootTree);
        this.emit(
          changedPaths(`/${key}`, before, s.rootTree, (oid) => s.trees.get(oid) ?? overlay.tree(oid)),
        );
      },
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
    if (isChangeRef(w.meta.ref)) {
      // A checked-out change has no bookmark to carry on: the next change gets its own ref.
      const sealed = w.meta.change;
      await this.checkout(w.org, w.repo, { new: true, message });
      return { org: w.org, repo: w.repo, sealed: sealed?.id, commit: sealed?.oid };
    }
    const r = await w.seal(message);
    return { org: w.org, repo: w.repo, ...r };
  }

  /** `mesa edit`: the repo is picked as for `mesa new`. */
  async editChange(changeId: string, org?: string, repo?: string): Promise<object> {
    const w = this.pick(org, repo);
    const r = await this.checkout(w.org, w.repo, { changeId });
    return { org: w.org, repo: w.repo, ...r };
  }

  /** The working change of a writable repo: its id and commit, once it has one. */
  workingChange(org: string, repo: string): { changeId?: string; commit?: Oid; ref: string } {
    const w = this.pick(org, repo);
    return { changeId: w.meta.change?.id, commit: w.meta.change?.oid, ref: w.meta.ref };
  }

  /** Waits until everything written to the repo so far is on the server. */
  async flush(org: string, repo: string): Promise<void> {
    await this.pick(org, repo).persistNow();
  }

  /**
   * `mesa edit` and the SDK's `changes.new/edit`: pending work is pushed first, then the mount
   * shows the target. `new` pushes an empty change on top of the bookmark, the change or (with
   * neither) the working change, and follows it; `edit` makes an existing change (or a
   * bookmark's head) the working change, so later writes amend it.
   */
  async checkout(
    org: string,
    repo: string,
    target: CheckoutTarget,
  ): Promise<{ changeId: string; commit: Oid }> {
    const w = this.pick(org, repo);
    if (target.bookmark !== undefined && target.changeId !== undefined)
      throw new MesaError("INVALID_ARGUMENT", "name a bookmark or a change id, not both");
    if (target.changeId !== undefined && !isChangeId(target.changeId))
      throw new MesaError("INVALID_ARGUMENT", `'${target.changeId}' is not a change id (32 letters k-z)`);
    const badBookmark = target.bookmark === undefined ? undefined : bookmarkProblem(target.bookmark);
    if (badBookmark) throw new MesaError("INVALID_ARGUMENT", `invalid bookmark name: ${badBookmark}`);
    const remote = this.remote(org, repo);
    await w.persistNow();
    const at = async (ref: string, what: string): Promise<Oid> => {
      const oid = await remote.refOid(ref);
      if (!oid) throw new MesaError("NOT_FOUND", `${what} not found in ${org}/${repo}`);
      return oid;
    };
    const label = this.fs.repos().find((s) => s.org === org && s.repo === repo)?.revision ?? "";
    if (target.new) {
      const parent =
        target.bookmark !== undefined
          ? await at(bookmarkRef(target.bookmark), `bookmark '${target.bookmark}'`)
          : target.changeId !== undefined
            ? await at(changeRef(target.changeId), `change ${target.changeId}`)
            : (w.meta.change?.oid ?? w.meta.base);
      const snap = await remote.snapshotAt(parent, label);
      const { id, data, oid } = emptyChange(parent, snap.rootTree, target.message ?? "");
      const ref = changeRef(id);
      await remote.push([{ ref, old: null, new: oid }], [{ type: "commit", data }]);
      await w.checkout(snap, {
        ref,
        base: parent,
        known: oid,
        change: { id, oid, tree: snap.rootTree, message: target.message ?? "" },
      });
      this.log.info({ org, repo, change: id, parent }, "started a new change");
      return { changeId: id, commit: oid };
    }
    let ref: string;
    if (target.changeId !== undefined) ref = changeRef(target.changeId);
    else if (target.bookmark !== undefined) ref = bookmarkRef(target.bookmark);
    else throw new MesaError("INVALID_ARGUMENT", "name the change (or bookmark) to edit");
    const oid = await at(
      ref,
      target.changeId !== undefined ? `change ${target.changeId}` : `bookmark '${target.bookmark}'`,
    );
    const { commit } = await (await this.session.gitRemote(org, repo)).fetchCommitTrees(oid);
    const snap = await remote.snapshotAt(oid, label);
    const id = commit.changeId ?? changeIdFromOid(oid);
    await w.checkout(snap, {
      ref,
      base: oid,
      known: oid,
      change: { id, oid, tree: commit.tree, message: commit.message },
      parents: commit.parents,
    });
    this.log.info({ org, repo, change: id, commit: oid }, "checked out a change");
    return { changeId: id, commit: oid };
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
