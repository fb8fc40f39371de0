import { randomBytes } from "node:crypto";
import { AsyncEntry } from "@napi-rs/keyring";
import { MesaError } from "../errors.js";
import { parseScopeName } from "./scope.js";

/** Keychain service name; each scope is an account (`global`, `orgs/O`, …). */
export const KEYCHAIN_SERVICE = "mesa";
/** Keyrings cannot be enumerated portably, so the stored scope names are kept in one entry. */
const INDEX_ACCOUNT = "index";
/** Calls to the keychain must answer within this time; a hung Secret Service is unavailable. */
const CALL_TIMEOUT_MS = 5_000;

// On Linux, pin the Secret Service: the kernel-keyring fallback forgets keys at logout/reboot.
const OPTIONS = { linux: { store: "secret-service" as const } };

function unavailable(err: unknown): MesaError {
  const why = err instanceof Error ? err.message : String(err);
  return new MesaError("SECRET_STORE_UNAVAILABLE", `the OS keychain is not reachable (${why})`, {
    hint: 'start a Secret Service (e.g. gnome-keyring) or set [secrets] backend = "plaintext-file" or "encrypted-file"',
    cause: err,
  });
}

async function call<T>(what: (signal: AbortSignal) => Promise<T>, timeoutMs = CALL_TIMEOUT_MS): Promise<T> {
  const ctl = new AbortController();
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      ctl.abort();
      reject(new Error(`no answer within ${timeoutMs} ms`));
    }, timeoutMs);
  });
  try {
    return await Promise.race([what(ctl.signal), timeout]);
  } catch (err) {
    throw unavailable(err);
  } finally {
    clearTimeout(timer);
  }
}

const entry = (account: string) => new AsyncEntry(KEYCHAIN_SERVICE, account, OPTIONS);

/** True when a set/get/delete round trip works within `timeoutMs`. */
export async function probeKeychain(timeoutMs = 3_000): Promise<boolean> {
  const account = `probe-${process.pid}-${randomBytes(4).toString("hex")}`;
  const value = randomBytes(12).toString("hex");
  try {
    const e = entry(account);
    await call((s) => e.setPassword(value, s), timeoutMs);
    const back = await call((s) => e.getPassword(s), timeoutMs);
    await call((s) => e.deleteCredential(s), timeoutMs);
    return back === value;
  } catch {
    return false;
  }
}

export class KeychainStore {
  readonly location = `OS keychain (Secret Service), service "${KEYCHAIN_SERVICE}"`;

  async get(name: string): Promise<string | undefined> {
    const e = entry(name);
    return (await call((s) => e.getPassword(s))) ?? undefined;
  }

  async set(name: string, key: string): Promise<void> {
    const e = entry(name);
    await call((s) => e.setPassword(key, s));
    const names = await this.names();
    if (!names.includes(name)) await this.writeIndex([...names, name]);
  }

  async remove(name: string): Promise<boolean> {
    const e = entry(name);
    const existed = await call((s) => e.deleteCredential(s));
    const names = await this.names();
    if (names.includes(name)) await this.writeIndex(names.filter((n) => n !== name));
    return existed;
  }

  /** Stored scope names, from the index entry. */
  async names(): Promise<string[]> {
    const e = entry(INDEX_ACCOUNT);
    const text = await call((s) => e.getPassword(s));
    if (text === null) return [];
    let names: unknown;
    try {
      names = JSON.parse(text);
    } catch {
      names = undefined;
    }
    if (!Array.isArray(names) || !names.every((n) => typeof n === "string" && parseScopeName(n)))
      throw new MesaError(
        "SECRET_STORE_CORRUPT",
        `the keychain entry "${INDEX_ACCOUNT}" of service "${KEYCHAIN_SERVICE}" is damaged`,
        {
          hint: `remove it (secret-tool clear service ${KEYCHAIN_SERVICE} username ${INDEX_ACCOUNT}) and set the keys again`,
        },
      );
    return names as string[];
  }

  private async writeIndex(names: string[]): Promise<void> {
    const e = entry(INDEX_ACCOUNT);
    if (names.length === 0) await call((s) => e.deleteCredential(s));
    else await call((s) => e.setPassword(JSON.stringify([...names].sort()), s));
  }
}
