/**
 * Jujutsu-style conflict markers for a file changed on both sides of a rebase (the "diff"
 * style jj writes by default): the first side as a diff from the base, the second side as a
 * snapshot. The whole file is one conflict region. See docs/writing.md.
 */

function lines(text: string): string[] {
  if (text === "") return [];
  const out = text.split("\n");
  if (out[out.length - 1] === "") out.pop();
  return out;
}

/** A line diff of `a` → `b` (LCS; falls back to remove-all/add-all for very large inputs). */
export function lineDiff(a: string[], b: string[]): string[] {
  if (a.length * b.length > 4_000_000) return [...a.map((l) => `-${l}`), ...b.map((l) => `+${l}`)];
  const n = a.length;
  const m = b.length;
  const lcs: Uint32Array[] = Array.from({ length: n + 1 }, () => new Uint32Array(m + 1));
  for (let i = n - 1; i >= 0; i--)
    for (let j = m - 1; j >= 0; j--)
      lcs[i][j] = a[i] === b[j] ? lcs[i + 1][j + 1] + 1 : Math.max(lcs[i + 1][j], lcs[i][j + 1]);
  const out: string[] = [];
  let i = 0;
  let j = 0;
  while (i < n || j < m) {
    if (i < n && j < m && a[i] === b[j]) {
      out.push(` ${a[i]}`);
      i++;
      j++;
    } else if (i < n && (j === m || lcs[i + 1][j] >= lcs[i][j + 1])) out.push(`-${a[i++]}`);
    else out.push(`+${b[j++]}`);
  }
  return out;
}

/** True when `data` looks like text that markers can be written into. */
export function isText(data: Buffer): boolean {
  return !data.subarray(0, 8192).includes(0);
}

/** The conflicted file: `local` (side #1, as a diff from `base`) and `remote` (side #2). */
export function conflictMarkers(base: Buffer, local: Buffer, remote: Buffer): Buffer {
  const b = lines(base.toString("utf8"));
  const l = lines(local.toString("utf8"));
  const r = lines(remote.toString("utf8"));
  const out = [
    "<<<<<<< Conflict 1 of 1",
    "%%%%%%% Changes from base to side #1 (this mount)",
    ...lineDiff(b, l),
    "+++++++ Contents of side #2 (the server)",
    ...r,
    ">>>>>>> Conflict 1 of 1 ends",
  ];
  return Buffer.from(`${out.join("\n")}\n`, "utf8");
}
