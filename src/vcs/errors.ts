import { type ErrorCode, MesaError } from "../errors.js";

/** Maps an HTTP status from the backend to the typed error every client layer throws. */
export function errorFromStatus(
  status: number,
  message: string,
  details?: Record<string, unknown>,
): MesaError {
  let code: ErrorCode;
  if (status === 401) code = "UNAUTHORIZED";
  else if (status === 403) code = "FORBIDDEN";
  else if (status === 404) code = "NOT_FOUND";
  else if (status === 409) code = "CONFLICT";
  else if (status === 408 || status === 504) code = "TIMEOUT";
  else if (status >= 500) code = "SERVER";
  else code = "PROTOCOL";
  return new MesaError(code, message, { details: { status, ...details } });
}

/** Errors worth retrying: the request may succeed later without any change on our side. */
export function isRetryable(err: unknown): boolean {
  return (
    err instanceof MesaError && (err.code === "NETWORK" || err.code === "TIMEOUT" || err.code === "SERVER")
  );
}
