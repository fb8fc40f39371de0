/**
 * What the foreground is doing, for background streams to give way to it. A cold walk
 * (`rg --files`, `find`) lists hundreds of directories in a few hundred milliseconds; inflating,
 * hashing and writing the whole-tree stream at the same time takes about a core of a two-core
 * machine. So the stream waits while listings and lookups arrive, unless content is being read
 * (then the stream is what the reader waits for), and never longer than `MAX_WAIT_MS` at a time.
 */
import { setTimeout as sleep } from "node:timers/promises";

/** A walk is over once no listing came for this long. */
const QUIET_MS = 30;
/** Reads of committed content this recent mean the stream is wanted (a search reads from the cache
 * once the stream got ahead, which this process does not see, so the window is long). */
const READ_WINDOW_MS = 2000;
/** The longest single wait: a walk that goes on still lets the stream move. */
const MAX_WAIT_MS = 250;
/** A stream starts this long after it was asked for, or at the first read. */
const START_GRACE_MS = 150;

export class ForegroundActivity {
  private lastListing = Number.NEGATIVE_INFINITY;
  private lastRead = Number.NEGATIVE_INFINITY;

  /** A listing or lookup is being answered. */
  listed(): void {
    this.lastListing = performance.now();
  }

  /** Committed content is being read. */
  read(): void {
    this.lastRead = performance.now();
  }

  /**
   * Before a stream starts (right after the mount is ready): a moment for a walk that starts
   * at once (an agent mounting, then searching), cut short by a read, which wants the stream.
   */
  async beforeStream(): Promise<void> {
    const start = performance.now();
    while (performance.now() - start < START_GRACE_MS && !this.reading()) await sleep(QUIET_MS / 3);
    await this.quiet();
  }

  private reading(): boolean {
    return performance.now() - this.lastRead < READ_WINDOW_MS;
  }

  /** Resolves once the foreground does not need the cores to itself (at once, mostly). */
  async quiet(): Promise<void> {
    const start = performance.now();
    for (;;) {
      const now = performance.now();
      if (now - this.lastListing >= QUIET_MS || this.reading() || now - start >= MAX_WAIT_MS) return;
      await sleep(QUIET_MS / 3);
    }
  }
}
