import type { RevSpec } from "./types.js";

/** Change ids are 32 characters of k–z (Jujutsu's reverse-hex alphabet). */
export const CHANGE_ID_RE = /^[k-z]{32}$/;

export function changeIdProblem(id: string): string | undefined {
  return CHANGE_ID_RE.test(id) ? undefined : "a change id is 32 characters of k-z";
}

/**
 * Bookmarks become Git branch names (refs/heads/<name>), so they follow the rules of
 * `git check-ref-format --branch`, minus exotic cases we never need.
 */
export function bookmarkProblem(name: string): string | undefined {
  if (name.length === 0) return "a bookmark name must not be empty";
  if (name.length > 200) return "a bookmark name is at most 200 characters";
  if (/[\x00-\x20\x7f~^:?*[\\]/.test(name))
    return "a bookmark name must not contain spaces, control characters or any of ~^:?*[\\";
  if (name.startsWith("-") || name.startsWith("/") || name.endsWith("/") || name.endsWith("."))
    return "a bookmark name must not start with '-' or '/' or end with '/' or '.'";
  if (name.includes("..") || name.includes("//") || name.includes("@{") || name === "@")
    return "a bookmark name must not contain '..', '//' or '@{'";
  if (name.split("/").some((part) => part.startsWith(".") || part.endsWith(".lock")))
    return "a bookmark name component must not start with '.' or end with '.lock'";
  return undefined;
}

/** Reads `{ bookmark = "…" }` or `{ change-id = "…" }`; a string is the reason it is not one. */
export function parseRevTable(value: unknown): RevSpec | string {
  if (typeof value !== "object" || value === null || Array.isArray(value))
    return 'expected { bookmark = "NAME" } or { change-id = "ID" }';
  const keys = Object.keys(value);
  const v = value as Record<string, unknown>;
  if (keys.length !== 1 || (keys[0] !== "bookmark" && keys[0] !== "change-id"))
    return 'expected exactly one of bookmark or change-id, as in { bookmark = "main" }';
  const text = v[keys[0]!];
  if (typeof text !== "string") return `${keys[0]} must be a string`;
  return parseRev(keys[0] === "bookmark" ? "bookmark" : "change-id", text);
}

export function parseRev(kind: "bookmark" | "change-id", text: string): RevSpec | string {
  if (kind === "bookmark") return bookmarkProblem(text) ?? { bookmark: text };
  return changeIdProblem(text) ?? { changeId: text };
}

export function formatRev(rev: RevSpec): string {
  return "bookmark" in rev ? `bookmark:${rev.bookmark}` : `change-id:${rev.changeId}`;
}
