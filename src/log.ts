import pino, { type Logger } from "pino";

export type { Logger };

/**
 * Field names whose values are secrets. Everything logs through these redaction rules,
 * so a key that slips into a log object is replaced rather than written.
 */
export const REDACT_PATHS = [
  "key",
  "apiKey",
  "token",
  "password",
  "passphrase",
  "authorization",
  "*.key",
  "*.apiKey",
  "*.token",
  "*.password",
  "*.passphrase",
  "*.authorization",
  "headers.authorization",
  "req.headers.authorization",
];

export type LogLevel = "trace" | "debug" | "info" | "warn" | "error" | "fatal" | "silent";

/** A logger writing JSON lines to `destination` (a path or fd; default stderr). */
export function createLogger(
  opts: { level?: LogLevel; destination?: string | number; name?: string } = {},
): Logger {
  const dest = pino.destination({
    dest: opts.destination ?? 2,
    sync: typeof opts.destination !== "string",
    mkdir: true,
  });
  return pino(
    { level: opts.level ?? "info", name: opts.name, redact: { paths: REDACT_PATHS, censor: "[redacted]" } },
    dest,
  );
}
