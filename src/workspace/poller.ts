/**
 * Following the bookmark (SPEC §9): polls the ref the working change is pushed to and decides
 * what a new value means: our own push whose reply was lost (adopted as pushed), the ref
 * deleted on the server (reported; nothing moves), or someone else's commit (the writer moves
 * the pending edits onto it). Kept apart from the writer so pushing and following read alone.
 */
import type { Logger } from "pino";
import type { Oid } from "../vcs/objects.js";
import type { RepoOverlay } from "./overlay.js";
import type { WriterMeta, WriterRemote } from "./writer.js";

/** What the poller asks of the writer whose ref it follows. */
export interface FollowHooks {
  /** Runs `fn` in the writer's queue, so a poll never overlaps a push. */
  enqueue<T>(fn: () => Promise<T>): Promise<T>;
  /** Someone else moved the ref to `to`. */
  moved(to: Oid): Promise<void>;
  /** The followed ref is gone from the server (a problem for `mesa status`). */
  deleted(problem: string): void;
}

export class BookmarkPoller {
  private timer?: NodeJS.Timeout;
  private polling = false;
  private failing = false;

  constructor(
    private readonly org: string,
    private readonly repo: string,
    private readonly overlay: RepoOverlay,
    private readonly remote: Pick<WriterRemote, "refOid">,
    private readonly log: Logger,
    private readonly hooks: FollowHooks,
  ) {}

  private get meta(): WriterMeta {
    return this.overlay.meta as WriterMeta;
  }

  /** Polls every `intervalMs` until `stop`. */
  start(intervalMs: number): void {
    this.timer = setInterval(() => void this.poll(), intervalMs);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
  }

  /** One poll of the followed ref (skipped while another poll runs; waits for a push). */
  async poll(): Promise<void> {
    if (this.polling) return;
    this.polling = true;
    try {
      await this.hooks.enqueue(() => this.sync());
      if (this.failing) this.log.info({ org: this.org, repo: this.repo }, "polling the bookmark works again");
      this.failing = false;
    } catch (err) {
      // One line per outage, not one per poll.
      if (!this.failing)
        this.log.warn(
          { org: this.org, repo: this.repo, err: (err as Error).message },
          "polling the bookmark failed",
        );
      this.failing = true;
    } finally {
      this.polling = false;
    }
  }

  /** Follows the ref if someone else moved it (called in the writer's queue). */
  async sync(): Promise<void> {
    const meta = this.meta;
    const cur = await this.remote.refOid(meta.ref);
    if (cur === meta.known) return;
    if (meta.pushing && cur === meta.pushing.oid) {
      // Our own push landed but we died (or lost the reply) before recording it.
      this.overlay.setMeta({
        ...meta,
        known: cur,
        change: meta.pushing,
        nextMessage: undefined,
        pushing: undefined,
      });
      this.log.info(
        { org: this.org, repo: this.repo, commit: cur },
        "adopted our own push found on the server",
      );
      return;
    }
    if (cur === null) {
      this.hooks.deleted(`${this.org}/${this.repo}: ${meta.ref} was deleted on the server`);
      this.log.error(
        { org: this.org, repo: this.repo, ref: meta.ref },
        "the followed ref was deleted on the server",
      );
      return;
    }
    await this.hooks.moved(cur);
  }
}
