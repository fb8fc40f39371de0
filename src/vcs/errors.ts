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

/**
 * The fix for an error the server answered, in the user's terms: an expired or refused
 * credential names the commands that replace it.
 */
export function withHint(err: MesaError, serviceUrl: string): MesaError {
  if (err.hint) return err;
  let hint: string | undefined;
  if (err.code === "UNAUTHORIZED")
    hint = /expired/i.test(err.message)
      ? "mint a new token with `mesa token create`, or give an API key (MESA_API_KEY, or `mesa auth set-key`), which mesa renews itself"
      : `check the key (MESA_API_KEY, MESA_ORGS or \`mesa auth set-key\`) and that MESA_SERVICE_URL (${serviceUrl}) is the server it belongs to`;
  else if (err.code === "FORBIDDEN")
    hint = "the key lacks the scope or repository for this; use a key that has it";
  else if (err.code === "NOT_FOUND" && /^repository \S+ not found$/.test(err.message))
    hint = "see `mesa repo list --all` for the repositories the key can see";
  if (!hint) return err;
  return new MesaError(err.code, err.message, { hint, details: err.details, cause: err.cause });
}

/** A server that cannot be reached: name the URL and the setting that points at it. */
export function unreachable(serviceUrl: string, err: unknown): MesaError {
  const code = (err as { code?: string })?.code ?? "";
  const why =
    code === "ECONNREFUSED" ? "connection refused" : code || ((err as Error)?.message ?? String(err));
  return new MesaError("NETWORK", `cannot reach the Mesa server at ${serviceUrl} (${why})`, {
    cause: err,
    hint: "start it (`mesa serve`, or `mesa quickstart` for a local one) or set MESA_SERVICE_URL (service-url in config.toml) to your server",
  });
}
