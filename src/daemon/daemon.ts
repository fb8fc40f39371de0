/**
 * The daemon's life in the foreground process: logs, stale-mount cleanup, repo loading,
 * mount, readiness report, pid file, control socket, signals and shutdown (SPEC §7).
 */
import { closeSync, writeSync } from "node:fs";
import { mkdir } from "node:fs/promises";
import type { Server } from "node:net";
import { resolve } from "node:path";
import pino, { type Logger } from "pino";
import { configuredOrgs } from "../config/load.js";
import { formatSize } from "../config/size.js";
import type { Config } from "../config/types.js";
import { formatError, MesaError } from "../errors.js";
import { type FuseMount, mountFileSystem } from "../fuse/adapter.js";
import { loadBinding } from "../fuse/native.js";
import { type LogLevel, REDACT_PATHS } from "../log.js";
import { reposToMount } from "../workspace/loader.js";
import { createRepoFileSystem, openRepo } from "../workspace/repos.js";
import { listBlobs, type RepoSnapshot } from "../workspace/snapshot.js";
import type { RepoBackend } from "./backend.js";
import { type ControlRequest, startControlServer } from "./control.js";
import { type Collection, type Reclaimer, startReclaimer } from "./memory.js";
import { checkMountPoint } from "./mount-point.js";
import { fuseMountAt, lazyUnmount, probeMount } from "./mounts.js";
import { runtimePaths } from "./paths.js";
import { livePid, removePid, writePid } from "./pidfile.js";
import { createSession, type Session } from "./wiring.js";

export interface DaemonOptions {
  logLevel: LogLevel;
  /** fd of the readiness pipe when started by `mesa mount -d`. */
  readyFd?: number;
}

export interface RepoStatus {
  org: string;
  repo: string;
  revision: string;
  commit: string;
  files: number;
  readOnly: boolean;
}

export interface DaemonStatus {
  pid: number;
  mountPoint: string;
  serviceUrl: string;
  startedAt: string;
  repos: RepoStatus[];
  cache: object;
  errors: string[];
  /** Every org the daemon mounts (and holds a credential for). */
  orgs: string[];
  logFile: string;
  /** Repos (or orgs, without `repo`) that failed to load; mounted anyway with allow-partial. */
  failed: FailedRepo[];
  /** How the service is used when it lacks optional Git capabilities. */
  notes?: string[];
  /** Working change of each writable repo, and why the others are read-only. */
  writes?: unknown[];
}

export interface FailedRepo {
  org: string;
  repo?: string;
  error: string;
}

function openLog(
  config: Config,
  level: LogLevel,
): { log: Logger; dest: pino.DestinationStream & { reopen(): void; flushSync(): void } } {
  const dest = pino.destination({ dest: config.daemon.logFile, sync: false, mkdir: true });
  const log = pino(
    { level, name: "mesa-daemon", redact: { paths: REDACT_PATHS, censor: "[redacted]" } },
    dest,
  );
  return { log, dest: dest as unknown as pino.DestinationStream & { reopen(): void; flushSync(): void } };
}

/** A progress line for the `mount -d` that waits on the readiness pipe (it prints them on a TTY). */
function reportProgress(fd: number | undefined, progress: string): void {
  if (fd === undefined) return;
  try {
    writeSync(fd, `${JSON.stringify({ progress })}\n`);
  } catch {
    // The parent stopped listening; progress is optional.
  }
}

function reportReady(fd: number | undefined, msg: object): void {
  if (fd === undefined) return;
  try {
    writeSync(fd, `${JSON.stringify(msg)}\n`);
    closeSync(fd);
  } catch {
    // The parent gave up waiting; nothing else to tell.
  }
}

async function mapLimit<T, R>(items: T[], limit: number, fn: (t: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}

interface Failure {
  org: string;
  repo?: string;
  err: unknown;
}

function failedRepos(failures: Failure[]): FailedRepo[] {
  return failures.map((f) => ({
    org: f.org,
    ...(f.repo ? { repo: f.repo } : {}),
    error: formatError(f.err),
  }));
}

/**
 * Why the mount failed when repos did not load: one cause shared by all (server down, key
 * refused) is that cause with its fix; otherwise every failed repo, and how to mount the rest.
 */
function loadFailure(failures: Failure[], nothing: boolean): unknown {
  const causes = new Set(failures.map((f) => formatError(f.err)));
  if (nothing && causes.size === 1) return failures[0].err;
  const list = failedRepos(failures)
    .map((f) => `  ${f.org}${f.repo ? `/${f.repo}` : ""}: ${f.error}`)
    .join("\n");
  const n = failures.length;
  return new MesaError(
    "DAEMON",
    `${n} ${n === 1 ? "repository" : "repositories"} failed to load, so nothing was mounted:\n${list}\n` +
      "fix the revision or name (MESA_REPO_REVS, [organizations] in config.toml), or mount the others with `mesa mount -d --allow-partial` (allow-partial = true under [daemon])",
  );
}

export async function runDaemon(config: Config, opts: DaemonOptions): Promise<number> {
  const mountPoint = resolve(config.mountPoint);
  const paths = runtimePaths(config);
  await mkdir(config.daemon.runtimeDir, { recursive: true, mode: 0o700 });
  const { log, dest } = openLog(config, opts.logLevel === "warn" ? "info" : opts.logLevel);
  const errors: string[] = [];
  let fuse: FuseMount | undefined;
  let control: Server | undefined;
  let session: Session | undefined;

  const t0 = Date.now();
  const failures: Failure[] = [];
  log.info({ pid: process.pid, mountPoint }, "starting");
  const fail = (err: unknown): number => {
    const message =
      err instanceof MesaError && err.hint ? `${err.message}: ${err.hint}` : (err as Error).message;
    log.error({ err: (err as Error).message }, "mount failed");
    dest.flushSync();
    reportReady(opts.readyFd, { error: message });
    if (opts.readyFd === undefined) process.stderr.write(`mesa: ${message}\n`);
    return 1;
  };

  try {
    const other = await livePid(paths.pidFile);
    if (other !== undefined && other !== process.pid)
      throw new MesaError("DAEMON", `mesa is already running (pid ${other})`);
    if (await fuseMountAt(mountPoint)) {
      log.warn({ mountPoint }, "stale mount found; unmounting it lazily");
      if (!(await lazyUnmount(mountPoint)))
        throw new MesaError("FUSE", `a stale mount at ${mountPoint} could not be removed`, {
          hint: `run \`fusermount -uz ${mountPoint}\``,
        });
    } else if ((await probeMount(mountPoint)) === "enotconn") {
      await lazyUnmount(mountPoint);
    }
    const unusable = await checkMountPoint(mountPoint, { create: true });
    if (unusable) throw unusable;

    session = await createSession(config, log, { holdBackground: true });
    const backend: RepoBackend = session.backend;
    const orgs = configuredOrgs(config);
    if (orgs.length === 0)
      throw new MesaError("CONFIG_INVALID", "no organization is configured", {
        hint: "set MESA_ORG and MESA_API_KEY, MESA_ORGS=org:key, or add [organizations.<org>] to config.toml",
      });
    const rfs = createRepoFileSystem(config, session, log, orgs);
    const { fs, writes } = rfs;
    const open = async (org: string, repo: string): Promise<RepoSnapshot> => {
      const { snap, writeError } = await openRepo(rfs, session as Session, config, org, repo);
      if (writeError) {
        errors.push(`${org}/${repo}: writes disabled: ${writeError.message}`);
        log.error({ org, repo, err: writeError.message }, "repo stays read-only");
      }
      return snap;
    };

    const loadOne = async (org: string, repo: string): Promise<RepoSnapshot | undefined> => {
      try {
        const snap = await open(org, repo);
        log.info(
          { org, repo, revision: snap.revision, commit: snap.commitOid, files: listBlobs(snap).size },
          "repo loaded",
        );
        return snap;
      } catch (err) {
        failures.push({ org, repo, err });
        errors.push(`${org}/${repo}: ${(err as Error).message}`);
        log.error({ org, repo, err: (err as Error).message }, "repo failed to load");
        return undefined;
      }
    };

    const wanted: Array<[string, string]> = [];
    for (const org of orgs) {
      try {
        for (const repo of await reposToMount(backend, config, org)) wanted.push([org, repo]);
      } catch (err) {
        failures.push({ org, err });
        errors.push(`${org}: ${(err as Error).message}`);
        log.error({ org, err: (err as Error).message }, "listing repos failed");
      }
    }
    let done = 0;
    let files = 0;
    let bytes = 0;
    const loaded = await mapLimit(wanted, 4, async ([org, repo]) => {
      const snap = await loadOne(org, repo);
      done++;
      if (snap) {
        files += snap.sizes.size;
        for (const size of snap.sizes.values()) bytes += size;
      }
      reportProgress(
        opts.readyFd,
        `Loading trees: ${done}/${wanted.length} repos, ${files} files, ${formatSize(bytes)}${done === wanted.length ? ", done." : ""}`,
      );
      return snap;
    });
    const nothing = loaded.every((s) => s === undefined);
    if (failures.length > 0 && (nothing || !config.daemon.allowPartial)) throw loadFailure(failures, nothing);

    // Opens skip the daemon unless a repo is read-only, whose writers must get EROFS at open.
    const kernelOpens = !writes.status().some((w) => "readOnly" in w);
    fuse = await mountFileSystem(mountPoint, fs, {
      onUnexpectedError: (op, path, err) =>
        log.error({ op, path, err: (err as Error).message }, "filesystem error"),
      kernelOpens,
    });
    const probe = await probeMount(mountPoint, 10_000);
    if (probe !== "ok") throw new MesaError("FUSE", `the mount at ${mountPoint} does not answer (${probe})`);

    const startedAt = new Date();
    const status = (): DaemonStatus => ({
      pid: process.pid,
      mountPoint,
      serviceUrl: config.serviceUrl,
      startedAt: startedAt.toISOString(),
      repos: fs.repos().map((s) => ({
        org: s.org,
        repo: s.repo,
        revision: s.revision,
        commit: s.commitOid,
        // Counted from the trees: sizes may load lazily (a server without object-info).
        files: listBlobs(s).size,
        readOnly: s.readOnly,
      })),
      cache: session?.content.stats() ?? {},
      errors: [...errors, ...(session?.errors() ?? []), ...writes.errors()],
      notes: session?.notes() ?? [],
      writes: writes.status(),
      orgs: configuredOrgs(config),
      logFile: config.daemon.logFile,
      failed: failedRepos(failures),
    });

    let stopping: Promise<number> | undefined;
    let watch: NodeJS.Timeout | undefined;
    let reclaimer: Reclaimer | undefined;
    const stop = (reason: string): Promise<number> => {
      stopping ??= (async () => {
        log.info({ reason }, "stopping");
        clearInterval(watch);
        reclaimer?.stop();
        control?.close();
        try {
          await fuse?.unmount();
        } catch (err) {
          log.warn({ err: (err as Error).message }, "unmount failed; unmounting lazily");
          await lazyUnmount(mountPoint);
        }
        // Nothing can write once unmounted: push what is pending (bounded; kept if it fails).
        await writes.stop();
        await session?.close();
        await removePid(paths.pidFile);
        log.info("stopped");
        dest.flushSync();
        return 0;
      })();
      return stopping;
    };

    const handle = async (req: ControlRequest): Promise<unknown> => {
      switch (req.cmd) {
        case "status":
          return status();
        case "stats":
          return {
            pid: process.pid,
            uptimeSeconds: Math.round((Date.now() - startedAt.getTime()) / 1000),
            rssBytes: process.memoryUsage().rss,
            openFiles: fs.openHandles(),
            repos: fs.repos().length,
            fs: fs.counters,
            fuse: fuse?.counters(),
            cache: session?.content.stats() ?? {},
          };
        case "unmount":
          setImmediate(() => void stop("unmount requested").then((code) => process.exit(code)));
          return { stopping: true };
        case "repo-open": {
          const snap = await loadSnapshotOrThrow(req.org, req.repo);
          return { org: snap.org, repo: snap.repo, revision: snap.revision, commit: snap.commitOid };
        }
        case "new":
          return writes.newChange(req.org, req.repo, req.message);
        case "credential":
          return { credential: await session!.credential(req.org), serviceUrl: config.serviceUrl };
        case "edit":
          return writes.editChange(req.changeId, req.org, req.repo);
        case "repo-close":
          await writes.detach(req.org, req.repo);
          if (!fs.removeRepo(req.org, req.repo)) throw new Error(`${req.org}/${req.repo} is not mounted`);
          log.info({ org: req.org, repo: req.repo }, "repo closed");
          return { closed: true };
        default:
          throw new Error(`unknown command '${(req as { cmd: string }).cmd}'`);
      }
    };
    const loadSnapshotOrThrow = async (org: string, repo: string): Promise<RepoSnapshot> => {
      const snap = await open(org, repo);
      log.info({ org, repo, revision: snap.revision }, "repo opened");
      return snap;
    };

    control = await startControlServer(paths.socket, handle);
    await writePid(paths.pidFile);

    // An external `fusermount -u` ends the FUSE loop without telling us: watch the mount table.
    watch = setInterval(() => {
      fuseMountAt(mountPoint).then(
        (m) => {
          if (!m && !stopping) {
            log.warn({ mountPoint }, "the mount was removed from outside; exiting");
            void stop("external unmount").then((code) => process.exit(code));
          }
        },
        () => undefined,
      );
    }, 2000);

    // `gc` is there when the daemon was started by `mount -d` (src/daemon/spawn.ts).
    const gc = (globalThis as { gc?: (o: { type: Collection }) => void }).gc;
    const binding = loadBinding();
    reclaimer = startReclaimer({
      collect: gc && ((type) => gc({ type })),
      trim: () => binding.trimMemory(),
      onCollect: ({ type, ms }) => log.debug({ type, ms: Math.round(ms) }, "memory collected"),
    });
    process.on("SIGHUP", () => {
      dest.reopen();
      log.info("log file reopened");
    });
    const onSignal = (sig: string) => void stop(sig).then((code) => process.exit(code));
    process.on("SIGTERM", () => onSignal("SIGTERM"));
    process.on("SIGINT", () => onSignal("SIGINT"));

    log.info({ mountPoint, pid: process.pid, repos: fs.repos().length, ms: Date.now() - t0 }, "mounted");
    reportReady(opts.readyFd, { ready: true, pid: process.pid, mountPoint, failed: failedRepos(failures) });
    // Content streams start once the tree is listed (or after a second): setting one up takes
    // the event loop for tens of milliseconds, which a walk right after the mount waits for.
    const started = session;
    setTimeout(() => started.startBackground(), 1000).unref();
    void fuse.listTree().then(() => started.startBackground());
    if (opts.readyFd === undefined) process.stdout.write(`mesa: mounted at ${mountPoint} (Ctrl+C stops)\n`);
    // The process now lives on its event loop until a signal or `mesa unmount` stops it.
    return await new Promise<number>(() => undefined);
  } catch (err) {
    control?.close();
    if (fuse) await fuse.unmount().catch(() => lazyUnmount(mountPoint));
    await session?.close().catch(() => undefined);
    return fail(err);
  }
}
