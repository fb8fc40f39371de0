/**
 * Git pkt-line framing (gitprotocol-common): 4 hex digits of length, then the payload.
 * "0000" flush, "0001" delimiter (v2), "0002" response end (v2).
 */
import { MesaError } from "../errors.js";

export const FLUSH = Buffer.from("0000");
export const DELIM = Buffer.from("0001");
const MAX_PKT = 65520;

export function pkt(line: string | Uint8Array): Buffer {
  const body = typeof line === "string" ? Buffer.from(line, "utf8") : Buffer.from(line);
  if (body.length + 4 > MAX_PKT) throw new MesaError("INTERNAL", "pkt-line payload too long");
  return Buffer.concat([Buffer.from((body.length + 4).toString(16).padStart(4, "0"), "latin1"), body]);
}

/** Many text lines as pkt-lines, in one buffer (an object-info request has 20,000). */
export function pktLines(lines: string[]): Buffer {
  const parts: string[] = new Array(lines.length);
  for (let i = 0; i < lines.length; i++) {
    const len = Buffer.byteLength(lines[i]!) + 4;
    if (len > MAX_PKT) throw new MesaError("INTERNAL", "pkt-line payload too long");
    parts[i] = len.toString(16).padStart(4, "0") + lines[i];
  }
  return Buffer.from(parts.join(""), "utf8");
}

export type Packet =
  | { kind: "data"; data: Buffer }
  | { kind: "flush" }
  | { kind: "delim" }
  | { kind: "end" }
  | { kind: "eof" };

/**
 * Reads packets from a chunked byte stream (an HTTP response body) without buffering the
 * whole response: only the current packet and the unread tail of the current chunk are held.
 */
export class PktReader {
  private buf: Buffer = Buffer.alloc(0);
  private readonly it: AsyncIterator<Uint8Array>;
  private done = false;

  constructor(source: AsyncIterable<Uint8Array>) {
    this.it = source[Symbol.asyncIterator]();
  }

  private async fill(n: number): Promise<boolean> {
    while (this.buf.length < n && !this.done) {
      const r = await this.it.next();
      if (r.done) this.done = true;
      // Each chunk is a fresh buffer of the transport's (never reused): viewed, not copied; a
      // pack stream would otherwise leave a dead copy of every 64 KB read until a collection.
      else
        this.buf =
          this.buf.length === 0
            ? Buffer.from(r.value.buffer, r.value.byteOffset, r.value.byteLength)
            : Buffer.concat([this.buf, r.value]);
    }
    return this.buf.length >= n;
  }

  async read(): Promise<Packet> {
    if (!(await this.fill(4))) {
      if (this.buf.length === 0) return { kind: "eof" };
      throw new MesaError("CORRUPT_DATA", "truncated server response (ended inside a pkt-line header)");
    }
    const hex = this.buf.toString("latin1", 0, 4);
    if (!/^[0-9a-f]{4}$/i.test(hex)) {
      throw new MesaError(
        "CORRUPT_DATA",
        `corrupt server response: bad pkt-line header: ${JSON.stringify(hex)}`,
      );
    }
    const len = Number.parseInt(hex, 16);
    if (len < 4) {
      this.buf = this.buf.subarray(4);
      if (len === 0) return { kind: "flush" };
      if (len === 1) return { kind: "delim" };
      if (len === 2) return { kind: "end" };
      throw new MesaError("CORRUPT_DATA", `corrupt server response: invalid pkt-line length ${len}`);
    }
    if (!(await this.fill(len)))
      throw new MesaError("CORRUPT_DATA", "truncated server response (ended inside a pkt-line)");
    const data = this.buf.subarray(4, len);
    this.buf = this.buf.subarray(len);
    return { kind: "data", data };
  }

  /** Reads a data line as text without its trailing newline; surfaces "ERR" lines as errors. */
  async readLine(): Promise<string | Packet> {
    const p = await this.read();
    if (p.kind !== "data") return p;
    const text = pktText(p.data);
    if (text.startsWith("ERR ")) throw serverError(text.slice(4));
    return text;
  }

  /**
   * Everything after the packets read so far, at once (a long response parsed in one pass);
   * more than `max` bytes is CORRUPT_DATA.
   */
  async rest(max: number): Promise<Buffer> {
    const parts: Uint8Array[] = [this.buf];
    let bytes = this.buf.length;
    while (!this.done) {
      const r = await this.it.next();
      if (r.done) this.done = true;
      else {
        parts.push(r.value);
        bytes += r.value.length;
        if (bytes > max) throw new MesaError("CORRUPT_DATA", `server response longer than ${max} bytes`);
      }
    }
    this.buf = Buffer.alloc(0);
    return Buffer.concat(parts);
  }

  /** Releases the underlying stream when we stop reading early. */
  async close(): Promise<void> {
    if (!this.done) {
      this.done = true;
      await this.it.return?.();
    }
  }
}

/** A data packet as text, without its trailing newline. */
export function pktText(data: Buffer): string {
  return data.toString("utf8").replace(/\n$/, "");
}

/**
 * The packets of a whole body, as `PktReader` reads them from a stream (a short request, a
 * long response read at once); CORRUPT_DATA when one is malformed or cut off.
 */
export function splitPackets(body: Buffer): Packet[] {
  const out: Packet[] = [];
  for (let p = 0; p < body.length; ) {
    const hex = body.toString("latin1", p, p + 4);
    const len = /^[0-9a-f]{4}$/i.test(hex) ? Number.parseInt(hex, 16) : -1;
    if (len === 0 || len === 1 || len === 2) {
      out.push({ kind: len === 0 ? "flush" : len === 1 ? "delim" : "end" });
      p += 4;
      continue;
    }
    if (len < 4 || p + len > body.length)
      throw new MesaError(
        "CORRUPT_DATA",
        `corrupt or truncated pkt-line at byte ${p}: ${JSON.stringify(hex)}`,
      );
    out.push({ kind: "data", data: body.subarray(p + 4, p + len) });
    p += len;
  }
  return out;
}

/** An error message sent by the server (ERR line or side-band channel 3). */
export function serverError(msg: string): MesaError {
  const text = msg.trim();
  // upload-pack refuses unknown objects with "not our ref"/"upload-pack: not our ref <oid>".
  if (/not our ref|no such|not found|unknown object|bad object/i.test(text)) {
    return new MesaError("NOT_FOUND", `server: ${text}`);
  }
  return new MesaError("PROTOCOL", `server error: ${text}`);
}
