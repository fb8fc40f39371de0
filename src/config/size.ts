/**
 * Byte sizes as written in config.toml and MESA_CACHE_*: "10GB", "512MB", "1.5GiB", "4096".
 * Decimal units are powers of 1000 (GB = 10^9), binary units powers of 1024 (GiB = 2^30);
 * a bare number is bytes.
 */
const UNITS: Record<string, number> = {
  b: 1,
  kb: 1e3,
  mb: 1e6,
  gb: 1e9,
  tb: 1e12,
  kib: 2 ** 10,
  mib: 2 ** 20,
  gib: 2 ** 30,
  tib: 2 ** 40,
};

const SIZE_RE = /^(\d+(?:\.\d+)?)\s*([a-z]*)$/i;

/** The size in bytes, or a reason why the value is not a size. */
export function parseSize(value: unknown): number | { problem: string } {
  if (typeof value === "number") {
    if (!Number.isSafeInteger(value)) return { problem: "must be a whole number of bytes" };
    if (value < 0) return { problem: "must not be negative" };
    return value;
  }
  if (typeof value !== "string") return { problem: `expected a size like "10GB", got ${typeOf(value)}` };
  const text = value.trim();
  if (text.startsWith("-")) return { problem: "must not be negative" };
  const m = SIZE_RE.exec(text);
  const unit = m ? UNITS[(m[2] || "b").toLowerCase()] : undefined;
  if (!m || unit === undefined)
    return { problem: `${JSON.stringify(value)} is not a size: use e.g. "10GB", "512MB", "1.5GiB" or bytes` };
  const bytes = Math.floor(Number(m[1]) * unit);
  if (!Number.isSafeInteger(bytes)) return { problem: `${JSON.stringify(value)} is too large` };
  return bytes;
}

/** Human form for `mesa config show`: exact decimal/binary unit when there is one. */
export function formatSize(bytes: number): string {
  for (const [unit, factor] of [
    ["TB", 1e12],
    ["TiB", 2 ** 40],
    ["GB", 1e9],
    ["GiB", 2 ** 30],
    ["MB", 1e6],
    ["MiB", 2 ** 20],
    ["KB", 1e3],
    ["KiB", 2 ** 10],
  ] as const) {
    if (bytes >= factor && bytes % factor === 0) return `${bytes / factor}${unit}`;
  }
  return `${bytes}B`;
}

export function typeOf(value: unknown): string {
  if (Array.isArray(value)) return "an array";
  if (value === null) return "null";
  if (typeof value === "object") return "a table";
  if (typeof value === "number") return Number.isInteger(value) ? "an integer" : "a float";
  return `a ${typeof value}`;
}
