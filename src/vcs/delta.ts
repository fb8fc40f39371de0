/** Git delta application (OFS_DELTA / REF_DELTA payloads), with every bound checked. */
import { MesaError } from "../errors.js";

function corrupt(why: string): MesaError {
  return new MesaError("CORRUPT_DATA", `invalid delta in pack: ${why}`);
}

/** Deltas are mostly short runs, where a plain loop beats Buffer#copy's per-call overhead. */
function copyBytes(src: Buffer, from: number, dst: Buffer, to: number, n: number): void {
  if (n > 256) dst.set(src.subarray(from, from + n), to);
  else for (let i = 0; i < n; i++) dst[to + i] = src[from + i]!;
}

export function applyDelta(base: Buffer, delta: Buffer): Buffer {
  let pos = 0;
  const varint = (): number => {
    let result = 0;
    let shift = 0;
    let byte: number;
    do {
      if (pos >= delta.length) throw corrupt("truncated size header");
      byte = delta[pos++]!;
      result += (byte & 0x7f) * 2 ** shift;
      shift += 7;
    } while (byte & 0x80);
    return result;
  };
  const srcSize = varint();
  const dstSize = varint();
  if (srcSize !== base.length) throw corrupt(`base size ${base.length} does not match ${srcSize}`);
  const out = Buffer.allocUnsafe(dstSize);
  let outPos = 0;
  while (pos < delta.length) {
    const op = delta[pos++]!;
    if (op & 0x80) {
      let offset = 0;
      let size = 0;
      for (let i = 0; i < 4; i++) {
        if (op & (1 << i)) {
          if (pos >= delta.length) throw corrupt("truncated copy");
          offset += delta[pos++]! * 2 ** (8 * i);
        }
      }
      for (let i = 0; i < 3; i++) {
        if (op & (0x10 << i)) {
          if (pos >= delta.length) throw corrupt("truncated copy");
          size |= delta[pos++]! << (8 * i);
        }
      }
      if (size === 0) size = 0x10000;
      if (offset + size > base.length || outPos + size > dstSize) throw corrupt("copy out of range");
      copyBytes(base, offset, out, outPos, size);
      outPos += size;
    } else if (op !== 0) {
      if (pos + op > delta.length || outPos + op > dstSize) throw corrupt("insert out of range");
      copyBytes(delta, pos, out, outPos, op);
      pos += op;
      outPos += op;
    } else {
      throw corrupt("reserved opcode 0");
    }
  }
  if (outPos !== dstSize) throw corrupt(`result is ${outPos} bytes, expected ${dstSize}`);
  return out;
}
