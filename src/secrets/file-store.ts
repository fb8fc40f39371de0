import { readFileSync } from "node:fs";
import type { SecretBackendName } from "../config/types.js";
import { fileSignature, withFileLock, writeFileAtomic } from "./atomic.js";
import { parseEntries, type SecretEntries, serializeEntries } from "./format.js";

/** How one file-backed store turns its bytes into entries and back. */
export interface FileCodec {
  readonly backend: SecretBackendName;
  readonly path: string;
  decode(bytes: Uint8Array): Promise<SecretEntries>;
  encode(entries: SecretEntries, creating: boolean): Promise<Uint8Array | string>;
}

/**
 * A store kept in one file, read lazily and cached while the file is unchanged (so the
 * vault is decrypted once per process), updated under a lock with an atomic replace.
 * A file that does not decode is reported and left as it is.
 */
export class FileStore {
  private cached?: { signature: string; entries: SecretEntries };

  constructor(readonly codec: FileCodec) {}

  async read(): Promise<SecretEntries> {
    const signature = fileSignature(this.codec.path);
    if (signature === undefined) return new Map();
    if (this.cached?.signature === signature) return new Map(this.cached.entries);
    const entries = await this.codec.decode(readFileSync(this.codec.path));
    this.cached = { signature, entries };
    return new Map(entries);
  }

  /** Applies `change` to the current entries; writes only when it reports a change. */
  async update(change: (entries: SecretEntries) => boolean): Promise<boolean> {
    return withFileLock(this.codec.path, async () => {
      const creating = fileSignature(this.codec.path) === undefined;
      const entries = await this.read();
      if (!change(entries)) return false;
      writeFileAtomic(this.codec.path, await this.codec.encode(entries, creating));
      this.cached = { signature: fileSignature(this.codec.path)!, entries: new Map(entries) };
      return true;
    });
  }
}

export function plaintextCodec(path: string): FileCodec {
  return {
    backend: "plaintext-file",
    path,
    decode: async (bytes) => parseEntries(Buffer.from(bytes).toString("utf8"), path),
    encode: async (entries) => serializeEntries(entries),
  };
}
