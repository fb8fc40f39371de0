/** Blob ids and content verification: an oid is the hash of "blob <len>\0" + content. */
import { createHash, type Hash } from "node:crypto";
import { MesaError } from "../errors.js";

const OID_RE = /^(?:[0-9a-f]{40}|[0-9a-f]{64})$/;

export function assertOid(oid: string): void {
  if (typeof oid !== "string" || !OID_RE.test(oid))
    throw new MesaError("INVALID_ARGUMENT", `not a blob id: '${String(oid).slice(0, 80)}'`);
}

/** A hash primed with the blob header, to stream content into. */
export function blobHash(oid: string, size: number): Hash {
  const h = createHash(oid.length === 64 ? "sha256" : "sha1");
  h.update(`blob ${size}\0`, "latin1");
  return h;
}

/** SHA-1 for 40-hex ids, SHA-256 for 64-hex ids (Git's sha256 object format). */
export function blobOid(data: Uint8Array, hexLength = 40): string {
  const h = createHash(hexLength === 64 ? "sha256" : "sha1");
  h.update(`blob ${data.length}\0`, "latin1");
  h.update(data);
  return h.digest("hex");
}

export function blobMatches(oid: string, data: Uint8Array): boolean {
  return blobOid(data, oid.length) === oid;
}
