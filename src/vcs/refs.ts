/**
 * The one resolver for the revisions `mesa` takes: everything it prints is accepted back.
 * A revision is a bookmark name, a change id (jj's reverse hex, k–z) or a commit id (hex),
 * either in full or as a unique prefix of at least MIN_PREFIX characters. The two id
 * alphabets do not overlap, so a prefix is never both. An ambiguous prefix lists its
 * candidates (as jj and git do).
 *
 * Changes are found through the server's `refs/mesa/changes/<id>` refs (each change's
 * current commit), over the Git protocol; a server without them is asked over REST
 * (the changes of each bookmark).
 */
import { MesaError } from "../errors.js";
import { changeIdFromOid, isChangeId, isOid, type Oid } from "./objects.js";
import type { GitRemote } from "./remote.js";
import type { RestClient } from "./rest.js";

export const MIN_PREFIX = 4;
export const CHANGE_REF_PREFIX = "refs/mesa/changes/";
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
  const { refs } = await src.git.lsRefs({ prefixes: [`${CHANGE_REF_PREFIX}${idPrefix}`] });
  return refs
    .filter((r) => r.name.startsWith(CHANGE_REF_PREFIX))
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
  const bookmark = `refs/heads/${rev}`;
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
    const { refs } = await src.git.lsRefs({ prefixes: ["refs/heads/"] });
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
