/**
 * REST errors: `{"error":{"code","message","details"?}}` (compat.md §6). Handlers throw
 * ApiError; the app's error handler turns anything else into a logged 500 that says no more.
 */
export class ApiError extends Error {
  readonly status: number;
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

export const badRequest = (message: string, details?: Record<string, unknown>) =>
  new ApiError(400, "BAD_REQUEST", message, details);
export const unauthorized = (message = "missing or invalid credentials") =>
  new ApiError(401, "UNAUTHORIZED", message);
export const forbidden = (message = "the credential does not allow this") =>
  new ApiError(403, "FORBIDDEN", message);
export const notFound = (message: string) => new ApiError(404, "NOT_FOUND", message);
export const conflict = (message: string, code = "CONFLICT", details?: Record<string, unknown>) =>
  new ApiError(409, code, message, details);

export function errorBody(code: string, message: string, details?: Record<string, unknown>) {
  return { error: details ? { code, message, details } : { code, message } };
}
