import { z } from "zod";
import { parseSize } from "./size.js";
import type { Config } from "./types.js";

/**
 * Every scalar setting, once: its key in config.toml (dotted, kebab-case), its MESA_*
 * variable, the zod schema both sources are validated with, its default and where it
 * lands in `Config`. The file schema, the environment reader, the defaults and
 * `mesa config show` are all derived from this table, so they cannot drift apart.
 */
export type Source = "default" | "file" | "env";

export interface Defaults {
  home: string;
  dataDir: string;
  env: NodeJS.ProcessEnv;
}

export type Kind = "path" | "size" | "bool" | "int" | "ratio" | "enum" | "url";

export interface Setting {
  /** Dotted key in config.toml, e.g. "cache.max-size". */
  key: string;
  env?: string;
  kind: Kind;
  schema: z.ZodType;
  /** Where the value lives in Config, e.g. ["cache", "maxSize"]. */
  target: string[];
  default: (d: Defaults) => unknown;
  /** One line describing the setting, used by `mesa config show --json` consumers and docs. */
  doc: string;
}

const pathSchema = z.string().min(1, "must not be empty");

const sizeSchema = (min: number) =>
  z.union([z.number(), z.string()]).transform((value, ctx) => {
    const bytes = parseSize(value);
    if (typeof bytes !== "number") {
      ctx.addIssue({ code: "custom", message: bytes.problem });
      return z.NEVER;
    }
    if (bytes < min) {
      ctx.addIssue({ code: "custom", message: `must be at least ${min} bytes` });
      return z.NEVER;
    }
    return bytes;
  });

const int = (min: number, max: number, unit = "") =>
  z
    .number()
    .int("must be a whole number")
    .min(min, `must be at least ${min}${unit}`)
    .max(max, `must be at most ${max}${unit}`);

const urlSchema = z.string().transform((value, ctx) => {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    ctx.addIssue({ code: "custom", message: `${JSON.stringify(value)} is not a URL` });
    return z.NEVER;
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    ctx.addIssue({ code: "custom", message: "must be an http:// or https:// URL" });
    return z.NEVER;
  }
  // Credentials belong in the secret store, where they are never shown or logged.
  if (url.username || url.password) {
    ctx.addIssue({
      code: "custom",
      message: "must not contain credentials: store keys with `mesa auth set-key`",
    });
    return z.NEVER;
  }
  if (url.search || url.hash) {
    ctx.addIssue({ code: "custom", message: "must not have a query or fragment" });
    return z.NEVER;
  }
  return url.href.replace(/\/+$/, "");
});

const MAX_ID = 2 ** 32 - 2;

export const SETTINGS: Setting[] = [
  {
    key: "mount-point",
    env: "MESA_MOUNT_POINT",
    kind: "path",
    schema: pathSchema,
    target: ["mountPoint"],
    default: (d) => `${d.dataDir}/mnt`,
    doc: "root of the FUSE mount; repos appear at <mount-point>/<org>/<repo>",
  },
  {
    key: "uid",
    env: "MESA_UID",
    kind: "int",
    schema: int(0, MAX_ID),
    target: ["uid"],
    default: () => process.getuid?.() ?? 0,
    doc: "owner of mounted files",
  },
  {
    key: "gid",
    env: "MESA_GID",
    kind: "int",
    schema: int(0, MAX_ID),
    target: ["gid"],
    default: () => process.getgid?.() ?? 0,
    doc: "group of mounted files",
  },
  {
    key: "service-url",
    env: "MESA_SERVICE_URL",
    kind: "url",
    schema: urlSchema,
    target: ["serviceUrl"],
    default: () => "http://127.0.0.1:7878",
    doc: "base URL of the backend (REST at <url>/v1, Git at <url>/<org>/<repo>.git)",
  },
  {
    key: "data-dir",
    env: "MESA_DATA_DIR",
    kind: "path",
    schema: pathSchema,
    target: ["dataDir"],
    default: (d) => `${d.home}/.local/share/mesa`,
    doc: "mesa's data: secret files, write overlay and journal",
  },
  {
    key: "mesaignore-path",
    env: "MESA_MESAIGNORE_PATH",
    kind: "path",
    schema: pathSchema,
    target: ["mesaignorePath"],
    default: () => undefined,
    doc: "global .mesaignore; unset = built-in defaults",
  },
  {
    key: "secrets.backend",
    env: "MESA_SECRETS_BACKEND",
    kind: "enum",
    schema: z.enum(["keychain", "encrypted-file", "plaintext-file"]),
    target: ["secrets", "backend"],
    default: () => undefined,
    doc: "secret store; unset = probe: keychain, else encrypted-file, else plaintext-file",
  },
  {
    key: "cache.enabled",
    env: "MESA_CACHE_ENABLED",
    kind: "bool",
    schema: z.boolean(),
    target: ["cache", "enabled"],
    default: () => true,
    doc: "keep fetched file content in the disk cache",
  },
  {
    key: "cache.path",
    env: "MESA_CACHE_PATH",
    kind: "path",
    schema: pathSchema,
    target: ["cache", "path"],
    default: (d) => `${d.home}/.cache/mesa`,
    doc: "disk cache directory",
  },
  {
    key: "cache.max-size",
    env: "MESA_CACHE_MAX_SIZE",
    kind: "size",
    schema: sizeSchema(1),
    target: ["cache", "maxSize"],
    default: () => 10e9,
    doc: "hard cap of the disk cache",
  },
  {
    key: "cache.max-memory-size",
    env: "MESA_CACHE_MAX_MEMORY_SIZE",
    kind: "size",
    schema: sizeSchema(1),
    target: ["cache", "maxMemorySize"],
    default: () => 320e6,
    doc: "memory cache budget",
  },
  {
    key: "prefetch.enabled",
    env: "MESA_PREFETCH_ENABLED",
    kind: "bool",
    schema: z.boolean(),
    target: ["prefetch", "enabled"],
    default: () => true,
    doc: "fetch file content in the background when directories are listed",
  },
  {
    key: "prefetch.max-depth",
    env: "MESA_PREFETCH_MAX_DEPTH",
    kind: "int",
    schema: int(1, 1000),
    target: ["prefetch", "maxDepth"],
    default: () => null,
    doc: "levels below a listed directory to prefetch; unset = whole tree, 1 = children",
  },
  {
    key: "prefetch.max-concurrency",
    env: "MESA_PREFETCH_MAX_CONCURRENCY",
    kind: "int",
    schema: int(1, 256),
    target: ["prefetch", "maxConcurrency"],
    default: () => 8,
    doc: "prefetch requests in flight at once",
  },
  {
    key: "prefetch.cache-pressure-limit",
    env: "MESA_PREFETCH_CACHE_PRESSURE_LIMIT",
    kind: "ratio",
    schema: z.number().gt(0, "must be above 0").lte(1, "must be at most 1"),
    target: ["prefetch", "cachePressureLimit"],
    default: () => 0.8,
    doc: "pause prefetching above this fraction of the memory budget",
  },
  {
    key: "daemon.log-file",
    env: "MESA_DAEMON_LOG_FILE",
    kind: "path",
    schema: pathSchema,
    target: ["daemon", "logFile"],
    default: (d) => `${d.dataDir}/logs/mesa.log`,
    doc: "daemon log (JSON lines)",
  },
  {
    key: "daemon.log-color",
    env: "MESA_DAEMON_LOG_COLOR",
    kind: "enum",
    schema: z.enum(["auto", "always", "never"]),
    target: ["daemon", "logColor"],
    default: () => "auto",
    doc: "colour in human-readable log output",
  },
  {
    key: "daemon.runtime-dir",
    env: "MESA_RUNTIME_DIR",
    kind: "path",
    schema: pathSchema,
    target: ["daemon", "runtimeDir"],
    default: (d) => (d.env.XDG_RUNTIME_DIR ? `${d.env.XDG_RUNTIME_DIR}/mesa` : `${d.dataDir}/run`),
    doc: "pid file and control socket",
  },
  {
    key: "daemon.poll-interval",
    env: "MESA_POLL_INTERVAL",
    kind: "int",
    schema: int(100, 3_600_000, " ms"),
    target: ["daemon", "pollIntervalMs"],
    // Others' edits show within about debounce + push + this (the realtime target is 3 s).
    default: () => 1000,
    doc: "how often mounted bookmarks are polled for others' changes, in milliseconds",
  },
  {
    key: "daemon.token-ttl",
    env: "MESA_TOKEN_TTL",
    kind: "int",
    schema: int(1, 24 * 3600, " s"),
    target: ["daemon", "tokenTtlSeconds"],
    default: () => 3600,
    doc: "lifetime of the access token the daemon mints per mount session, in seconds",
  },
  {
    key: "daemon.allow-partial",
    env: "MESA_ALLOW_PARTIAL",
    kind: "bool",
    schema: z.boolean(),
    target: ["daemon", "allowPartial"],
    default: () => false,
    doc: "mount the repos that load when others fail (false: a failing repo fails the mount)",
  },
];

/** Reads a setting's current value out of a Config. */
export function getSetting(config: Config, s: Setting): unknown {
  let node: unknown = config;
  for (const k of s.target) node = (node as Record<string, unknown>)[k];
  return node;
}

export function setSetting(config: Config, s: Setting, value: unknown): void {
  let node = config as unknown as Record<string, unknown>;
  for (const k of s.target.slice(0, -1)) node = node[k] as Record<string, unknown>;
  const last = s.target[s.target.length - 1]!;
  if (value === undefined) delete node[last];
  else node[last] = value;
}
