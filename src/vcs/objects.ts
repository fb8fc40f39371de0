/**
 * Git object model: hashing, commits (with Jujutsu's `change-id` header) and trees.
 * Pure functions over bytes; no I/O. Everything the client writes must pass `git fsck --strict`.
 */
import { createHash, randomBytes } from "node:crypto";
import { MesaError } from "../errors.js";

export type Oid = string; // 40 lowercase hex

export type ObjectType = "blob" | "tree" | "commit" | "tag";

export interface Signature {
  name: string;
  email: string;
  /** Seconds since the epoch. */
  timestamp: number;
  /** Offset as Git writes it, e.g. "+0000", "-0530". */
  tz: string;
}

export interface Commit {
  tree: Oid;
  parents: Oid[];
  author: Signature;
  committer: Signature;
  changeId?: string;
  /** Other headers (encoding, gpgsig, …) in order; multi-line values keep their newlines. */
  extraHeaders?: Array<[string, string]>;
  message: string;
}

export type TreeMode = "100644" | "100755" | "120000" | "40000" | "160000";

export interface TreeEntry {
  mode: TreeMode;
  name: string;
  oid: Oid;
}

/** The tree with no entries; every Git implementation knows its oid. */
export const EMPTY_TREE_OID: Oid = "4b825dc642cb6eb9a060e54bf8d69288fbee4904";
/** Jujutsu's change id of the empty root change. */
export const ROOT_CHANGE_ID = "z".repeat(32);

const OID_RE = /^[0-9a-f]{40}$/;
const CHANGE_ID_RE = /^[k-z]{32}$/;
const TZ_RE = /^[+-]\d{4}$/;

export function isOid(s: string): boolean {
  return OID_RE.test(s);
}

export function objectHeader(type: ObjectType, size: number): Buffer {
  return Buffer.from(`${type} ${size}\0`, "latin1");
}

export function hashObject(type: ObjectType, data: Uint8Array): Oid {
  return createHash("sha1").update(objectHeader(type, data.length)).update(data).digest("hex");
}

// ---- change ids -------------------------------------------------------------------------

/** jj writes change ids as "reverse hex": hex digit d becomes the letter 'z' - d. */
function reverseHex(hex: string): string {
  let out = "";
  for (const ch of hex) out += String.fromCharCode(0x7a - Number.parseInt(ch, 16));
  return out;
}

export function newChangeId(): string {
  return reverseHex(randomBytes(16).toString("hex"));
}

/** A stable change id for a commit that was pushed without a change-id header. */
export function changeIdFromOid(oid: Oid): string {
  if (!isOid(oid)) throw new MesaError("INVALID_ARGUMENT", `not a commit oid: '${oid}'`);
  return reverseHex(oid.slice(0, 32));
}

export function isChangeId(s: string): boolean {
  return CHANGE_ID_RE.test(s);
}

// ---- signatures -------------------------------------------------------------------------

export function formatSignature(s: Signature): string {
  if (/[<>\n\0]/.test(s.name) || /[<>\n\0]/.test(s.email)) {
    throw new MesaError(
      "INVALID_ARGUMENT",
      "author/committer name and email must not contain <, >, NUL or newlines",
    );
  }
  if (!Number.isSafeInteger(s.timestamp) || s.timestamp < 0) {
    throw new MesaError("INVALID_ARGUMENT", `invalid signature timestamp: ${s.timestamp}`);
  }
  if (!TZ_RE.test(s.tz)) throw new MesaError("INVALID_ARGUMENT", `invalid timezone offset '${s.tz}'`);
  return `${s.name.trim()} <${s.email.trim()}> ${s.timestamp} ${s.tz}`;
}

export function parseSignature(text: string): Signature {
  const m = /^(.*?) ?<([^<>]*)> (\d+) ([+-]\d{4})$/.exec(text);
  if (!m) throw new MesaError("CORRUPT_DATA", `malformed signature in commit: '${text.slice(0, 200)}'`);
  return { name: m[1]!, email: m[2]!, timestamp: Number(m[3]), tz: m[4]! };
}

/** A signature for "now" in UTC. */
export function signatureNow(name: string, email: string, now = Date.now()): Signature {
  return { name, email, timestamp: Math.floor(now / 1000), tz: "+0000" };
}

// ---- commits ----------------------------------------------------------------------------

function headerLine(key: string, value: string): string {
  if (
    !/^[a-z][a-z0-9-]*$/.test(key) ||
    ["tree", "parent", "author", "committer", "change-id"].includes(key)
  ) {
    throw new MesaError("INVALID_ARGUMENT", `invalid extra commit header '${key}'`);
  }
  // Continuation lines of a multi-line header start with one space.
  return `${key} ${value.split("\n").join("\n ")}\n`;
}

export function serializeCommit(c: Commit): Buffer {
  if (!isOid(c.tree)) throw new MesaError("INVALID_ARGUMENT", `invalid tree oid '${c.tree}'`);
  let out = `tree ${c.tree}\n`;
  for (const p of c.parents) {
    if (!isOid(p)) throw new MesaError("INVALID_ARGUMENT", `invalid parent oid '${p}'`);
    out += `parent ${p}\n`;
  }
  out += `author ${formatSignature(c.author)}\n`;
  out += `committer ${formatSignature(c.committer)}\n`;
  if (c.changeId !== undefined) {
    if (!isChangeId(c.changeId)) throw new MesaError("INVALID_ARGUMENT", `invalid change id '${c.changeId}'`);
    out += `change-id ${c.changeId}\n`;
  }
  for (const [k, v] of c.extraHeaders ?? []) out += headerLine(k, v);
  out += `\n${c.message}`;
  return Buffer.from(out, "utf8");
}

export function parseCommit(data: Uint8Array): Commit {
  const text = Buffer.from(data.buffer, data.byteOffset, data.byteLength).toString("utf8");
  const split = text.indexOf("\n\n");
  const head = split < 0 ? text.replace(/\n$/, "") : text.slice(0, split);
  const message = split < 0 ? "" : text.slice(split + 2);
  const headers: Array<[string, string]> = [];
  for (const line of head.split("\n")) {
    if (line.startsWith(" ") && headers.length > 0) {
      const last = headers[headers.length - 1]!;
      last[1] += `\n${line.slice(1)}`;
      continue;
    }
    const sp = line.indexOf(" ");
    if (sp <= 0) throw new MesaError("CORRUPT_DATA", `malformed commit header line '${line.slice(0, 200)}'`);
    headers.push([line.slice(0, sp), line.slice(sp + 1)]);
  }
  let tree: string | undefined;
  const parents: Oid[] = [];
  let author: Signature | undefined;
  let committer: Signature | undefined;
  let changeId: string | undefined;
  const extra: Array<[string, string]> = [];
  for (const [k, v] of headers) {
    if (k === "tree" && tree === undefined) tree = v;
    else if (k === "parent") parents.push(v);
    else if (k === "author" && !author) author = parseSignature(v);
    else if (k === "committer" && !committer) committer = parseSignature(v);
    else if (k === "change-id" && changeId === undefined) changeId = v;
    else extra.push([k, v]);
  }
  if (!tree || !isOid(tree) || !parents.every(isOid) || !author || !committer) {
    throw new MesaError("CORRUPT_DATA", "commit object lacks a valid tree, parent, author or committer");
  }
  const commit: Commit = { tree, parents, author, committer, message };
  if (changeId !== undefined && isChangeId(changeId)) commit.changeId = changeId;
  else if (changeId !== undefined) extra.unshift(["change-id", changeId]);
  if (extra.length > 0) commit.extraHeaders = extra;
  return commit;
}

// ---- trees ------------------------------------------------------------------------------

const MODES = new Set<string>(["100644", "100755", "120000", "40000", "160000"]);

export function isTreeMode(m: string): m is TreeMode {
  return MODES.has(m);
}

/** Git sorts tree entries by name bytes, comparing a directory as if its name ended in "/". */
export function compareTreeEntries(a: TreeEntry, b: TreeEntry): number {
  const ka = Buffer.from(a.mode === "40000" ? `${a.name}/` : a.name, "utf8");
  const kb = Buffer.from(b.mode === "40000" ? `${b.name}/` : b.name, "utf8");
  return Buffer.compare(ka, kb);
}

/** Names `git fsck --strict` accepts in a tree. */
export function validEntryName(name: string): boolean {
  if (name === "" || name === "." || name === ".." || name.includes("/") || name.includes("\0")) return false;
  return name.toLowerCase() !== ".git";
}

export function serializeTree(entries: TreeEntry[]): Buffer {
  const sorted = [...entries].sort(compareTreeEntries);
  const parts: Buffer[] = [];
  const seen = new Set<string>();
  for (const e of sorted) {
    if (!validEntryName(e.name))
      throw new MesaError("INVALID_ARGUMENT", `invalid tree entry name '${e.name}'`);
    if (!isTreeMode(e.mode)) throw new MesaError("INVALID_ARGUMENT", `invalid tree entry mode '${e.mode}'`);
    if (!isOid(e.oid)) throw new MesaError("INVALID_ARGUMENT", `invalid oid for '${e.name}'`);
    if (seen.has(e.name)) throw new MesaError("INVALID_ARGUMENT", `duplicate tree entry '${e.name}'`);
    seen.add(e.name);
    parts.push(Buffer.from(`${e.mode} ${e.name}\0`, "utf8"), Buffer.from(e.oid, "hex"));
  }
  return Buffer.concat(parts);
}

/** Old Git wrote a few non-canonical modes; read them as the canonical ones. */
function normalizeMode(raw: string): TreeMode | undefined {
  if (isTreeMode(raw)) return raw;
  if (raw === "040000") return "40000";
  if (/^100[0-7]{3}$/.test(raw))
    return (Number.parseInt(raw.slice(3), 8) & 0o100) !== 0 ? "100755" : "100644";
  return undefined;
}

export function parseTree(data: Uint8Array): TreeEntry[] {
  const buf = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  const out: TreeEntry[] = [];
  let pos = 0;
  while (pos < buf.length) {
    const sp = buf.indexOf(0x20, pos);
    const nul = sp < 0 ? -1 : buf.indexOf(0, sp + 1);
    if (sp < 0 || nul < 0 || nul + 21 > buf.length)
      throw new MesaError("CORRUPT_DATA", "truncated tree object");
    const mode = normalizeMode(buf.toString("latin1", pos, sp));
    if (!mode)
      throw new MesaError("CORRUPT_DATA", `unknown tree entry mode '${buf.toString("latin1", pos, sp)}'`);
    const name = buf.toString("utf8", sp + 1, nul);
    out.push({ mode, name, oid: buf.toString("hex", nul + 1, nul + 21) });
    pos = nul + 21;
  }
  return out;
}

/** "blob", "tree" or "commit" (submodule) for a tree entry mode. */
export function entryType(mode: TreeMode): "blob" | "tree" | "commit" {
  return mode === "40000" ? "tree" : mode === "160000" ? "commit" : "blob";
}
