/**
 * The working change of one writable repo (SPEC §9): turns the overlay into commits and
 * pushes them with compare-and-swap (debounced after writes), seals the change on `mesa new`
 * and checks out others. Following the bookmark when others move it is `poller.ts`'s job;
 * what stays of pending edits on a new base (conflict markers included) is `rebase.ts`'s.
 *
 * State kept in the overlay's journaled meta: the ref followed, the base commit P the overlay
 * is layered on, the ref value last seen, and the working change W (id, last pushed commit).
 * Every push builds P's tree + the overlay and commits it with parent P and W's change id,
 * so later pushes amend W. Design notes: docs/writing.md.
 */
import { hostname, userInfo } from "node:os";
import type { Logger } from "pino";
import { isMesaError, MesaError } from "../errors.js";
import {
  hashObject,
  newChangeId,
  type Oid,
  parseTree,
  serializeCommit,
  signatureNow,
  type TreeEntry,
  type TreeMode,
} from "../vcs/objects.js";
import type { PackObject } from "../vcs/pack-file.js";
import { bookmarkRef, changeRef, isBookmarkRef, labelBookmark } from "../vcs/refs.js";
import type { RefUpdate } from "../vcs/remote.js";
import { buildTree, type TreeChange } from "../vcs/tree-build.js";
import type { IgnoreMatcher } from "./mesaignore.js";
import type { OverlayEntry, RepoOverlay } from "./overlay.js";
import { BookmarkPoller } from "./poller.js";
import { entriesAfterSeal, entriesOntoBookmark, entriesOntoCheckout, entriesOntoCommit } from "./rebase.js";
import { entryKind, type RepoSnapshot } from "./snapshot.js";

/** What the writer needs from the server for one repo. */
export interface WriterRemote {
  refOid(ref: string): Promise<Oid | null>;
  /** Large blobs come as files; `spoolDir` is where their pack may be written first. */
  push(updates: RefUpdate[], objects: PackObject[], spoolDir?: string): Promise<void>;
  snapshotAt(commit: Oid, label: string): Promise<RepoSnapshot>;
  blob(oid: Oid): Promise<Buffer>;
}

export interface WriterMeta {
  ref: string;
  base: Oid;
  known: Oid | null;
  change?: { id: string; oid: Oid; tree: Oid; message: string };
  nextMessage?: string;
  conflicts?: string[];
  /** Parents of the working change's commits when not `[base]` (an existing change checked out). */
  parents?: Oid[];
  /** The commit being pushed (set before the push, cleared after it is recorded). */
  pushing?: { id: string; oid: Oid; tree: Oid; message: string };
  [key: string]: unknown;
}

export interface WriterOptions {
  debounceMs: number;
  maxDelayMs: number;
  pollIntervalMs: number;
}

export interface WriterStatus {
  org: string;
  repo: string;
  ref: string;
  base: Oid;
  changeId?: string;
  commit?: Oid;
  pending: boolean;
  overlayPaths: number;
  lastPushAt?: string;
  pushes: number;
  failures: number;
  lastError?: string;
  conflicts: string[];
}

export const DEFAULT_WRITER_OPTIONS: WriterOptions = {
  debounceMs: 500,
  maxDelayMs: 3000,
  pollIntervalMs: 1000,
};

function treeMode(mode: string | number): TreeMode {
  switch (entryKind(mode)) {
    case "dir":
      return "40000";
    case "exec":
      return "100755";
    case "symlink":
      return "120000";
    case "submodule":
      return "160000";
    default:
      return "100644";
  }
}

/** The author and committer of the commits this machine writes. */
export function author() {
  let name = "mesa";
  try {
    name = userInfo().username || name;
  } catch {
    // no passwd entry (containers): keep the default
  }
  const clean = (s: string) => s.replace(/[<>\n\0]/g, "");
  return signatureNow(clean(name), `${clean(name)}@${clean(hostname()) || "localhost"}`);
}

/** A new change with no edits on top of `parent` (whose tree is `tree`): its commit. */
export function emptyChange(parent: Oid, tree: Oid, message: string): { id: string; data: Buffer; oid: Oid } {
  const id = newChangeId();
  const sig = author();
  const data = serializeCommit({
    tree,
    parents: [parent],
    author: sig,
    committer: sig,
    changeId: id,
    message,
  });
  return { id, data, oid: hashObject("commit", data) };
}

export class RepoWriter {
  private pushedSeq = 0;
  private readonly sent = new Set<Oid>();
  private chain: Promise<unknown> = Promise.resolve();
  private timer?: NodeJS.Timeout;
  private readonly poller: BookmarkPoller;
  private firstDirty?: number;
  private failures = 0;
  private pushes = 0;
  /** How long the last background push took and when it ended (paces pushes of large files). */
  private lastPushMs = 0;
  private lastPushEnd = 0;
  private lastError?: string;
  private lastPushAt?: Date;
  private stopped = false;

  constructor(
    readonly org: string,
    readonly repo: string,
    private readonly overlay: RepoOverlay,
    private readonly remote: WriterRemote,
    private readonly ignored: IgnoreMatcher,
    private readonly log: Logger,
    private readonly opts: WriterOptions,
    /** The filesystem shows a new base (after a rebase or seal). */
    private readonly onBase: (snap: RepoSnapshot) => void,
  ) {
    overlay.onChange = () => this.touch();
    this.poller = new BookmarkPoller(org, repo, overlay, remote, log, {
      enqueue: (fn) => this.enqueue(fn),
      moved: (to) => this.rebaseOnto(to),
      deleted: (problem) => {
        this.lastError = problem;
      },
    });
  }

  get meta(): WriterMeta {
    return this.overlay.meta as WriterMeta;
  }

  /**
   * Sets up the followed ref on first use (the mounted bookmark, or a fork for
   * `branched-from`), or restores the base of a previous session; then starts polling and
   * pushes whatever a previous session left unpushed.
   */
  async init(branchedFrom?: { bookmark: string; as?: string }): Promise<void> {
    const base = this.overlay.base;
    if (this.meta.ref) {
      if (this.meta.base !== base.commitOid) {
        const snap = await this.remote.snapshotAt(this.meta.base, base.revision);
        await this.overlay.rebase(
          snap,
          this.overlay.paths().map((p) => [p, this.overlay.entry(p) as OverlayEntry]),
          this.meta,
        );
        this.onBase(snap);
      }
      const wanted = labelBookmark(base.revision);
      if (!branchedFrom && wanted && isBookmarkRef(this.meta.ref) && this.meta.ref !== bookmarkRef(wanted))
        await this.switchRef(bookmarkRef(wanted), base);
    } else if (branchedFrom) {
      await this.fork(branchedFrom);
    } else {
      const bookmark = labelBookmark(base.revision);
      if (!bookmark)
        throw new MesaError("INVALID_ARGUMENT", `${this.org}/${this.repo} is not mounted on a bookmark`);
      this.overlay.setMeta({ ref: bookmarkRef(bookmark), base: base.commitOid, known: base.commitOid });
    }
    this.poller.start(this.opts.pollIntervalMs);
    if (this.overlay.seq > 0) this.touch();
  }

  /**
   * The mount now names another bookmark than the overlay's work was for: push that work to
   * its own bookmark first (so nothing is lost), then follow the new one.
   */
  private async switchRef(ref: string, snap: RepoSnapshot): Promise<void> {
    const old = this.meta.ref;
    await this.enqueue(() => this.persist());
    const keep = entriesOntoBookmark(this.overlay, this.ignored, snap);
    await this.overlay.rebase(snap, keep, { ref, base: snap.commitOid, known: snap.commitOid });
    this.onBase(snap);
    this.log.info(
      { org: this.org, repo: this.repo, from: old, to: ref },
      "the mounted bookmark changed; pushed the work for the old one and follow the new one",
    );
  }

  private async fork(from: { bookmark: string; as?: string }): Promise<void> {
    const label = `bookmark:${from.as ?? from.bookmark}`;
    if (from.as) {
      const existing = await this.remote.refOid(bookmarkRef(from.as));
      if (existing) {
        // A previous session already forked it: follow it.
        const snap = await this.remote.snapshotAt(existing, label);
        await this.overlay.rebase(snap, [], {
          ref: bookmarkRef(from.as),
          base: existing,
          known: existing,
        });
        this.onBase(snap);
        return;
      }
    }
    const start = await this.remote.refOid(bookmarkRef(from.bookmark));
    if (!start)
      throw new MesaError(
        "NOT_FOUND",
        `branched-from bookmark '${from.bookmark}' not found in ${this.org}/${this.repo}`,
      );
    const snap = await this.remote.snapshotAt(start, label);
    const { id, data, oid } = emptyChange(start, snap.rootTree, "");
    const ref = from.as ? bookmarkRef(from.as) : changeRef(id);
    await this.remote.push([{ ref, old: null, new: oid }], [{ type: "commit", data }]);
    this.log.info(
      { org: this.org, repo: this.repo, ref, change: id, from: from.bookmark },
      "forked a new change",
    );
    await this.overlay.rebase(snap, [], {
      ref,
      base: start,
      known: oid,
      change: { id, oid, tree: snap.rootTree, message: "" },
    });
    this.onBase(snap);
  }

  private enqueue<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.chain.then(fn, fn);
    this.chain = next.catch(() => undefined);
    return next;
  }

  /** A write happened: persist 500 ms after the last one, at most every few seconds. */
  touch(): void {
    if (this.stopped) return;
    const now = Date.now();
    this.firstDirty ??= now;
    // Under continuous writes the next push waits at least twice as long as the last one took:
    // re-pushing a file that keeps growing then costs a bounded share of the time, not O(n²).
    const paced = this.lastPushEnd + 2 * this.lastPushMs;
    const at = Math.max(Math.min(now + this.opts.debounceMs, this.firstDirty + this.opts.maxDelayMs), paced);
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.background(), Math.max(0, at - now));
    this.timer.unref();
  }

  private background(): void {
    this.firstDirty = undefined;
    const started = Date.now();
    this.enqueue(() => this.persist()).then(
      () => {
        this.lastPushEnd = Date.now();
        this.lastPushMs = this.lastPushEnd - started;
        if (this.overlay.seq > this.pushedSeq) this.touch();
      },
      () => {
        // Keep the data and try again later, more slowly each time.
        const delay = Math.min(30_000, 1000 * 2 ** Math.min(this.failures, 5));
        clearTimeout(this.timer);
        if (!this.stopped) {
          this.timer = setTimeout(() => this.background(), delay);
          this.timer.unref();
        }
      },
    );
  }

  pending(): boolean {
    return this.overlay.seq > this.pushedSeq;
  }

  /** Resolves once everything written before the call is acknowledged by the server. */
  async persistNow(): Promise<void> {
    const target = this.overlay.seq;
    for (let i = 0; i < 3 && this.pushedSeq < target; i++) await this.enqueue(() => this.persist());
    if (this.pushedSeq < target)
      throw new MesaError("DAEMON", this.lastError ?? "the change could not be pushed");
  }

  /** What would be pushed: tree changes (ignored paths left out) and the blobs they need. */
  private async collect(): Promise<{ changes: TreeChange[]; blobs: Map<Oid, () => Promise<PackObject>> }> {
    const changes: TreeChange[] = [];
    const blobs = new Map<Oid, () => Promise<PackObject>>();
    for (const p of this.overlay.paths()) {
      const e = this.overlay.entry(p);
      if (!e || p === "") continue;
      if (this.ignored(p, e.k === "d")) continue;
      switch (e.k) {
        case "x":
        case "n": // a fifo or socket: Git has nothing at its path
          changes.push({ action: "delete", path: p });
          break;
        case "d":
          if (e.inherit) break; // metadata only
          if (e.tree) changes.push({ action: "upsert", path: p, mode: "40000", oid: e.tree });
          else changes.push({ action: "delete", path: p });
          break;
        case "l": {
          const data = Buffer.from(e.target, "utf8");
          const oid = hashObject("blob", data);
          blobs.set(oid, async () => ({ type: "blob", data }));
          changes.push({ action: "upsert", path: p, mode: "120000", oid });
          break;
        }
        case "f": {
          const mode: TreeMode = (e.perm & 0o100) !== 0 ? "100755" : "100644";
          if (e.c === undefined) {
            changes.push({ action: "upsert", path: p, mode, oid: e.blob as string });
            break;
          }
          const id = e.c;
          const { oid, size } = await this.overlay.contentOid(id);
          // Packed straight from the content file: a large file never sits in memory.
          if (!this.sent.has(oid))
            blobs.set(oid, async () => ({ type: "blob", file: this.overlay.contentPath(id), size, oid }));
          changes.push({ action: "upsert", path: p, mode, oid });
          break;
        }
      }
    }
    return { changes, blobs };
  }

  private loadTree = (oid: Oid): TreeEntry[] => {
    const entries = this.overlay.tree(oid);
    if (!entries) throw new MesaError("INTERNAL", `tree ${oid} is not known locally`);
    return entries.map((e) => ({ mode: treeMode(e.mode), name: e.name, oid: e.oid }));
  };

  /** Builds the working change's commit and pushes it (CAS on the ref); rebases on CONFLICT. */
  private async persist(): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      const seq = this.overlay.seq;
      try {
        await this.pushOnce(seq);
        this.pushedSeq = Math.max(this.pushedSeq, seq);
        if (this.failures > 0) this.log.info({ org: this.org, repo: this.repo }, "pushing works again");
        this.failures = 0;
        this.lastError = undefined;
        return;
      } catch (err) {
        if (isMesaError(err, "ABORTED") && err.details?.contentChanged && attempt < 4) {
          // A file changed between hashing and packing: collect again, nothing was sent.
          continue;
        }
        if (isMesaError(err, "CONFLICT") && attempt < 4) {
          this.log.info({ org: this.org, repo: this.repo }, "the bookmark moved while pushing; rebasing");
          await this.poller.sync();
          continue;
        }
        this.failures++;
        this.lastError = `${this.org}/${this.repo}: push failed: ${(err as Error).message}`;
        this.log.warn(
          { org: this.org, repo: this.repo, failures: this.failures, err: (err as Error).message },
          "push failed; local data kept, retrying",
        );
        throw err;
      }
    }
  }

  private async pushOnce(seq: number): Promise<void> {
    const base = this.overlay.base;
    const meta = this.meta;
    const { changes, blobs } = await this.collect();
    const built = await buildTree(base.rootTree, changes, this.loadTree);
    if (!meta.change && built.root === base.rootTree) return;
    if (meta.change && meta.change.tree === built.root && meta.known === meta.change.oid) return;
    const id = meta.change?.id ?? newChangeId();
    const message = meta.change?.message ?? meta.nextMessage ?? "";
    const sig = author();
    const data = serializeCommit({
      tree: built.root,
      parents: meta.parents ?? [base.commitOid],
      author: sig,
      committer: sig,
      changeId: id,
      message,
    });
    const oid = hashObject("commit", data);
    const objects: PackObject[] = [];
    for (const [, read] of blobs) objects.push(await read());
    // One by one: a spread into `push` overflows the stack past about 150,000 trees.
    for (const t of built.newTrees) objects.push(t);
    objects.push({ type: "commit", data });
    // Recorded first: a crash after the server took the push must not look like someone else's.
    this.overlay.setMeta({ ...meta, pushing: { id, oid, tree: built.root, message } });
    await this.remote.push([{ ref: meta.ref, old: meta.known, new: oid }], objects, this.overlay.dir);
    for (const b of blobs.keys()) this.sent.add(b);
    const trees = new Map<string, TreeEntry[]>();
    for (const t of built.newTrees) trees.set(hashObject("tree", t.data), parseTree(t.data));
    this.overlay.addTrees(trees);
    this.overlay.setMeta({
      ...meta,
      known: oid,
      change: { id, oid, tree: built.root, message },
      nextMessage: undefined,
      pushing: undefined,
    });
    this.pushes++;
    this.lastPushAt = new Date();
    this.log.info(
      {
        org: this.org,
        repo: this.repo,
        ref: meta.ref,
        change: id,
        commit: oid,
        objects: objects.length,
        seq,
      },
      "pushed the working change",
    );
  }

  /**
   * Moves the overlay onto commit `x` (someone else's): paths unchanged locally since the last
   * known ref value take the server's version, paths changed only locally stay, paths changed
   * on both sides get conflict markers. Pending edits then form a new change on top of `x`.
   */
  private async rebaseOnto(x: Oid): Promise<void> {
    const meta = this.meta;
    const base = this.overlay.base;
    const label = base.revision;
    const snapX = await this.remote.snapshotAt(x, label);
    const last = meta.known ?? base.commitOid;
    const snapL = last === base.commitOid ? base : await this.remote.snapshotAt(last, label);
    this.overlay.addTrees(snapX.trees);
    const { keep, conflicts } = await entriesOntoCommit(this.overlay, this.ignored, snapL, snapX, (oid) =>
      this.remote.blob(oid),
    );
    const all = [...new Set([...(meta.conflicts ?? []), ...conflicts])];
    await this.overlay.rebase(snapX, [...keep], {
      ref: meta.ref,
      base: x,
      known: x,
      nextMessage: meta.nextMessage,
      conflicts: all,
    });
    this.onBase(snapX);
    this.log.info(
      { org: this.org, repo: this.repo, ref: meta.ref, commit: x, pendingPaths: keep.size },
      "the bookmark moved on the server; rebased onto it",
    );
    for (const c of conflicts)
      this.log.warn(
        { org: this.org, repo: this.repo, path: c },
        "conflict: the file changed here and on the server; both versions kept with conflict markers",
      );
    if ([...keep.keys()].some((p) => !this.ignored(p, keep.get(p)?.k === "d"))) this.touch();
    else this.pushedSeq = this.overlay.seq;
  }

  /** `mesa new`: pushes, then starts the next change on top of the current one. */
  async seal(message?: string): Promise<{ sealed?: string; commit?: Oid }> {
    await this.persistNow();
    return this.enqueue(async () => {
      const meta = this.meta;
      if (!meta.change) {
        this.overlay.setMeta({ ...meta, nextMessage: message ?? meta.nextMessage });
        return {};
      }
      const seq = this.pushedSeq;
      const snap = await this.remote.snapshotAt(meta.change.oid, this.overlay.base.revision);
      const keep = entriesAfterSeal(this.overlay, this.ignored, snap, seq);
      await this.overlay.rebase(snap, keep, {
        ref: meta.ref,
        base: meta.change.oid,
        known: meta.known,
        nextMessage: message,
        conflicts: [],
      });
      if (keep.some(([p, e]) => !this.ignored(p, e.k === "d"))) this.touch();
      else this.pushedSeq = this.overlay.seq;
      this.onBase(snap);
      this.log.info(
        { org: this.org, repo: this.repo, change: meta.change.id, commit: meta.change.oid },
        "sealed the working change",
      );
      return { sealed: meta.change.id, commit: meta.change.oid };
    });
  }

  /**
   * Makes another change the working change (`mesa edit`, the SDK's `changes.new/edit`): pushes
   * what is pending first, then shows `snap` under the new `meta`. Ignored paths stay local.
   */
  async checkout(snap: RepoSnapshot, meta: WriterMeta): Promise<void> {
    await this.persistNow();
    await this.enqueue(async () => {
      await this.overlay.rebase(snap, entriesOntoCheckout(this.overlay, this.ignored), meta);
      this.pushedSeq = this.overlay.seq;
      this.onBase(snap);
    });
  }

  status(): WriterStatus {
    const meta = this.meta;
    return {
      org: this.org,
      repo: this.repo,
      ref: meta.ref,
      base: meta.base,
      changeId: meta.change?.id,
      commit: meta.change?.oid,
      pending: this.pending(),
      overlayPaths: this.overlay.paths().length,
      lastPushAt: this.lastPushAt?.toISOString(),
      pushes: this.pushes,
      failures: this.failures,
      lastError: this.lastError,
      conflicts: meta.conflicts ?? [],
    };
  }

  /** Stops timers and pushes what is pending, waiting at most `timeoutMs`. */
  async stop(timeoutMs: number): Promise<boolean> {
    this.poller.stop();
    clearTimeout(this.timer);
    let ok = !this.pending();
    if (!ok) {
      let timer: NodeJS.Timeout | undefined;
      ok = await Promise.race([
        this.persistNow().then(
          () => true,
          () => false,
        ),
        new Promise<boolean>((r) => {
          timer = setTimeout(() => r(false), timeoutMs);
        }),
      ]);
      clearTimeout(timer);
    }
    this.stopped = true;
    this.overlay.close();
    return ok;
  }
}
