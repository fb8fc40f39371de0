import { readFileSync } from "node:fs";
import { writeFileAtomic } from "../atomic-file.js";
import type { SecretBackendName } from "../config/types.js";
import { fileSignature, withFileLock } from "./atomic.js";
import { parseEntries, type SecretEntries, serializeEntries } from "./format.js";

/** How one file-backed store turns its bytes into entries and back. */
export interface FileCodec {
  readonly backend: SecretBackendName;
  readonly path: string;
  decode(bytes: Uint8Array): Promise<SecretEntries>;
  /**
   * Identity of what may read the cached entries (the path, plus the passphrase for the
   * vault), or undefined when that is not known yet: then the file is decoded.
   */
  cacheKey(): string | undefined;
  encode(entries: SecretEntries, creating: boolean): Promise<Uint8Array | string>;
}

/**
 * A store kept in one file, read lazily and cached while the file is unchanged (so the
 * vault is decrypted once per process), updated under a lock with an atomic replace.
 * A file that does not decode is reported and left as it is.
 */
/** Decoded files by cache key, shared by every store of this process. */
const decoded = new Map<string, { signature: string; entries: SecretEntries }>();

export class FileStore {
  constructor(readonly codec: FileCodec) {}

  private remember(signature: string, entries: SecretEntries): void {
    const key = this.codec.cacheKey();
    if (key !== undefined) decoded.set(key, { signature, entries: new Map(entries) });
  }

  async read(): Promise<SecretEntries> {
    const signature = fileSignature(this.codec.path);
    if (signature === undefined) return new Map();
    const key = this.codec.cacheKey();
    const hit = key === undefined ? undefined : decoded.get(key);
    if (hit?.signature === signature) return new Map(hit.entries);
    const entries = await this.codec.decode(readFileSync(this.codec.path));
    this.remember(signature, entries);
    return new Map(entries);
  }

  /** Applies `change` to the current entries; writes only when it reports a change. */
  async update(change: (entries: SecretEntries) => boolean): Promise<boolean> {
    return withFileLock(this.codec.path, async () => {
      const creating = fileSignature(this.codec.path) === undefined;
      const entries = await this.read();
      if (!change(entries)) return false;
      // Secret files: 0600 in a 0700 directory, fsync-ed so a crash never leaves a torn one.
      await writeFileAtomic(this.codec.path, await this.codec.encode(entries, creating), {
        mode: 0o600,
        dirMode: 0o700,
        durable: true,
      });
      this.remember(fileSignature(this.codec.path)!, entries);
      return true;
    });
  }
}

export function plaintextCodec(path: string): FileCodec {
  return {
    backend: "plaintext-file",
    path,
    decode: async (bytes) => parseEntries(Buffer.from(bytes).toString("utf8"), path),
    cacheKey: () => path,
    encode: async (entries) => serializeEntries(entries),
  };
}
