/**
 * Where mesa's names live among a repo's Git refs, and the resolvers that read them: the one
 * place that knows bookmarks are `refs/heads/<name>` and changes `refs/mesa/changes/<id>`.
 *
 * `resolveRevision` picks the commit a repo is mounted at (a config bookmark or change id, else
 * the server's default). `resolveRef` is the one resolver for the revisions `mesa` takes:
 * everything it prints is accepted back.
 * A revision is a bookmark name, a change id (jj's reverse hex, k–z) or a commit id (hex),
 * either in full or as a unique prefix of at least MIN_PREFIX characters. The two id
 * alphabets do not overlap, so a prefix is never both. An ambiguous prefix lists its
 * candidates (as jj and git do).
 *
 * Changes are found through the server's `refs/mesa/changes/<id>` refs (each change's
 * current commit), over the Git protocol; a server without them is asked over REST
 * (the changes of each bookmark).
 */
import type { RevSpec } from "../config/types.js";
import { MesaError } from "../errors.js";
import { changeIdFromOid, isChangeId, isOid, type Oid } from "./objects.js";
import type { GitRemote } from "./remote.js";
import type { RestClient } from "./rest.js";

export const MIN_PREFIX = 4;
export const BOOKMARK_REF_PREFIX = "refs/heads/";
export const CHANGE_REF_PREFIX = "refs/mesa/changes/";

/** The ref of bookmark `name`. */
export function bookmarkRef(name: string): string {
  return `${BOOKMARK_REF_PREFIX}${name}`;
}

/** The ref that holds change `id`'s current commit. */
export function changeRef(id: string): string {
  return `${CHANGE_REF_PREFIX}${id}`;
}

export function isBookmarkRef(ref: string): boolean {
  return ref.startsWith(BOOKMARK_REF_PREFIX);
}

export function isChangeRef(ref: string): boolean {
  return ref.startsWith(CHANGE_REF_PREFIX);
}

/** The bookmark a ref names (`refs/heads/main` → `main`); any other ref as it is. */
export function bookmarkName(ref: string): string {
  return isBookmarkRef(ref) ? ref.slice(BOOKMARK_REF_PREFIX.length) : ref;
}

/** The current value of `ref` on the server; null when it does not exist. */
export async function refOid(git: Pick<GitRemote, "lsRefs">, ref: string): Promise<Oid | null> {
  const { refs } = await git.lsRefs({ prefixes: [ref] });
  return refs.find((r) => r.name === ref)?.oid ?? null;
}

/** The commit a repo is mounted at. */
export interface ResolvedRevision {
  commitOid: string;
  /** For status: "bookmark:main", "change-id:…", "default:main". */
  label: string;
  /** Pinned to a change id: never follows a bookmark, never writable. */
  pinned: boolean;
}

/** The bookmark a mount label names (`bookmark:main` → `main`), if it names one. */
export function labelBookmark(label: string): string | undefined {
  return /^bookmark:(.+)$/.exec(label)?.[1];
}

/**
 * The commit to mount: change `rev.changeId` (its ref, or the first whose id it prefixes), bookmark
 * `rev.bookmark` (a name starting with `refs/` is taken as a full ref), or without `rev` the
 * server's HEAD, else its first bookmark.
 */
export async function resolveRevision(
  src: Pick<RefSource, "org" | "repo"> & { git: Pick<GitRemote, "lsRefs"> },
  rev: RevSpec | undefined,
): Promise<ResolvedRevision> {
  const { git, org, repo } = src;
  if (rev && "changeId" in rev) {
    const prefix = changeRef(rev.changeId);
    const { refs } = await git.lsRefs({ prefixes: [prefix] });
    const hit = refs.find((r) => r.name === prefix) ?? refs.find((r) => r.name.startsWith(prefix));
    if (!hit) throw new MesaError("NOT_FOUND", `change ${rev.changeId} not found in ${org}/${repo}`);
    return { commitOid: hit.oid, label: `change-id:${rev.changeId}`, pinned: true };
  }
  if (rev) {
    const ref = rev.bookmark.startsWith("refs/") ? rev.bookmark : bookmarkRef(rev.bookmark);
    const { refs } = await git.lsRefs({ prefixes: [ref] });
    const hit = refs.find((r) => r.name === ref);
    if (!hit) throw new MesaError("NOT_FOUND", `bookmark '${rev.bookmark}' not found in ${org}/${repo}`);
    return { commitOid: hit.oid, label: `bookmark:${rev.bookmark}`, pinned: false };
  }
  const { head, refs } = await git.lsRefs({ prefixes: [BOOKMARK_REF_PREFIX] });
  if (head?.oid) {
    const name = head.target !== undefined ? bookmarkName(head.target) : "HEAD";
    return { commitOid: head.oid, label: `bookmark:${name}`, pinned: false };
  }
  const first = refs.find((r) => isBookmarkRef(r.name));
  if (!first) throw new MesaError("NOT_FOUND", `${org}/${repo} has no bookmarks (it is empty)`);
  return { commitOid: first.oid, label: `bookmark:${bookmarkName(first.name)}`, pinned: false };
}
/** How many changes per bookmark the REST fallback reads before giving up on a prefix. */
const REST_SCAN_LIMIT = 2000;

export interface ResolvedRef {
  commit: Oid;
  /** The change id, when known without fetching the commit. */
  changeId?: string;
  kind: "bookmark" | "change" | "commit";
}

export interface RefSource {
  git: GitRemote;
  /** For servers that do not publish change refs. */
  rest?: RestClient;
  org: string;
  repo: string;
}

interface ChangeHead {
  changeId: string;
  commit: Oid;
}

const CHANGE_PREFIX_RE = new RegExp(`^[k-z]{${MIN_PREFIX},31}$`);
const COMMIT_PREFIX_RE = new RegExp(`^[0-9a-f]{${MIN_PREFIX},39}$`);

async function changeRefs(src: RefSource, idPrefix = ""): Promise<ChangeHead[]> {
  const { refs } = await src.git.lsRefs({ prefixes: [changeRef(idPrefix)] });
  return refs
    .filter((r) => isChangeRef(r.name))
    .map((r) => ({ changeId: r.name.slice(CHANGE_REF_PREFIX.length), commit: r.oid }));
}

/** Every change the REST API lists on some bookmark (bounded), for servers without change refs. */
async function restChanges(src: RefSource): Promise<ChangeHead[]> {
  if (!src.rest) return [];
  const out = new Map<string, ChangeHead>();
  for await (const b of src.rest.listBookmarks(src.org, src.repo)) {
    let n = 0;
    for await (const c of src.rest.listChanges(src.org, src.repo, b.name)) {
      out.set(c.id, { changeId: c.id, commit: c.current_commit_oid });
      if (++n >= REST_SCAN_LIMIT) break;
    }
  }
  return [...out.values()];
}

async function allChanges(src: RefSource): Promise<ChangeHead[]> {
  const viaGit = await changeRefs(src);
  return viaGit.length > 0 ? viaGit : restChanges(src);
}

function ambiguous(what: string, rev: string, hits: ChangeHead[], src: RefSource): MesaError {
  const shown = hits
    .slice(0, 10)
    .map((h) => `  ${h.changeId.slice(0, 12)}  commit ${h.commit.slice(0, 12)}`)
    .join("\n");
  return new MesaError(
    "INVALID_ARGUMENT",
    `${what} prefix '${rev}' is ambiguous in ${src.org}/${src.repo}: it matches ${hits.length}\n${shown}${hits.length > 10 ? "\n  …" : ""}\nuse more characters`,
  );
}

function unique(hits: ChangeHead[]): ChangeHead[] {
  const seen = new Map<string, ChangeHead>();
  for (const h of hits) seen.set(h.changeId, h);
  return [...seen.values()];
}

/** Resolves `rev` (not `@`, which belongs to the caller) to a commit. */
export async function resolveRef(src: RefSource, rev: string): Promise<ResolvedRef> {
  if (isOid(rev)) return { commit: rev, kind: "commit" };
  const bookmark = bookmarkRef(rev);
  if (!rev.startsWith("-") && !/[\s\0]/.test(rev)) {
    const { refs } = await src.git.lsRefs({ prefixes: [bookmark] });
    const hit = refs.find((r) => r.name === bookmark);
    if (hit) return { commit: hit.oid, kind: "bookmark" };
  }
  if (isChangeId(rev) || CHANGE_PREFIX_RE.test(rev)) {
    let hits = await changeRefs(src, rev);
    if (hits.length === 0) hits = (await restChanges(src)).filter((h) => h.changeId.startsWith(rev));
    hits = unique(hits);
    if (hits.length === 1) return { commit: hits[0].commit, changeId: hits[0].changeId, kind: "change" };
    if (hits.length > 1) throw ambiguous("change id", rev, hits, src);
    if (isChangeId(rev) && src.rest) {
      // A change no bookmark reaches may still be known to the REST API.
      const c = await src.rest.getChange(src.org, src.repo, rev).catch(() => undefined);
      if (c) return { commit: c.current_commit_oid, changeId: c.id, kind: "change" };
    }
  } else if (COMMIT_PREFIX_RE.test(rev)) {
    const changes = await allChanges(src);
    const { refs } = await src.git.lsRefs({ prefixes: [BOOKMARK_REF_PREFIX] });
    const byCommit = new Map<Oid, ChangeHead>();
    for (const r of refs) byCommit.set(r.oid, { changeId: "", commit: r.oid });
    for (const c of changes) byCommit.set(c.commit, c);
    const hits = [...byCommit.values()].filter((h) => h.commit.startsWith(rev));
    if (hits.length === 1)
      return { commit: hits[0].commit, changeId: hits[0].changeId || undefined, kind: "commit" };
    if (hits.length > 1)
      throw ambiguous(
        "commit id",
        rev,
        hits.map((h) => ({ ...h, changeId: h.changeId || changeIdFromOid(h.commit) })),
        src,
      );
  }
  const short = rev.length < MIN_PREFIX && /^[0-9a-z]+$/.test(rev);
  throw new MesaError("NOT_FOUND", `no bookmark, change or commit '${rev}' in ${src.org}/${src.repo}`, {
    hint: short
      ? `ids need at least ${MIN_PREFIX} characters`
      : `see \`mesa log --org ${src.org} --repo ${src.repo}\` and \`mesa bookmark list\``,
  });
}

/** The change id of a resolved ref; fetches the commit when the resolver did not know it. */
export async function changeIdOf(src: RefSource, ref: ResolvedRef): Promise<string> {
  if (ref.changeId) return ref.changeId;
  const { commit } = await src.git.fetchCommitTrees(ref.commit);
  return commit.changeId ?? changeIdFromOid(ref.commit);
}
