/**
 * `.mesaignore`: gitignore-syntax rules naming paths that stay local and are never pushed
 * (SPEC §9). Rules come from MESA_MESAIGNORE_PATH / `mesaignore-path`, else the defaults below.
 */
import { readFileSync } from "node:fs";
import ignore from "ignore";
import { MesaError } from "../errors.js";

/** Editor swap, backup and lock files and OS litter: what nobody wants in a change. */
export const DEFAULT_MESAIGNORE = `# mesa's built-in .mesaignore (gitignore syntax): these paths stay local, never pushed.
# Vim / Neovim
*.swp
*.swo
*.swn
*~
.*.un~
# Emacs
\\#*\\#
.\\#*
# JetBrains / VS Code / Sublime
.idea/workspace.xml
*.sublime-workspace
# LibreOffice / MS Office lock files
.~lock.*#
~$*
# macOS / Windows
.DS_Store
._*
Thumbs.db
desktop.ini
`;

export type IgnoreMatcher = (relPath: string, isDir: boolean) => boolean;

/** Paths the FUSE library itself creates for unlinked open files: always local. */
function internal(relPath: string): boolean {
  const base = relPath.slice(relPath.lastIndexOf("/") + 1);
  return base.startsWith(".fuse_hidden");
}

export function compileMesaignore(text: string): IgnoreMatcher {
  const ig = ignore().add(text);
  return (relPath, isDir) => {
    if (relPath === "") return false;
    if (internal(relPath)) return true;
    // A path is ignored when it or any directory above it is.
    const parts = relPath.split("/");
    for (let i = 1; i <= parts.length; i++) {
      const p = parts.slice(0, i).join("/");
      if (ig.ignores(i < parts.length || isDir ? `${p}/` : p)) return true;
    }
    return false;
  };
}

/** The rules from `path` (a missing or unreadable file is a clear error), or the defaults. */
export function loadMesaignore(path: string | undefined): IgnoreMatcher {
  if (path === undefined) return compileMesaignore(DEFAULT_MESAIGNORE);
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    throw new MesaError(
      "CONFIG_INVALID",
      `cannot read the .mesaignore file ${path}: ${(err as Error).message}`,
      {
        hint: "fix MESA_MESAIGNORE_PATH / mesaignore-path, or unset it to use the built-in defaults",
      },
    );
  }
  return compileMesaignore(text);
}
