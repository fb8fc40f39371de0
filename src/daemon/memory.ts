/**
 * Gives memory back while content streams in. Two things held the daemon's peak on a
 * 40,000-file repo, measured: network buffers, whose memory lies outside V8's heap, so a
 * burst of reads leaves megabytes of dead buffers that no heap allocation prompts a
 * collection of (12-15 MB when a stream starts); and short-lived objects promoted out of the
 * small young generation, which V8 collects only once the old generation has grown to about
 * twice what is live (35 MB of heap and 25 MB of buffers waiting at the peak). So: a young
 * collection whenever buffers grew by 8 MB, a full one whenever heap and buffers grew by a
 * quarter of what was live after the last (at least 16 MB; at most one a second), and the C
 * heap's free pages go back to the system after either (glibc keeps them otherwise).
 */

export type Collection = "minor" | "major";

export interface ReclaimerOptions {
  /** A synchronous collection (`gc({ type })` of `--expose-gc`), or none: then it only trims. */
  collect?: (type: Collection) => void;
  /** Gives the C heap's free pages back (the binding's `trimMemory`). */
  trim: () => void;
  /** Bytes in V8's heap and in buffers now (defaults to process.memoryUsage). */
  usage?: () => { heap: number; buffers: number };
  intervalMs?: number;
  bufferStepBytes?: number;
  minHeapStepBytes?: number;
  minMajorGapMs?: number;
  onCollect?: (info: { type: Collection; ms: number }) => void;
}

export interface Reclaimer {
  /** Collections run so far, by type, and the milliseconds they took in all. */
  stats(): { minor: number; major: number; ms: number };
  stop(): void;
}

const processUsage = () => {
  const m = process.memoryUsage();
  return { heap: m.heapUsed, buffers: m.arrayBuffers };
};

export function startReclaimer(opts: ReclaimerOptions): Reclaimer {
  const usage = opts.usage ?? processUsage;
  const bufferStep = opts.bufferStepBytes ?? 8 << 20;
  const minHeapStep = opts.minHeapStepBytes ?? 16 << 20;
  const minMajorGap = opts.minMajorGapMs ?? 1000;
  const counts = { minor: 0, major: 0, ms: 0 };
  const total = (u: { heap: number; buffers: number }) => u.heap + u.buffers;
  /** Heap and buffers after the last full collection; buffers after the last of either. */
  const start = usage();
  let majorBase = total(start);
  let bufferBase = start.buffers;
  let lastMajor = 0;
  let trimNext = false;
  const run = (type: Collection) => {
    if (opts.collect) {
      const t = performance.now();
      opts.collect(type);
      const ms = performance.now() - t;
      counts[type]++;
      counts.ms += ms;
      opts.onCollect?.({ type, ms });
      // Buffers a collection freed are released by V8's sweeper threads after it returns.
      trimNext = true;
    } else opts.trim();
    const u = usage();
    // Without collections nothing shrinks: each step is trimmed once.
    if (type === "major" || !opts.collect) majorBase = total(u);
    bufferBase = u.buffers;
  };
  const timer = setInterval(() => {
    if (trimNext) {
      trimNext = false;
      opts.trim();
    }
    const u = usage();
    if (
      total(u) >= majorBase + Math.max(minHeapStep, majorBase / 4) &&
      Date.now() - lastMajor >= minMajorGap
    ) {
      lastMajor = Date.now();
      run("major");
    } else if (u.buffers >= bufferBase + bufferStep) run("minor");
  }, opts.intervalMs ?? 50);
  timer.unref();
  return {
    stats: () => ({ ...counts }),
    stop: () => clearInterval(timer),
  };
}
