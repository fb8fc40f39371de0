/**
 * The SDK's errors. REST and connection failures are an `ApiError` family carrying the HTTP
 * status and the server's error code; bad arguments are `InvalidOptionsError`; filesystem
 * calls throw `MesaFsError`, shaped like Node's own fs errors (`code`, `errno`, `syscall`,
 * `path`), so `err.code === "ENOENT"` works as with `node:fs`.
 */
import { constants } from "node:os";
import { isMesaError } from "../errors.js";
import type { ErrnoName } from "../workspace/fs-api.js";

/** Options the SDK cannot work with: an empty repo list, a ttl out of range, a bad mode, … */
export class InvalidOptionsError extends Error {
  readonly code = "INVALID_OPTIONS";
  constructor(message: string) {
    super(message);
    this.name = "InvalidOptionsError";
  }
}

/** The server answered with an error (or could not be reached: `ConnectionError`). */
export class ApiError extends Error {
  /** HTTP status; 0 when no answer came. */
  readonly status: number;
  /** The server's error code (e.g. "NOT_FOUND", "NOT_FAST_FORWARD"), else mesa's. */
  readonly code: string;
  readonly details?: Record<string, unknown>;
  constructor(status: number, code: string, message: string, details?: Record<string, unknown>) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.code = code;
    this.details = details;
  }
}

export class BadRequestError extends ApiError {
  override readonly name = "BadRequestError";
}
export class AuthenticationError extends ApiError {
  override readonly name = "AuthenticationError";
}
export class PermissionDeniedError extends ApiError {
  override readonly name = "PermissionDeniedError";
}
export class NotFoundError extends ApiError {
  override readonly name = "NotFoundError";
}
export class ConflictError extends ApiError {
  override readonly name = "ConflictError";
}
export class ServerError extends ApiError {
  override readonly name = "ServerError";
}
/** No answer: the network failed or the server timed out. */
export class ConnectionError extends ApiError {
  override readonly name = "ConnectionError";
}

const BY_STATUS: Array<[number, typeof ApiError]> = [
  [400, BadRequestError],
  [401, AuthenticationError],
  [403, PermissionDeniedError],
  [404, NotFoundError],
  [409, ConflictError],
];

const STATUS_OF_CODE: Partial<Record<string, number>> = {
  UNAUTHORIZED: 401,
  TOKEN_EXPIRED: 401,
  TOKEN_INVALID: 401,
  FORBIDDEN: 403,
  NOT_FOUND: 404,
  CONFLICT: 409,
};

export function apiError(status: number, code: string, message: string, details?: Record<string, unknown>) {
  if (status === 0) return new ConnectionError(0, code, message, details);
  if (status >= 500) return new ServerError(status, code, message, details);
  const Kind = BY_STATUS.find(([s]) => s === status)?.[1] ?? ApiError;
  return new Kind(status, code, message, details);
}

const USAGE = new Set(["USAGE", "INVALID_ARGUMENT", "INVALID_NAME", "INVALID_KEY", "CONFIG_INVALID"]);

/** mesa's internal errors as the SDK's: HTTP failures keep their status and the server's code. */
export function toSdkError(err: unknown): unknown {
  if (!isMesaError(err)) return err;
  const status = err.details?.status;
  const apiCode = err.details?.apiCode;
  if (typeof status === "number")
    return apiError(status, typeof apiCode === "string" ? apiCode : err.code, err.message, err.details);
  if (err.code === "NETWORK" || err.code === "TIMEOUT") return apiError(0, err.code, err.message);
  if (USAGE.has(err.code))
    return new InvalidOptionsError(err.hint ? `${err.message}: ${err.hint}` : err.message);
  const s = STATUS_OF_CODE[err.code];
  if (s !== undefined) return apiError(s, err.code, err.message, err.details);
  return err;
}

/** Runs `fn`, turning mesa's internal errors into the SDK's. */
export async function sdkCall<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    throw toSdkError(err);
  }
}

const DESCRIPTION: Partial<Record<string, string>> = {
  ENOENT: "no such file or directory",
  EEXIST: "file already exists",
  EISDIR: "illegal operation on a directory",
  ENOTDIR: "not a directory",
  ENOTEMPTY: "directory not empty",
  EROFS: "read-only file system",
  EACCES: "permission denied",
  EPERM: "operation not permitted",
  EINVAL: "invalid argument",
  EIO: "i/o error",
  ELOOP: "too many symbolic links encountered",
  EXDEV: "cross-device link not permitted",
  ENOTSUP: "operation not supported",
  ENAMETOOLONG: "name too long",
  ENOSPC: "no space left on device",
  EDQUOT: "disk quota exceeded",
  EBADF: "bad file descriptor",
  EBUSY: "resource busy or locked",
};

/** A filesystem call failed; the fields follow Node's `fs` errors. */
export class MesaFsError extends Error implements NodeJS.ErrnoException {
  readonly code: ErrnoName | "ENOTSUP" | "EACCES";
  readonly errno: number;
  readonly syscall: string;
  readonly path: string;
  constructor(code: MesaFsError["code"], syscall: string, path: string, detail?: string) {
    const what = DESCRIPTION[code] ?? code.toLowerCase();
    super(`${code}: ${what}, ${syscall} '${path}'${detail ? ` (${detail})` : ""}`);
    this.name = "MesaFsError";
    this.code = code;
    this.errno = -((constants.errno as Record<string, number>)[code] ?? constants.errno.EIO);
    this.syscall = syscall;
    this.path = path;
  }
}
