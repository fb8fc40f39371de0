/**
 * `fs.changes` and `fs.bookmarks`: version control of the mounted repos. `new` and `edit`
 * switch the repo's working change (pending writes are pushed first); lists and bookmark
 * creation go through the REST API with the client's key.
 */
import type { MesaError } from "../errors.js";
import { ConflictError, InvalidOptionsError, MesaFsError, sdkCall } from "./errors.js";
import type { MountParts } from "./fs.js";

export interface ChangeInfo {
  changeId: string;
  commitOid: string;
  message: string;
  author: { name: string; email: string; date?: string };
  parents: string[];
}

export interface ChangeTarget {
  bookmark?: string;
  changeId?: string;
}

type Usable = (syscall: string, path: string) => void;

/** The repo's name in this mount ("app" or "org/app"); EROFS-style errors name its path. */
async function mountedRepo(parts: MountParts, repo: string): Promise<string> {
  const name = await parts.client.repoName(repo);
  if (!parts.rfs.fs.repos().some((s) => s.org === parts.org && s.repo === name))
    throw new InvalidOptionsError(`repo '${name}' is not mounted here`);
  return name;
}

function writable(parts: MountParts, name: string, syscall: string): void {
  const entry = parts.rfs.writes.status().find((w) => w.org === parts.org && w.repo === name);
  if (!entry || !("ref" in entry))
    throw new MesaFsError(
      "EROFS",
      syscall,
      `/${parts.org}/${name}`,
      entry && "readOnly" in entry ? entry.readOnly : undefined,
    );
}

/** The change the repo shows now: its working change, else the followed bookmark's head. */
async function currentChangeId(parts: MountParts, name: string): Promise<string> {
  const entry = parts.rfs.writes.status().find((w) => w.org === parts.org && w.repo === name);
  if (entry && "ref" in entry) {
    await parts.rfs.writes.flush(parts.org, name);
    const w = parts.rfs.writes.workingChange(parts.org, name);
    if (w.changeId) return w.changeId;
  }
  const snap = parts.rfs.fs.repos().find((s) => s.org === parts.org && s.repo === name);
  const label = snap?.revision ?? "";
  const pinned = /^change-id:(.+)$/.exec(label)?.[1];
  if (pinned) return pinned;
  const bookmark = /^bookmark:(.+)$/.exec(label)?.[1];
  const hit = await parts.client.withRest(async (rest, org) => {
    for await (const b of rest.listBookmarks(org, name, bookmark)) if (b.name === bookmark) return b;
    return undefined;
  });
  if (!hit)
    throw new MesaFsError("ENOENT", "bookmarks", `/${parts.org}/${name}`, `bookmark ${bookmark} is gone`);
  return hit.change_id;
}

export class FsChanges {
  constructor(
    private readonly parts: MountParts,
    private readonly usable: Usable,
  ) {}

  private async switchTo(repo: string, target: ChangeTarget, isNew: boolean): Promise<string> {
    const syscall = isNew ? "changes.new" : "changes.edit";
    this.usable(syscall, repo);
    if (target.bookmark !== undefined && target.changeId !== undefined)
      throw new InvalidOptionsError("give a bookmark or a changeId, not both");
    if (!isNew && target.bookmark === undefined && target.changeId === undefined)
      throw new InvalidOptionsError("changes.edit needs a bookmark or a changeId");
    const name = await mountedRepo(this.parts, repo);
    writable(this.parts, name, syscall);
    const r = await sdkCall(() =>
      this.parts.rfs.writes.checkout(
        this.parts.org,
        name,
        isNew ? { new: true, ...target } : { bookmark: target.bookmark, changeId: target.changeId },
      ),
    );
    return r.changeId;
  }

  /**
   * Starts a new, empty change on top of `bookmark`, `changeId` or (with neither) the current
   * change, and makes it the working change; returns its id.
   */
  new(repo: string, target: ChangeTarget = {}): Promise<string> {
    return this.switchTo(repo, target, true);
  }

  /** Makes an existing change (or a bookmark's head) the working change: writes amend it. */
  edit(repo: string, target: ChangeTarget): Promise<string> {
    return this.switchTo(repo, target, false);
  }

  /** Recent changes, newest first: the working change, then the history of its bookmark. */
  async list(repo: string, opts: { limit?: number } = {}): Promise<ChangeInfo[]> {
    this.usable("changes.list", repo);
    const limit = opts.limit ?? 50;
    if (!Number.isInteger(limit) || limit < 1)
      throw new InvalidOptionsError("limit must be a positive whole number");
    const name = await mountedRepo(this.parts, repo);
    const current = await currentChangeId(this.parts, name);
    const snap = this.parts.rfs.fs.repos().find((s) => s.org === this.parts.org && s.repo === name);
    const bookmark = /^bookmark:(.+)$/.exec(snap?.revision ?? "")?.[1];
    return this.parts.client.withRest(async (rest, org) => {
      const out: ChangeInfo[] = [];
      const info = (c: {
        id: string;
        current_commit_oid: string;
        message: string;
        author: ChangeInfo["author"];
        parents: string[];
      }): ChangeInfo => ({
        changeId: c.id,
        commitOid: c.current_commit_oid,
        message: c.message,
        author: c.author,
        parents: c.parents,
      });
      for await (const c of rest.listChanges(org, name, bookmark)) {
        out.push(info(c));
        if (out.length >= limit) break;
      }
      if (!out.some((c) => c.changeId === current)) {
        try {
          out.unshift(info(await rest.getChange(org, name, current)));
        } catch (err) {
          if ((err as MesaError).code !== "NOT_FOUND") throw err;
        }
        if (out.length > limit) out.pop();
      }
      return out;
    });
  }
}

export class FsBookmarks {
  constructor(
    private readonly parts: MountParts,
    private readonly usable: Usable,
  ) {}

  /** Bookmark names of a mounted repo. */
  async list(repo: string): Promise<string[]> {
    this.usable("bookmarks.list", repo);
    const name = await mountedRepo(this.parts, repo);
    return this.parts.client.withRest(async (rest, org) => {
      const out: string[] = [];
      for await (const b of rest.listBookmarks(org, name)) out.push(b.name);
      return out;
    });
  }

  /** A new bookmark at the current change (pending writes are pushed first). */
  async create(repo: string, bookmark: string): Promise<void> {
    this.usable("bookmarks.create", repo);
    const name = await mountedRepo(this.parts, repo);
    const changeId = await sdkCall(() => currentChangeId(this.parts, name));
    try {
      await this.parts.client.withRest((rest, org) => rest.createBookmark(org, name, bookmark, changeId));
    } catch (err) {
      if (err instanceof ConflictError)
        throw new MesaFsError("EEXIST", "bookmarks.create", bookmark, `bookmark ${bookmark} already exists`);
      throw err;
    }
  }
}
