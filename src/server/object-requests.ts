/**
 * Fetches of blobs by id, answered in-process. A mount reading files lazily sends one small
 * fetch per file it has to wait for (`want <blob>` … `done`), and `git upload-pack` costs
 * about 10 ms of CPU per request (it and its pack-objects start, read the config, the refs
 * and the pack indexes), which a search competing for the same cores pays hundreds of times.
 * Such a request is answered here from a long-lived `git cat-file --batch` per repository
 * (the objects, as git reads them) with a pack of whole objects, as upload-pack answers it:
 * a `packfile` section, side-band 1. Anything else (haves, depth, a non-blob want, a missing
 * object, another capability) goes to upload-pack as before. (`object-info` was tried here
 * too: 40,000 sizes took as long as upload-pack's own lookups.)
 */
import { type ChildProcessWithoutNullStreams, spawn } from "node:child_process";
import { writePack } from "../vcs/pack.js";
import { FLUSH, type Packet, pkt, pktText, splitPackets } from "../vcs/pktline.js";

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
  const lines = commandLines(body, "fetch");
  if (!lines) return undefined;
  const wants: string[] = [];
  let done = false;
  for (const arg of lines) {
    const want = /^want ([0-9a-f]{40})$/.exec(arg);
    if (want) wants.push(want[1] as string);
    else if (arg.startsWith("filter ")) continue;
    else if (NEUTRAL_ARGS.has(arg)) done ||= arg === "done";
    else return undefined;
  }
  return done && wants.length > 0 && wants.length <= MAX_WANTS ? wants : undefined;
}

/**
 * The argument lines of a protocol v2 request for `command` whose capabilities are only the
 * agent and SHA-1, or undefined.
 */
function commandLines(body: Buffer, command: string): string[] | undefined {
  let packets: Packet[];
  try {
    packets = splitPackets(body);
  } catch {
    return undefined;
  }
  const delim = packets.findIndex((p) => p.kind === "delim");
  if (delim < 0 || packets.at(-1)?.kind !== "flush") return undefined;
  const caps = textOf(packets.slice(0, delim));
  const args = textOf(packets.slice(delim + 1, -1));
  if (caps?.[0] !== `command=${command}` || !args) return undefined;
  return caps.slice(1).every((c) => c.startsWith("agent=") || c === "object-format=sha1") ? args : undefined;
}

/** The packets' text, or undefined when one of them is not a data line. */
function textOf(packets: Packet[]): string[] | undefined {
  const out: string[] = [];
  for (const p of packets) {
    if (p.kind !== "data") return undefined;
    out.push(pktText(p.data));
  }
  return out;
}

interface Found {
  type: string;
  data: Buffer;
}

interface Pending {
  oid: string;
  /** Bytes its request may still take (shared by the request's objects). */
  budget: { left: number };
  resolve: (o: Found | undefined) => void;
  reject: (err: Error) => void;
}

/** One `git cat-file --batch` over a repository; answers come in order. */
class ObjectReader {
  private child?: ChildProcessWithoutNullStreams;
  /** Requests written and not answered yet: `pending[next]` is answered first. */
  private pending: Pending[] = [];
  private next = 0;
  private chunks: Buffer[] = [];
  private buffered = 0;
  /** Bytes the first pending answer needs (a large object arrives in many chunks). */
  private need = 0;
  private idle?: NodeJS.Timeout;

  constructor(
    private readonly dir: string,
    private readonly env: NodeJS.ProcessEnv,
  ) {}

  /**
   * Each object's type and content, undefined when missing. Objects larger than `maxBytes`
   * in all are not held: the reader stops (its process is killed, every request it had
   * fails) as soon as a header says so.
   */
  read(oids: string[], maxBytes: number): Promise<Array<Found | undefined>> {
    const child = this.start();
    clearTimeout(this.idle);
    this.idle = setTimeout(() => this.close(), READER_IDLE_MS);
    this.idle.unref();
    const budget = { left: maxBytes };
    const answers = oids.map(
      (oid) =>
        new Promise<Found | undefined>((resolve, reject) =>
          this.pending.push({ oid, budget, resolve, reject }),
        ),
    );
    child.stdin.write(oids.map((o) => `${o}\n`).join(""));
    return Promise.all(answers);
  }

  /** Stops the process; what was asked of it fails (its requests go to upload-pack). */
  close(): void {
    clearTimeout(this.idle);
    const child = this.child;
    this.child = undefined;
    child?.kill();
    this.fail("stopped");
  }

  private fail(why: string): void {
    const waiting = this.pending.slice(this.next);
    this.pending = [];
    this.next = 0;
    this.chunks = [];
    this.buffered = 0;
    this.need = 0;
    for (const p of waiting) p.reject(new Error(`git cat-file ${why}`));
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
      if (this.child !== child) return; // a process already stopped
      this.chunks.push(b);
      this.buffered += b.length;
      if (this.buffered >= this.need) this.answer();
    });
    child.stderr.resume();
    child.stdin.on("error", () => undefined);
    const gone = (why: string) => {
      if (this.child !== child) return;
      this.child = undefined;
      this.fail(why);
    };
    child.on("error", (e) => gone(`failed: ${e.message}`));
    child.on("close", (code) => gone(`exited (${code})`));
    return child;
  }

  /** Settles the requests whose answers are complete: `<oid> <type> <size>\n<data>\n` or `<oid> missing\n`. */
  private answer(): void {
    while (this.next < this.pending.length) {
      const buf =
        this.chunks.length === 1 ? (this.chunks[0] as Buffer) : Buffer.concat(this.chunks, this.buffered);
      this.chunks = [buf];
      const eol = buf.indexOf(10);
      if (eol < 0) return;
      const [oid, type, size] = buf.toString("latin1", 0, eol).split(" ");
      const p = this.pending[this.next] as Pending;
      if (oid !== p.oid) {
        this.close();
        return;
      }
      let used = eol + 1;
      let found: Found | undefined;
      if (type && size && /^\d+$/.test(size)) {
        const n = Number(size);
        if (n > p.budget.left) {
          this.close();
          return;
        }
        if (buf.length < used + n + 1) {
          this.need = used + n + 1;
          return;
        }
        found = { type, data: Buffer.from(buf.subarray(used, used + n)) };
        used += n + 1;
      }
      if (found) p.budget.left -= found.data.length;
      if (++this.next === this.pending.length) {
        this.pending = [];
        this.next = 0;
      }
      const rest = buf.subarray(used);
      this.chunks = rest.length > 0 ? [rest] : [];
      this.buffered = rest.length;
      this.need = 0;
      p.resolve(found);
    }
  }
}

/** Readers by repository directory, closed together when the server stops. */
export class ObjectRequests {
  private readonly readers = new Map<string, ObjectReader>();

  constructor(private readonly env: NodeJS.ProcessEnv) {}

  /**
   * The response body for `wants` of the repository at `dir` (a pack of the blobs in a
   * `packfile` section), or undefined when one is not a blob there or they are too big.
   */
  async fetch(dir: string, wants: string[]): Promise<Buffer | undefined> {
    let reader = this.readers.get(dir);
    if (!reader) {
      reader = new ObjectReader(dir, this.env);
      this.readers.set(dir, reader);
    }
    const objects = await reader.read([...new Set(wants)], MAX_BYTES);
    if (objects.some((o) => o?.type !== "blob")) return undefined;
    const pack = writePack(objects.map((o) => ({ type: "blob" as const, data: (o as Found).data })));
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
