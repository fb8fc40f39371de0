/**
 * A test's resources with their cleanup attached: a temp dir, `mesa serve`, daemons, sandboxes
 * and anything with a `close()`. Each is cleaned up after the test (or suite) that made it, in
 * reverse order of creation, whether the test passed or not. Every step is bounded and runs
 * even when an earlier one failed (a daemon that never started still lets the server stop and
 * the dir go); the first failure is reported once all steps have run.
 *
 *   const fx = fixture(t, "write-model");     // in a test
 *   const fx = fixture({ after }, "sdk");     // at file level, for all its tests
 *   const serve = await fx.serve();
 *   const d = await fx.daemon(serve, { env: { MESA_PREFETCH_ENABLED: "false" } });
 */
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { mesaEnv, run, stopSandbox, tempDir } from "./mount.js";
import { type ServeHandle, type StartServeOptions, startServe } from "./serve.js";
import { type Daemon, startDaemon } from "./write.js";

/** What registers the cleanup: a test context, or `{ after }` from node:test for a file. */
export interface CleanupHost {
  after(fn: () => Promise<void>): void;
}

export interface DaemonOptions {
  /** Sandbox directory below the fixture's dir (default "d"). */
  name?: string;
  /** Extra environment for the daemon (MESA_* settings). */
  env?: Record<string, string>;
  /** `mesa` arguments before `mount -d`, e.g. ["-c", config]. */
  args?: string[];
}

export interface Fixture {
  /** A temp dir of its own, made on first use and removed last. */
  readonly dir: string;
  /** Runs `step` at cleanup, before everything registered earlier. */
  defer(step: () => unknown): void;
  /** Closes `resource` at cleanup (a proxy, a git server, a client); returns it. */
  use<T extends { close(): unknown }>(resource: T): T;
  /** `mesa serve`, stopped at cleanup. */
  serve(opts?: StartServeOptions): Promise<ServeHandle>;
  /** A daemon mounted in its own sandbox below `dir`, stopped and unmounted at cleanup. */
  daemon(serve: ServeHandle, opts?: DaemonOptions): Promise<Daemon>;
  /**
   * A daemon sandbox's environment (`mesaEnv`) in `dir`/`name` ("." for `dir` itself); whatever
   * runs or is mounted there is stopped and unmounted at cleanup.
   */
  sandbox(name: string, extra?: Record<string, string>): NodeJS.ProcessEnv;
}

/** Each cleanup step gets this long before the next one runs. */
const STEP_TIMEOUT_MS = 90_000;

async function bounded(step: () => unknown, label: string): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      Promise.resolve().then(step),
      new Promise((_, reject) => {
        timer = setTimeout(
          () => reject(new Error(`cleanup step ${label} took over ${STEP_TIMEOUT_MS} ms`)),
          STEP_TIMEOUT_MS,
        );
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

export function fixture(host: CleanupHost, name: string): Fixture {
  const steps: Array<() => unknown> = [];
  let dir: string | undefined;
  // One cleanup step per sandbox dir; it stops whatever was started there last.
  const stops = new Map<string, () => Promise<void>>();
  const stopAt = (at: string, stop: () => Promise<void>) => {
    if (!stops.has(at)) steps.push(() => stops.get(at)?.());
    stops.set(at, stop);
  };

  host.after(async () => {
    let first: unknown;
    for (let i = steps.length - 1; i >= 0; i--) {
      try {
        await bounded(steps[i]!, `${name} #${i}`);
      } catch (err) {
        first ??= err;
      }
    }
    steps.length = 0;
    if (first !== undefined) throw first;
  });

  const fx: Fixture = {
    get dir() {
      if (dir === undefined) {
        const made = tempDir(name);
        dir = made;
        // Never into a mount that is somehow still there: that would delete through it.
        steps.push(() => run("rm", ["-rf", "--one-file-system", made], { timeoutMs: 60_000 }));
      }
      return dir;
    },
    defer(step) {
      steps.push(step);
    },
    use(resource) {
      steps.push(() => resource.close());
      return resource;
    },
    async serve(opts) {
      const serve = await startServe(opts);
      steps.push(() => serve.stop());
      return serve;
    },
    async daemon(serve, opts = {}) {
      const at = join(fx.dir, opts.name ?? "d");
      mkdirSync(at, { recursive: true });
      // Registered before the start: a daemon that fails half-way is still stopped.
      stopAt(at, () => stopSandbox(mesaEnv(at, opts.env)));
      const d = await startDaemon(at, serve, opts.env, opts.args);
      stopAt(at, () => d.stop());
      return d;
    },
    sandbox(name, extra = {}) {
      const at = join(fx.dir, name);
      const env = mesaEnv(at, extra);
      stopAt(at, () => stopSandbox(env));
      return env;
    },
  };
  return fx;
}
