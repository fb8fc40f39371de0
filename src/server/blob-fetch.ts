/**
 * Fetches of blobs by id, answered in-process. A mount reading files lazily sends one small
 * fetch per file it has to wait for (`want <blob>` … `done`), and `git upload-pack` costs
 * about 10 ms of CPU per request (it and its pack-objects start, read the config, the refs
 * and the pack indexes), which a search competing for the same cores pays hundreds of times.
 * Such a request is answered here from a long-lived `git cat-file --batch` per repository
 * (the objects, as git reads them) with a pack of whole objects, exactly the response
 * upload-pack gives: a `packfile` section, side-band 1. Anything else (haves, depth, a
 * non-blob want, a missing object, another capability) goes to upload-pack as before.
 */
import { type ChildProcessWithoutNullStreams, spawn } from "node:child_process";
import { writePack } from "../vcs/pack.js";
import { FLUSH, pkt } from "../vcs/pktline.js";

/** Wants answered in-process at most; bigger requests (a clone's) go to upload-pack. */
const MAX_WANTS = 1024;
/** Bytes of objects answered in-process at most (they are held in memory and deflated here). */
const MAX_BYTES = 16 << 20;
/** A repository's reader quits after this long without requests. */
const READER_IDLE_MS = 30_000;
/** Side-band data per pkt-line (65520 less the length and the band byte). */
const SIDEBAND_CHUNK = 65515;

/** Arguments that change nothing for whole blobs asked for by id. */
const NEUTRAL_ARGS = new Set(["no-progress", "ofs-delta", "thin-pack", "include-tag", "done"]);

/**
 * The blob ids of a protocol v2 `fetch` request that only asks for objects by id (no haves,
 * no depth, `done`), or undefined. A filter is allowed: objects asked for by id are sent
 * whatever it says (upload-pack filters only what it finds by walking).
 */
export function parseBlobFetch(body: Buffer): string[] | undefined {
  const lines: Array<string | "delim" | "flush"> = [];
  for (let p = 0; p < body.length; ) {
    if (p + 4 > body.length) return undefined;
    const len = Number.parseInt(body.toString("latin1", p, p + 4), 16);
    if (!Number.isInteger(len)) return undefined;
    if (len === 0 || len === 1) {
      lines.push(len === 0 ? "flush" : "delim");
      p += 4;
      continue;
    }
    if (len < 4 || p + len > body.length) return undefined;
    lines.push(body.toString("utf8", p + 4, p + len).replace(/\n$/, ""));
    p += len;
  }
  if (lines[0] !== "command=fetch" || lines.at(-1) !== "flush") return undefined;
  const delim = lines.indexOf("delim");
  if (delim < 0) return undefined;
  for (const cap of lines.slice(1, delim))
    if (cap === "delim" || cap === "flush" || !(cap.startsWith("agent=") || cap === "object-format=sha1"))
      return undefined;
  const wants: string[] = [];
  let done = false;
  for (const arg of lines.slice(delim + 1, -1)) {
    if (arg === "delim" || arg === "flush") return undefined;
    const want = /^want ([0-9a-f]{40})$/.exec(arg);
    if (want) wants.push(want[1]!);
    else if (arg.startsWith("filter ")) continue;
    else if (NEUTRAL_ARGS.has(arg)) done ||= arg === "done";
    else return undefined;
  }
  return done && wants.length > 0 && wants.length <= MAX_WANTS ? wants : undefined;
}

interface Pending {
  oid: string;
  resolve: (o: { type: string; data: Buffer } | undefined) => void;
  reject: (err: Error) => void;
}

/** One `git cat-file --batch` over a repository; requests are answered in order. */
class ObjectReader {
  private child?: ChildProcessWithoutNullStreams;
  private readonly pending: Pending[] = [];
  private chunks: Buffer[] = [];
  private buffered = 0;
  /** Bytes the first pending answer needs (a large object arrives in many chunks). */
  private need = 0;
  private idle?: NodeJS.Timeout;

  constructor(
    private readonly dir: string,
    private readonly env: NodeJS.ProcessEnv,
  ) {}

  read(oid: string): Promise<{ type: string; data: Buffer } | undefined> {
    const child = this.start();
    clearTimeout(this.idle);
    this.idle = setTimeout(() => this.close(), READER_IDLE_MS);
    this.idle.unref();
    return new Promise((resolve, reject) => {
      this.pending.push({ oid, resolve, reject });
      child.stdin.write(`${oid}\n`);
    });
  }

  close(): void {
    clearTimeout(this.idle);
    this.child?.kill();
    this.child = undefined;
  }

  private start(): ChildProcessWithoutNullStreams {
    if (this.child) return this.child;
    const child = spawn("git", ["cat-file", "--batch"], {
      env: { ...this.env, GIT_DIR: this.dir },
      stdio: ["pipe", "pipe", "pipe"],
    });
    this.child = child;
    this.chunks = [];
    this.buffered = 0;
    this.need = 0;
    child.stdout.on("data", (b: Buffer) => {
      this.chunks.push(b);
      this.buffered += b.length;
      if (this.buffered >= this.need) this.answer();
    });
    child.stderr.resume();
    child.stdin.on("error", () => undefined);
    const gone = (why: string) => {
      if (this.child === child) this.child = undefined;
      for (const p of this.pending.splice(0)) p.reject(new Error(`git cat-file ${why}`));
    };
    child.on("error", (e) => gone(`failed: ${e.message}`));
    child.on("close", (code) => gone(`exited (${code})`));
    return child;
  }

  /** Settles the requests whose answers are complete: `<oid> <type> <size>\n<data>\n` or `<oid> missing\n`. */
  private answer(): void {
    while (this.pending.length > 0) {
      const buf = this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks, this.buffered);
      this.chunks = [buf];
      const eol = buf.indexOf(10);
      if (eol < 0) return;
      const [oid, type, size] = buf.toString("latin1", 0, eol).split(" ");
      const p = this.pending[0]!;
      let used = eol + 1;
      let result: { type: string; data: Buffer } | undefined;
      if (oid === p.oid && type && size && /^\d+$/.test(size)) {
        const n = Number(size);
        if (buf.length < used + n + 1) {
          this.need = used + n + 1;
          return;
        }
        result = { type, data: Buffer.from(buf.subarray(used, used + n)) };
        used += n + 1;
      } else if (oid !== p.oid) {
        this.close();
        return;
      }
      this.pending.shift();
      const rest = buf.subarray(used);
      this.chunks = rest.length > 0 ? [rest] : [];
      this.buffered = rest.length;
      this.need = 0;
      p.resolve(result);
    }
  }
}

/** Readers by repository directory, closed together when the server stops. */
export class BlobFetches {
  private readonly readers = new Map<string, ObjectReader>();

  constructor(private readonly env: NodeJS.ProcessEnv) {}

  /**
   * The response body for `wants` of the repository at `dir` (a pack of the blobs in a
   * `packfile` section), or undefined when one is not a blob there or they are too big.
   */
  async respond(dir: string, wants: string[]): Promise<Buffer | undefined> {
    let reader = this.readers.get(dir);
    if (!reader) {
      reader = new ObjectReader(dir, this.env);
      this.readers.set(dir, reader);
    }
    const unique = [...new Set(wants)];
    const objects = await Promise.all(unique.map((oid) => (reader as ObjectReader).read(oid)));
    let bytes = 0;
    for (const o of objects) {
      if (o?.type !== "blob") return undefined;
      bytes += o.data.length;
    }
    if (bytes > MAX_BYTES) return undefined;
    const pack = writePack(
      objects.map((o) => ({ type: "blob" as const, data: (o as { data: Buffer }).data })),
    );
    const parts = [pkt("packfile\n")];
    for (let off = 0; off < pack.length; off += SIDEBAND_CHUNK)
      parts.push(pkt(Buffer.concat([Buffer.of(1), pack.subarray(off, off + SIDEBAND_CHUNK)])));
    parts.push(FLUSH);
    return Buffer.concat(parts);
  }

  close(): void {
    for (const r of this.readers.values()) r.close();
    this.readers.clear();
  }
}
