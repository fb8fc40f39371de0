/**
 * Progress on stderr, one line rewritten in place like git's "Receiving objects: 45% (…)":
 * only on a terminal, never with --quiet, so scripts and logs see nothing of it.
 */
export interface ProgressLine {
  update(line: string): void;
  /** Ends the line (a newline when something was shown). */
  end(): void;
}

export function progressLine(opts: { quiet: boolean; stream?: NodeJS.WriteStream }): ProgressLine {
  const stream = opts.stream ?? process.stderr;
  const on = !opts.quiet && stream.isTTY === true;
  let shown = false;
  let phase = "";
  return {
    update(line) {
      if (!on) return;
      // A new phase ("Receiving objects" → "Resolving deltas") keeps the last one on its line.
      const next = line.split(":")[0];
      if (shown && next !== phase) stream.write("\n");
      phase = next;
      stream.write(`\r${line}\x1b[K`);
      shown = true;
    },
    end() {
      if (shown) stream.write("\n");
      shown = false;
    },
  };
}
