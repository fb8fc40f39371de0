import { createHash } from "node:crypto";
import { MesaError } from "../errors.js";
import type { FileCodec } from "./file-store.js";
import { parseEntries, serializeEntries } from "./format.js";
import { promptHidden, terminalAvailable } from "./prompt.js";

/** Where the vault's passphrase comes from: MESA_VAULT_PASSPHRASE, else a terminal prompt. */
export interface PassphraseSource {
  env?: string;
  nonInteractive: boolean;
}

export function passphraseAvailable(src: PassphraseSource): boolean {
  return src.env !== undefined || (!src.nonInteractive && terminalAvailable());
}

/** Passphrases typed at the prompt in this process, by vault path: ask once. */
const prompted = new Map<string, string>();

/**
 * The passphrase typed at this process's prompt for the vault at `path`, if any: `mesa mount -d`
 * hands it to the daemon it starts (through a pipe), which has no terminal to ask on.
 */
export function promptedPassphrase(path: string): string | undefined {
  return prompted.get(path);
}

async function passphraseFor(path: string, src: PassphraseSource, creating: boolean): Promise<string> {
  if (src.env !== undefined) return src.env;
  const cached = prompted.get(path);
  if (cached !== undefined) return cached;
  if (src.nonInteractive || !terminalAvailable())
    throw new MesaError("VAULT_PASSPHRASE", `the encrypted vault ${path} needs a passphrase`, {
      hint: "set MESA_VAULT_PASSPHRASE or run mesa in a terminal",
    });
  const pass = await promptHidden(
    creating ? "New passphrase for the mesa vault: " : "Passphrase for the mesa vault: ",
  );
  if (pass.length === 0) throw new MesaError("VAULT_PASSPHRASE", "the vault passphrase is empty");
  if (creating && (await promptHidden("Repeat the passphrase: ")) !== pass)
    throw new MesaError("VAULT_PASSPHRASE", "the passphrases do not match; nothing was written");
  prompted.set(path, pass);
  return pass;
}

/** Loaded when a vault is used: most commands never need it (it costs a start ~80 ms). */
const age = () => import("age-encryption");

/**
 * The encrypted-file backend: the same TOML as the plaintext file, encrypted with age
 * to an scrypt passphrase recipient, so `age -d` with the passphrase opens it too.
 */
export function vaultCodec(path: string, src: PassphraseSource): FileCodec {
  return {
    backend: "encrypted-file",
    path,
    async decode(bytes) {
      const pass = await passphraseFor(path, src, false);
      const d = new (await age()).Decrypter();
      d.addPassphrase(pass);
      let text: string;
      try {
        text = await d.decrypt(bytes, "text");
      } catch (err) {
        const msg = err instanceof Error ? err.message : String(err);
        // age reports a passphrase that does not unwrap the file key this way.
        if (/no identity matched/.test(msg)) {
          prompted.delete(path);
          throw new MesaError("VAULT_PASSPHRASE", `wrong passphrase for the encrypted vault ${path}`, {
            hint: "check MESA_VAULT_PASSPHRASE; the vault was not changed",
          });
        }
        throw new MesaError("SECRET_STORE_CORRUPT", `the encrypted vault ${path} is damaged (${msg})`, {
          hint: "restore it from a backup or remove it and set the keys again; mesa will not overwrite it",
        });
      }
      return parseEntries(text, path);
    },
    cacheKey() {
      const pass = src.env ?? prompted.get(path);
      if (pass === undefined) return undefined;
      return `${path}\0${createHash("sha256").update(pass).digest("hex")}`;
    },
    async encode(entries, creating) {
      const e = new (await age()).Encrypter();
      e.setPassphrase(await passphraseFor(path, src, creating));
      return e.encrypt(serializeEntries(entries));
    },
  };
}
