/**
 * Typed errors shared by every module. Each error carries a stable `code` that callers
 * and tests match on, an optional `hint` (the fix, shown after the message), and the
 * process exit code the CLI uses when the error reaches the top level.
 */
export type ErrorCode =
  // usage and configuration (exit 2)
  | "USAGE"
  | "CONFIG_INVALID"
  | "INVALID_NAME"
  | "INVALID_KEY"
  | "INVALID_ARGUMENT"
  // secrets
  | "NO_API_KEY"
  | "VAULT_PASSPHRASE"
  | "SECRET_STORE_CORRUPT"
  | "SECRET_STORE_UNAVAILABLE"
  // tokens
  | "TOKEN_INVALID"
  | "TOKEN_EXPIRED"
  // backend / transport
  | "UNAUTHORIZED"
  | "FORBIDDEN"
  | "NOT_FOUND"
  | "CONFLICT"
  | "PROTOCOL"
  | "CORRUPT_DATA"
  | "NETWORK"
  | "TIMEOUT"
  | "SERVER"
  | "ABORTED"
  // local runtime
  | "DAEMON"
  | "FUSE"
  | "INTERNAL";

const USAGE_CODES = new Set<ErrorCode>([
  "USAGE",
  "CONFIG_INVALID",
  "INVALID_NAME",
  "INVALID_KEY",
  "INVALID_ARGUMENT",
]);

export class MesaError extends Error {
  readonly code: ErrorCode;
  readonly hint?: string;
  readonly details?: Record<string, unknown>;

  constructor(
    code: ErrorCode,
    message: string,
    opts: { hint?: string; details?: Record<string, unknown>; cause?: unknown } = {},
  ) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = "MesaError";
    this.code = code;
    this.hint = opts.hint;
    this.details = opts.details;
  }

  /** 2 for usage/config problems, 1 for runtime failures (SPEC §4). */
  get exitCode(): number {
    return USAGE_CODES.has(this.code) ? 2 : 1;
  }
}

export function isMesaError(err: unknown, code?: ErrorCode): err is MesaError {
  return err instanceof MesaError && (code === undefined || err.code === code);
}

/** One line for stderr: the sentence, then the fix when there is one. */
export function formatError(err: unknown): string {
  if (err instanceof MesaError) return err.hint ? `${err.message}: ${err.hint}` : err.message;
  if (err instanceof Error) return err.message;
  return String(err);
}
