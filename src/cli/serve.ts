/**
 * `mesa serve [--data-dir D] [--listen HOST:PORT] [--org NAME]` and
 * `mesa serve import <org>/<repo> <git-url-or-path>` (SPEC §1.3, compat.md §5–§7) and
 * `mesa serve admin-key --org <name>` (a new org-wide admin key, from the data dir).
 */
import { homedir } from "node:os";
import path from "node:path";
import type { Command } from "commander";
import { MesaError } from "../errors.js";
import { createLogger, type LogLevel } from "../log.js";
import { parseRepoSlug } from "../names.js";
import { progressLine } from "./progress.js";

const DEFAULT_LISTEN = "127.0.0.1:7878";
/** The server's code is loaded by the commands that run it: other commands start faster without it. */
const server = () => import("../server/serve.js");

function defaultDataDir(): string {
  return path.join(homedir(), ".local", "share", "mesa", "server");
}

function resolveDir(dir: string | undefined): string {
  if (!dir) return defaultDataDir();
  if (dir === "~" || dir.startsWith("~/")) return path.join(homedir(), dir.slice(1));
  return path.resolve(dir);
}

export function register(program: Command): void {
  const serve = program
    .command("serve")
    .description("run the self-hosted Mesa-compatible backend (Git smart HTTP + REST v1)")
    .option("--data-dir <dir>", "where repos and keys live (default ~/.local/share/mesa/server)")
    .option("--listen <host:port>", `address to listen on (default ${DEFAULT_LISTEN})`)
    .option("--org <name>", "organization created on first start (default local)")
    .option("--git-timeout <seconds>", "kill a git subprocess that is idle this long (default 120)")
    .action(
      async (
        opts: { dataDir?: string; listen?: string; org?: string; gitTimeout?: string },
        cmd: Command,
      ) => {
        let gitIdleTimeoutMs: number | undefined;
        if (opts.gitTimeout !== undefined) {
          const s = Number(opts.gitTimeout);
          if (!/^\d+$/.test(opts.gitTimeout) || s < 1 || s > 86_400)
            throw new MesaError(
              "INVALID_ARGUMENT",
              `--git-timeout takes 1 to 86400 seconds, got ${JSON.stringify(opts.gitTimeout)}`,
            );
          gitIdleTimeoutMs = s * 1000;
        }
        const { parseListen, runServe } = await server();
        const { host, port } = parseListen(opts.listen ?? DEFAULT_LISTEN);
        // Serving logs at info by default: the "listening" line is how callers find the port.
        const level = (cmd.optsWithGlobals() as { logLevel?: LogLevel }).logLevel ?? "info";
        const log = createLogger({ level, name: "mesa-serve" });
        await runServe({
          dataDir: resolveDir(opts.dataDir),
          host,
          port,
          org: opts.org ?? "local",
          log,
          gitIdleTimeoutMs,
          announce: (line) => process.stdout.write(`${line}\n`),
        });
      },
    );

  serve
    .command("import")
    .description("import every branch of an existing Git repository (safe while the server runs)")
    .argument("<org/repo>", "name of the new repository")
    .argument("<source>", "Git URL or path of the repository to import")
    .option("--data-dir <dir>", "the server's data dir (default ~/.local/share/mesa/server)")
    .option("-q, --quiet", "no progress lines")
    .action(
      async (slug: string, source: string, opts: { dataDir?: string; quiet?: boolean }, cmd: Command) => {
        const parentDir = (cmd.parent?.opts() as { dataDir?: string } | undefined)?.dataDir;
        const { org, repo } = parseRepoSlug(slug);
        if (source.length === 0) throw new MesaError("USAGE", "the source repository is empty");
        const progress = progressLine({ quiet: opts.quiet === true });
        // git prints these lines only when asked; ask only when they will be shown.
        const show = process.stderr.isTTY && !opts.quiet ? progress.update : undefined;
        const { runImport } = await server();
        const res = await runImport(resolveDir(opts.dataDir ?? parentDir), org, repo, source, show).finally(
          progress.end,
        );
        process.stdout.write(
          `imported ${org}/${repo}: ${res.branches.length} branch(es), default bookmark ${res.defaultBookmark}\n`,
        );
      },
    );

  serve
    .command("admin-key")
    .description("mint a new org-wide admin key from the data dir (recovers a lost or revoked one)")
    .option("--org <name>", "organization of the key (required)")
    .option("--name <name>", 'name of the key (default "admin (recovered)")')
    .option("--data-dir <dir>", "the server's data dir (default ~/.local/share/mesa/server)")
    .action(async (opts: { org?: string; name?: string; dataDir?: string }, cmd: Command) => {
      // `serve` has --org and --data-dir of its own; commander may hand them to the parent.
      const parent = (cmd.parent?.opts() ?? {}) as { dataDir?: string; org?: string };
      const org = opts.org ?? parent.org;
      if (!org) throw new MesaError("USAGE", "mesa serve admin-key needs --org <name>");
      const { mintAdminKey } = await import("../server/admin-key.js");
      const minted = await mintAdminKey(resolveDir(opts.dataDir ?? parent.dataDir), org, { name: opts.name });
      process.stdout.write(`admin key: ${minted.key}\n`);
    });
}
