/**
 * Helpers for the CLI tests: a source repo whose history has a symlink change, files without
 * a final newline, a mode change and two changes whose ids share a prefix; the documented
 * error sentences of docs/cli.md as patterns; `mesa` run in a given directory.
 */
import { execFileSync } from "node:child_process";
import { chmodSync, mkdirSync, readFileSync, symlinkSync, unlinkSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { gitSync, MESA_BIN, type RunResult, run } from "./mount.js";

export const ROOT = resolve(import.meta.dirname, "../../..");

/** Two change ids that share the prefix "kkkk" (ambiguous) and differ at the fifth letter. */
export const TWIN_M = `kkkk${"m".repeat(28)}`;
export const TWIN_N = `kkkk${"n".repeat(28)}`;

export interface HistoryRepo {
  dir: string;
  /** The commit with the symlink change and the files without a final newline. */
  second: string;
  first: string;
}

/** A commit with the same tree as `parent` and a jj `change-id` header. */
function commitWithChangeId(dir: string, parent: string, changeId: string, message: string): string {
  const tree = gitSync(dir, ["rev-parse", `${parent}^{tree}`]).trim();
  const body =
    `tree ${tree}\nparent ${parent}\n` +
    "author Test <test@example.com> 1700000000 +0000\n" +
    "committer Test <test@example.com> 1700000000 +0000\n" +
    `change-id ${changeId}\n\n${message}\n`;
  return execFileSync("git", ["hash-object", "-w", "-t", "commit", "--stdin"], { cwd: dir, input: body })
    .toString()
    .trim();
}

export function historyRepo(dir: string): HistoryRepo {
  mkdirSync(dir, { recursive: true });
  gitSync(dir, ["init", "-q", "-b", "main"]);
  writeFileSync(join(dir, "a.txt"), "hello");
  writeFileSync(join(dir, "run.sh"), "#!/bin/sh\necho run\n");
  writeFileSync(join(dir, "README.md"), "# history\n");
  symlinkSync("a.txt", join(dir, "link"));
  gitSync(dir, ["add", "-A"]);
  gitSync(dir, ["commit", "-q", "-m", "first"]);
  const first = gitSync(dir, ["rev-parse", "HEAD"]).trim();
  writeFileSync(join(dir, "a.txt"), "hello\nworld");
  writeFileSync(join(dir, "b.txt"), "x\n");
  writeFileSync(join(dir, "README.md"), "# history\n\nmore, and no final newline");
  unlinkSync(join(dir, "link"));
  symlinkSync("b.txt", join(dir, "link"));
  chmodSync(join(dir, "run.sh"), 0o755);
  gitSync(dir, ["add", "-A"]);
  gitSync(dir, ["commit", "-q", "-m", "second: a symlink, modes, no final newlines"]);
  const second = gitSync(dir, ["rev-parse", "HEAD"]).trim();
  const m = commitWithChangeId(dir, second, TWIN_M, "twin m");
  const n = commitWithChangeId(dir, m, TWIN_N, "twin n");
  gitSync(dir, ["update-ref", "refs/heads/main", n]);
  gitSync(dir, ["reset", "-q", "--hard", "main"]);
  return { dir, first, second };
}

/** The sentence docs/cli.md documents for `situation`, as a pattern (placeholders match anything). */
export function documentedError(situation: string): RegExp {
  const doc = readFileSync(join(ROOT, "docs", "cli.md"), "utf8");
  const row = doc.split("\n").find((l) => l.startsWith(`| ${situation} |`));
  if (!row) throw new Error(`docs/cli.md documents no error for '${situation}'`);
  const cell = row.split(" | ")[1]!.replace(/ \|$/, "").trim();
  const text = cell.startsWith("`` ") ? cell.slice(3, -3) : cell.slice(1, -1);
  const escaped = text
    .split(/(<[a-z]+>|\(…\))/)
    .map((part) => (/^<[a-z]+>$|^\(…\)$/.test(part) ? ".+?" : part.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")))
    .join("");
  return new RegExp(`^mesa: ${escaped}$`, "m");
}

/** `mesa args` with `cwd` as its working directory. */
export function mesaIn(
  cwd: string,
  args: string[],
  env: NodeJS.ProcessEnv,
  timeoutMs = 90_000,
): Promise<RunResult> {
  return run(process.execPath, [MESA_BIN, ...args], { env, cwd, timeoutMs });
}

/** Every line of a JSON-lines log parses as JSON. */
export function nonJsonLines(text: string): string[] {
  return text.split("\n").filter((l) => {
    if (l === "") return false;
    try {
      JSON.parse(l);
      return false;
    } catch {
      return true;
    }
  });
}
