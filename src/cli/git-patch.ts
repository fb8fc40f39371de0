/**
 * Unified diffs in Git's format for `mesa show --git`, exact enough for `git apply`: mode
 * lines, `index` lines, `\ No newline at end of file` (symlink targets never end in one),
 * and three lines of context.
 */

import type { Oid } from "../vcs/objects.js";
import { isText, lineDiff } from "../workspace/conflict.js";

export interface FileSide {
  mode: string;
  oid: Oid;
}

const CONTEXT = 3;
/** Marks a last line without a newline, so "x" and "x\n" compare unequal in the diff. */
const NO_EOL = "\u0000";
const NO_EOL_NOTE = "\\ No newline at end of file";
const ZERO = "0000000";

function splitLines(b: Buffer): string[] {
  const t = b.toString("utf8");
  if (t === "") return [];
  const l = t.split("\n");
  if (l[l.length - 1] === "") l.pop();
  else l[l.length - 1] += NO_EOL;
  return l;
}

function range(start: number, count: number): string {
  return count === 1 ? `${start}` : `${count === 0 ? start - 1 : start},${count}`;
}

/** Hunk lines (headers and bodies) between two texts split into lines. */
function hunks(a: string[], b: string[]): string[] {
  const d = lineDiff(a, b);
  const out: string[] = [];
  let i = 0;
  let oldLine = 1;
  let newLine = 1;
  while (i < d.length) {
    if (d[i][0] === " ") {
      i++;
      oldLine++;
      newLine++;
      continue;
    }
    // Start a hunk CONTEXT lines back; extend it while changes are close together.
    let start = i;
    let back = 0;
    while (start > 0 && back < CONTEXT && d[start - 1][0] === " ") {
      start--;
      back++;
    }
    let end = i;
    let gap = 0;
    while (end < d.length) {
      if (d[end][0] === " ") {
        gap++;
        if (gap > CONTEXT * 2) break;
      } else gap = 0;
      end++;
    }
    end -= Math.max(0, gap - CONTEXT);
    const body = d.slice(start, end);
    const oc = body.filter((l) => l[0] !== "+").length;
    const nc = body.filter((l) => l[0] !== "-").length;
    out.push(`@@ -${range(oldLine - back, oc)} +${range(newLine - back, nc)} @@`);
    for (const l of body) {
      if (l.endsWith(NO_EOL)) out.push(l.slice(0, -1), NO_EOL_NOTE);
      else out.push(l);
    }
    for (let k = i; k < end; k++) {
      if (d[k][0] !== "+") oldLine++;
      if (d[k][0] !== "-") newLine++;
    }
    i = end;
  }
  return out;
}

/** The patch of one path; `before`/`after` undefined for an added/deleted file. */
export function filePatch(
  path: string,
  before: FileSide | undefined,
  after: FileSide | undefined,
  blobs: Map<Oid, Buffer>,
): string {
  let out = `diff --git a/${path} b/${path}\n`;
  if (!before) out += `new file mode ${after?.mode}\n`;
  else if (!after) out += `deleted file mode ${before.mode}\n`;
  else if (before.mode !== after.mode) out += `old mode ${before.mode}\nnew mode ${after.mode}\n`;
  if (before?.oid === after?.oid) return out;
  const sameMode = before && after && before.mode === after.mode ? ` ${after.mode}` : "";
  out += `index ${before ? before.oid.slice(0, 7) : ZERO}..${after ? after.oid.slice(0, 7) : ZERO}${sameMode}\n`;
  const bb = before ? (blobs.get(before.oid) ?? Buffer.alloc(0)) : Buffer.alloc(0);
  const ab = after ? (blobs.get(after.oid) ?? Buffer.alloc(0)) : Buffer.alloc(0);
  const from = before ? `a/${path}` : "/dev/null";
  const to = after ? `b/${path}` : "/dev/null";
  if (!isText(bb) || !isText(ab)) return `${out}Binary files ${from} and ${to} differ\n`;
  const h = hunks(splitLines(bb), splitLines(ab));
  // An empty file added or removed has no hunk, and then no ---/+++ lines either (as git).
  if (h.length === 0) return out;
  return `${out}--- ${from}\n+++ ${to}\n${h.join("\n")}\n`;
}
