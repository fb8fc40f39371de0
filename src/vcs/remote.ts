/**
 * GitRemote: the daemon's view of one repository over Git smart HTTP.
 * Reads use protocol v2 (ls-refs, fetch, object-info); pushes use receive-pack (v0/v1 with
 * report-status, side-band-64k and atomic). Every object handed back was hashed by us and
 * checked against what was asked for.
 *
 * Fallbacks for servers with fewer capabilities:
 * - no `filter`: fetchCommitTrees does a depth-1 fetch of the whole commit and drops the blobs
 *   (remembering their sizes, which then answer objectSizes without another request);
 * - no `object-info`: objectSizes fetches the blobs (in batches) and measures them;
 * - no `shallow`: the commit is fetched without `deepen` (only possible with `filter`,
 *   otherwise history would be fetched too, so this is refused with a PROTOCOL error).
 */
import { randomBytes } from "node:crypto";
import { createReadStream } from "node:fs";
import { rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { Readable } from "node:stream";
import { MesaError } from "../errors.js";
import type { Logger } from "../log.js";
import { VERSION } from "../version.js";
import {
  type Commit,
  entryType,
  isOid,
  type ObjectType,
  type Oid,
  parseCommit,
  parseTree,
  type TreeEntry,
} from "./objects.js";
import { type GitObject, PackParser, writePack } from "./pack.js";
import { isFileBlob, type PackObject, writePackFile } from "./pack-file.js";
import { type InflaterSink, PackInflater } from "./pack-inflater.js";
import { DELIM, FLUSH, PktReader, pkt, pktLines, pktText, serverError, splitPackets } from "./pktline.js";
import { GitHttp, type HttpResponse, type StreamBody, type TransportOptions } from "./transport.js";

/** Where the repository is and how to reach it (the transport's options). */
export type GitRemoteOptions = TransportOptions;

/** Protocol v2 capabilities: name → value ("" when the capability has no value). */
export type Capabilities = Map<string, string>;

export interface RemoteRef {
  name: string;
  oid: Oid;
  symrefTarget?: string;
}

export interface LsRefsResult {
  refs: RemoteRef[];
  /** HEAD: its symbolic target when it has one, and its oid (absent when HEAD is unborn). */
  head?: { target?: string; oid?: Oid };
}

export interface RefUpdate {
  ref: string;
  /** Expected current value; null = the ref must not exist yet. */
  old: Oid | null;
  /** New value; null = delete the ref. */
  new: Oid | null;
}

export interface FetchStats {
  requests: number;
  objects: number;
  bytes: number;
}

const ZERO_OID = "0".repeat(40);
const AGENT = `mesa/${VERSION}`;
const DEFAULT_BLOB_BATCH = 1000;
// upload-pack's fixed cost per request dominates object-info; 20,000 oids is ~1 MB of request (gzip ~half).
const OBJECT_INFO_BATCH = 20_000;
/** object-info requests in flight at once. */
const OBJECT_INFO_PARALLEL = 4;
const UPLOAD_HEADERS = {
  "content-type": "application/x-git-upload-pack-request",
  accept: "application/x-git-upload-pack-result",
  "git-protocol": "version=2",
};

function checkOids(oids: Oid[]): void {
  for (const o of oids) if (!isOid(o)) throw new MesaError("INVALID_ARGUMENT", `not an object id: '${o}'`);
}

function checkRefName(ref: string): void {
  if (
    !/^refs\/[^\s\0~^:?*[\\]+$/.test(ref) ||
    ref.includes("..") ||
    ref.endsWith("/") ||
    ref.endsWith(".lock")
  ) {
    throw new MesaError("INVALID_ARGUMENT", `invalid ref name '${ref}'`);
  }
}

export class GitRemote {
  private readonly http: GitHttp;
  private readonly logger?: Logger;
  private caps?: Promise<Capabilities>;
  /** Totals since construction, for `mesa stats` and the benchmark. */
  readonly stats: FetchStats = { requests: 0, objects: 0, bytes: 0 };
  /** Blob sizes learned from fallback full fetches, used by objectSizes before asking the server. */
  private readonly knownSizes = new Map<Oid, number>();

  constructor(opts: GitRemoteOptions) {
    this.http = new GitHttp(opts);
    this.logger = opts.logger;
  }

  get url(): string {
    return this.http.url;
  }

  /** The protocol v2 capability advertisement (cached after the first successful call). */
  capabilities(): Promise<Capabilities> {
    if (!this.caps) {
      this.caps = this.fetchCapabilities();
      this.caps.catch(() => {
        this.caps = undefined;
      });
    }
    return this.caps;
  }

  private async fetchCapabilities(): Promise<Capabilities> {
    this.stats.requests++;
    return this.http.run(
      { method: "GET", path: "/info/refs?service=git-upload-pack", headers: { "git-protocol": "version=2" } },
      async (res) => {
        expectContentType(res, "application/x-git-upload-pack-advertisement", this.url);
        const r = new PktReader(res.body);
        let line = await r.readLine();
        if (typeof line === "string" && line.startsWith("# service=")) {
          while (typeof line === "string") line = await r.readLine();
          line = await r.readLine();
        }
        if (line !== "version 2") {
          throw new MesaError("PROTOCOL", `${this.url} does not speak Git protocol v2`, {
            hint: "use a Git server ≥ 2.26 (protocol.version=2), such as `mesa serve`",
          });
        }
        const caps: Capabilities = new Map();
        for (;;) {
          const l = await r.readLine();
          if (typeof l !== "string") break;
          const eq = l.indexOf("=");
          if (eq < 0) caps.set(l, "");
          else caps.set(l.slice(0, eq), l.slice(eq + 1));
        }
        return caps;
      },
    );
  }

  private async hasFeature(cmd: string, feature: string): Promise<boolean> {
    const v = (await this.capabilities()).get(cmd);
    return v?.split(" ").includes(feature) === true;
  }

  /** Runs one protocol v2 command; `consume` reads the response packets. */
  private async command<T>(
    name: string,
    args: string[],
    consume: (r: PktReader, res: HttpResponse) => Promise<T>,
    signal?: AbortSignal,
  ): Promise<T> {
    const caps = await this.capabilities();
    if (!caps.has(name))
      throw new MesaError("PROTOCOL", `Git server at ${this.url} lacks the '${name}' command`);
    const head = [pkt(`command=${name}\n`)];
    if (caps.has("agent")) head.push(pkt(`agent=${AGENT}\n`));
    if (caps.has("object-format")) head.push(pkt("object-format=sha1\n"));
    const body = Buffer.concat([...head, DELIM, pktLines(args.map((a) => `${a}\n`)), FLUSH]);
    this.stats.requests++;
    return this.http.run(
      { method: "POST", path: "/git-upload-pack", headers: UPLOAD_HEADERS, body, gzip: true, signal },
      async (res) => {
        const r = new PktReader(res.body);
        try {
          return await consume(r, res);
        } finally {
          await r.close();
        }
      },
    );
  }

  /** Lists refs (with symref targets); HEAD is always asked for so its target is known. */
  async lsRefs(opts: { prefixes?: string[]; signal?: AbortSignal } = {}): Promise<LsRefsResult> {
    const args = ["symrefs"];
    if (await this.hasFeature("ls-refs", "unborn")) args.push("unborn");
    if (opts.prefixes && opts.prefixes.length > 0) {
      for (const p of [...opts.prefixes, "HEAD"]) {
        if (/[\s\0]/.test(p)) throw new MesaError("INVALID_ARGUMENT", `invalid ref prefix '${p}'`);
        args.push(`ref-prefix ${p}`);
      }
    }
    return this.command(
      "ls-refs",
      args,
      async (r) => {
        const result: LsRefsResult = { refs: [] };
        for (;;) {
          const line = await r.readLine();
          if (typeof line !== "string") {
            if (line.kind === "flush") break;
            throw new MesaError("CORRUPT_DATA", "truncated ls-refs response (no flush)");
          }
          const [oid, name, ...attrs] = line.split(" ");
          if (!oid || !name || (oid !== "unborn" && !isOid(oid))) {
            throw new MesaError("PROTOCOL", `malformed ls-refs line '${line.slice(0, 200)}'`);
          }
          const target = attrs.find((a) => a.startsWith("symref-target:"))?.slice("symref-target:".length);
          if (name === "HEAD") {
            result.head = { target, oid: oid === "unborn" ? undefined : oid };
            continue;
          }
          if (oid === "unborn") continue;
          result.refs.push(target ? { name, oid, symrefTarget: target } : { name, oid });
        }
        return result;
      },
      opts.signal,
    );
  }

  /**
   * One fetch: wants, optional filter and depth. Returns every object of the pack, each hashed
   * by us; the wanted ones are guaranteed present. Nothing is returned if anything is wrong.
   */
  async fetchObjects(
    oids: Oid[],
    opts: { filter?: string; depth?: number; signal?: AbortSignal } = {},
  ): Promise<Map<Oid, GitObject>> {
    checkOids(oids);
    const wants = [...new Set(oids)];
    if (wants.length === 0) return new Map();
    const args = wants.map((o) => `want ${o}`);
    if (opts.filter !== undefined) {
      if (!/^[a-z:0-9-]+$/.test(opts.filter))
        throw new MesaError("INVALID_ARGUMENT", `invalid filter '${opts.filter}'`);
      if (!(await this.hasFeature("fetch", "filter"))) {
        throw new MesaError("PROTOCOL", `Git server at ${this.url} does not support object filters`, {
          hint: "enable uploadpack.allowFilter on the server",
        });
      }
      args.push(`filter ${opts.filter}`);
    }
    if (opts.depth !== undefined) {
      if (!Number.isInteger(opts.depth) || opts.depth < 1)
        throw new MesaError("INVALID_ARGUMENT", "depth must be ≥ 1");
      if (await this.hasFeature("fetch", "shallow")) args.push(`deepen ${opts.depth}`);
      else if (opts.filter === undefined) {
        throw new MesaError(
          "PROTOCOL",
          `Git server at ${this.url} supports neither shallow fetches nor filters`,
        );
      }
    }
    args.push("no-progress", "ofs-delta", "done");
    const objects = await this.command("fetch", args, (r) => this.readFetchResponse(r), opts.signal);
    for (const o of wants) {
      if (!objects.has(o))
        throw new MesaError("CORRUPT_DATA", `server's pack lacks the requested object ${o}`);
    }
    this.stats.objects += objects.size;
    return objects;
  }

  private async readFetchResponse(r: PktReader): Promise<Map<Oid, GitObject>> {
    await skipToPackfile(r);
    const parser = new PackParser();
    for (;;) {
      const p = await r.read();
      if (p.kind === "flush") break;
      if (p.kind !== "data")
        throw new MesaError("CORRUPT_DATA", "truncated fetch response: pack stream ended early");
      const band = p.data[0];
      if (band === 1) {
        this.stats.bytes += p.data.length - 1;
        parser.push(p.data.subarray(1));
      } else if (band === 3) throw serverError(p.data.subarray(1).toString("utf8"));
      else if (band !== 2) throw new MesaError("PROTOCOL", `unknown side-band channel ${band}`);
    }
    return parser.end();
  }

  /** Whether the server advertises `object-info` (blob sizes without their content). */
  async hasObjectInfo(): Promise<boolean> {
    return (await this.capabilities()).has("object-info");
  }

  /** Whether the server's fetch accepts `filter` (trees without blobs). */
  async hasFilter(): Promise<boolean> {
    return this.hasFeature("fetch", "filter");
  }

  /**
   * The whole commit (depth 1) as one pack stream, as `git clone --depth 1` fetches it. The
   * pack is parsed and every object hashed in a worker thread; `onObject` gets the objects of
   * `types` as they arrive (a returned promise slows the stream down while it is pending), or,
   * with a `sink`, the worker writes the wanted blobs into its directory itself.
   * Objects handed over are whole and verified even when the stream then fails. `unresolved`
   * counts deltas whose base had to be dropped to bound memory: fetch those another way.
   */
  async streamCommit(
    commit: Oid,
    onObject: (oid: Oid, type: ObjectType, data: Buffer) => void | Promise<void>,
    opts: {
      types?: ObjectType[];
      signal?: AbortSignal;
      maxQueuedBytes?: number;
      sink?: InflaterSink;
      /** Awaited before each piece of the pack is handed on (the reader pauses meanwhile). */
      yieldTo?: () => Promise<void>;
    } = {},
  ): Promise<{ objects: number; unresolved: number; bytes: number }> {
    checkOids([commit]);
    if (!(await this.hasFeature("fetch", "shallow")))
      throw new MesaError("PROTOCOL", `Git server at ${this.url} does not support shallow fetches`);
    const args = [`want ${commit}`, "deepen 1", "no-progress", "ofs-delta", "done"];
    return this.command(
      "fetch",
      args,
      async (r) => {
        const inflater = new PackInflater({
          onObject,
          types: opts.types,
          maxQueuedBytes: opts.maxQueuedBytes,
          sink: opts.sink,
        });
        let bytes = 0;
        try {
          await skipToPackfile(r);
          for (;;) {
            const p = await r.read();
            if (p.kind === "flush") break;
            if (p.kind !== "data")
              throw new MesaError("CORRUPT_DATA", "truncated fetch response: pack stream ended early");
            const band = p.data[0];
            if (band === 1) {
              bytes += p.data.length - 1;
              this.stats.bytes += p.data.length - 1;
              if (opts.yieldTo) await opts.yieldTo();
              await inflater.push(p.data.subarray(1));
            } else if (band === 3) throw serverError(p.data.subarray(1).toString("utf8"));
            else if (band !== 2) throw new MesaError("PROTOCOL", `unknown side-band channel ${band}`);
          }
          const result = await inflater.end();
          this.stats.objects += result.objects;
          return { ...result, bytes };
        } finally {
          await inflater.close();
        }
      },
      opts.signal,
    );
  }

  /**
   * The commit and every tree reachable from it, in one fetch (filter blob:none, depth 1).
   * Without `filter` the whole commit is streamed instead; its blobs then go to `onBlob`
   * (and their sizes are remembered) rather than being thrown away.
   */
  async fetchCommitTrees(
    commit: Oid,
    opts: { signal?: AbortSignal; onBlob?: (oid: Oid, data: Buffer) => void | Promise<void> } = {},
  ): Promise<{ commit: Commit; trees: Map<Oid, TreeEntry[]> }> {
    checkOids([commit]);
    const filtered = await this.hasFeature("fetch", "filter");
    let objects: Map<Oid, GitObject>;
    if (filtered)
      objects = await this.fetchObjects([commit], { filter: "blob:none", depth: 1, signal: opts.signal });
    else {
      this.logger?.info(
        { url: this.url },
        "server lacks fetch filters; fetching the whole commit to list it",
      );
      objects = new Map();
      await this.streamCommit(
        commit,
        (oid, type, data) => {
          if (type !== "blob") {
            objects.set(oid, { type, data });
            return;
          }
          this.knownSizes.set(oid, data.length);
          return opts.onBlob?.(oid, data);
        },
        { signal: opts.signal },
      );
      if (!objects.has(commit))
        throw new MesaError("CORRUPT_DATA", `server's pack lacks the requested object ${commit}`);
    }
    const c = objects.get(commit)!;
    if (c.type !== "commit")
      throw new MesaError("INVALID_ARGUMENT", `${commit} is a ${c.type}, not a commit`);
    const parsed = parseCommit(c.data);
    const trees = new Map<Oid, TreeEntry[]>();
    const stack = [parsed.tree];
    while (stack.length > 0) {
      const oid = stack.pop()!;
      if (trees.has(oid)) continue;
      const t = objects.get(oid);
      if (t?.type !== "tree")
        throw new MesaError("CORRUPT_DATA", `server's pack lacks tree ${oid} of ${commit}`);
      const entries = parseTree(t.data);
      trees.set(oid, entries);
      for (const e of entries) {
        const kind = entryType(e.mode);
        if (kind === "tree") stack.push(e.oid);
      }
    }
    return { commit: parsed, trees };
  }

  /** Sizes this client already knows without asking (from a whole-commit fetch). */
  knownSizesOf(oids: Oid[]): Map<Oid, number> {
    const out = new Map<Oid, number>();
    for (const o of oids) {
      const s = this.knownSizes.get(o);
      if (s !== undefined) out.set(o, s);
    }
    return out;
  }

  /** Sizes of many objects: `object-info` in large batches; without it, fetch and measure. */
  async objectSizes(oids: Oid[], opts: { signal?: AbortSignal } = {}): Promise<Map<Oid, number>> {
    checkOids(oids);
    const out = new Map<Oid, number>();
    const ask: Oid[] = [];
    for (const o of new Set(oids)) {
      const known = this.knownSizes.get(o);
      if (known !== undefined) out.set(o, known);
      else ask.push(o);
    }
    const caps = await this.capabilities();
    if (!caps.has("object-info")) {
      this.logger?.debug(
        { url: this.url, count: ask.length },
        "server lacks object-info; fetching blobs for sizes",
      );
      const blobs = await this.fetchBlobs(ask, opts);
      for (const [o, b] of blobs) out.set(o, b.length);
      return out;
    }
    // Even batches, all at once: the server answers each in its own process, and the
    // responses are parsed while the others are still being produced.
    const n = Math.ceil(ask.length / OBJECT_INFO_BATCH);
    const per = Math.ceil(ask.length / Math.max(1, n));
    const batches: Oid[][] = [];
    for (let i = 0; i < ask.length; i += per) batches.push(ask.slice(i, i + per));
    const answers: Array<Map<Oid, number>> = [];
    for (let i = 0; i < batches.length; i += OBJECT_INFO_PARALLEL)
      answers.push(
        ...(await Promise.all(
          batches.slice(i, i + OBJECT_INFO_PARALLEL).map((b) => this.objectInfo(b, opts.signal)),
        )),
      );
    for (const [i, batch] of batches.entries())
      for (const o of batch) {
        const s = answers[i]!.get(o);
        if (s === undefined) throw new MesaError("NOT_FOUND", `object ${o} is not on the server`);
        out.set(o, s);
      }
    return out;
  }

  /** One object-info request: the sizes the server knows of `oids`. */
  private objectInfo(oids: Oid[], signal?: AbortSignal): Promise<Map<Oid, number>> {
    return this.command(
      "object-info",
      ["size", ...oids.map((o) => `oid ${o}`)],
      // `<oid> <size>\n` per object, well under 80 bytes each.
      async (r) => parseSizes(await r.rest(4096 + 80 * oids.length)),
      signal,
    );
  }

  /**
   * Blob contents by oid, in batches of `batchSize` wants per request. Every blob is verified
   * (its SHA-1 is its oid); a pack with anything missing, extra or not a blob is rejected.
   */
  async fetchBlobs(
    oids: Oid[],
    opts: { signal?: AbortSignal; batchSize?: number } = {},
  ): Promise<Map<Oid, Buffer>> {
    checkOids(oids);
    const wants = [...new Set(oids)];
    const batchSize = Math.max(1, opts.batchSize ?? DEFAULT_BLOB_BATCH);
    const out = new Map<Oid, Buffer>();
    for (let i = 0; i < wants.length; i += batchSize) {
      const batch = wants.slice(i, i + batchSize);
      const objects = await this.fetchObjects(batch, { signal: opts.signal });
      const wanted = new Set(batch);
      for (const [oid, obj] of objects) {
        if (!wanted.has(oid))
          throw new MesaError("CORRUPT_DATA", `server sent an object that was not requested: ${oid}`);
        if (obj.type !== "blob")
          throw new MesaError("CORRUPT_DATA", `object ${oid} is a ${obj.type}, not a blob`);
      }
      for (const [oid, obj] of objects) out.set(oid, obj.data);
    }
    return out;
  }

  /** The receive-pack ref advertisement: ref → oid, and the server's capabilities. */
  private async receivePackRefs(): Promise<{ refs: Map<string, Oid>; caps: Set<string> }> {
    this.stats.requests++;
    return this.http.run({ method: "GET", path: "/info/refs?service=git-receive-pack" }, async (res) => {
      expectContentType(res, "application/x-git-receive-pack-advertisement", this.url);
      const r = new PktReader(res.body);
      try {
        let line = await r.readLine();
        if (line === "# service=git-receive-pack") line = await r.readLine();
        if (typeof line !== "string" && line.kind === "flush") line = await r.readLine();
        const refs = new Map<string, Oid>();
        let caps = new Set<string>();
        let first = true;
        while (typeof line === "string") {
          let text = line;
          if (first) {
            const nul = text.indexOf("\0");
            if (nul >= 0) {
              caps = new Set(
                text
                  .slice(nul + 1)
                  .split(" ")
                  .filter(Boolean),
              );
              text = text.slice(0, nul);
            }
            first = false;
          }
          const [oid, name] = text.split(" ");
          if (!oid || !name || !isOid(oid)) {
            throw new MesaError(
              "PROTOCOL",
              `malformed receive-pack advertisement line '${text.slice(0, 200)}'`,
            );
          }
          if (name !== "capabilities^{}") refs.set(name, oid);
          line = await r.readLine();
        }
        if (line.kind !== "flush")
          throw new MesaError("CORRUPT_DATA", "truncated receive-pack advertisement");
        return { refs, caps };
      } finally {
        await r.close();
      }
    });
  }

  /**
   * Atomically updates refs with compare-and-swap, sending `objects` as one pack.
   * A ref whose current value is not `old` fails the whole push with CONFLICT
   * (details: ref, currentOid) and changes nothing.
   */
  /**
   * Updates refs with a pack of `objects`. A pack holding file blobs is written to a spool
   * file in `opts.spoolDir` (default: the system temp dir) and streamed from there, so its
   * size does not bound memory; other packs are built in memory.
   */
  async push(updates: RefUpdate[], objects: PackObject[], opts: { spoolDir?: string } = {}): Promise<void> {
    const spooled = objects.some(isFileBlob);
    const spool = spooled
      ? path.join(opts.spoolDir ?? tmpdir(), `.push-${randomBytes(8).toString("hex")}.pack`)
      : undefined;
    try {
      await this.pushWith(updates, objects, spool);
    } finally {
      if (spool) await rm(spool, { force: true });
    }
  }

  private async pushWith(
    updates: RefUpdate[],
    objects: PackObject[],
    spool: string | undefined,
  ): Promise<void> {
    if (updates.length === 0) return;
    const seen = new Set<string>();
    for (const u of updates) {
      checkRefName(u.ref);
      if (seen.has(u.ref))
        throw new MesaError("INVALID_ARGUMENT", `ref '${u.ref}' is updated twice in one push`);
      seen.add(u.ref);
      checkOids([u.old, u.new].filter((o): o is Oid => o !== null));
    }
    const noPack = updates.every((u) => u.new === null);
    let pack: Buffer | { file: string; length: number } | undefined;
    if (noPack) pack = undefined;
    else if (spool) pack = { file: spool, length: await writePackFile(objects, spool) };
    else pack = writePack(objects as GitObject[]);
    // A retried push whose first attempt landed finds every ref already at its new value.
    for (let attempt = 0; ; attempt++) {
      const { refs, caps } = await this.receivePackRefs();
      if (attempt > 0 && updates.every((u) => (refs.get(u.ref) ?? null) === u.new)) return;
      for (const u of updates) {
        const current = refs.get(u.ref) ?? null;
        if (current !== u.old) throw conflict(u.ref, current);
      }
      if (!caps.has("report-status")) throw new MesaError("PROTOCOL", "receive-pack lacks report-status");
      if (updates.length > 1 && !caps.has("atomic")) {
        throw new MesaError("PROTOCOL", "receive-pack lacks atomic pushes, refusing a multi-ref update");
      }
      if (updates.some((u) => u.new === null) && !caps.has("delete-refs")) {
        throw new MesaError("PROTOCOL", "receive-pack does not allow deleting refs");
      }
      const want = ["report-status", "side-band-64k", "atomic", "quiet"].filter((c) => caps.has(c));
      if (caps.has("agent")) want.push(`agent=${AGENT}`);
      const lines = updates.map((u, i) => {
        const cmd = `${u.old ?? ZERO_OID} ${u.new ?? ZERO_OID} ${u.ref}`;
        return pkt(i === 0 ? `${cmd}\0${want.join(" ")}` : cmd);
      });
      const commands = Buffer.concat([...lines, FLUSH]);
      const body: Buffer | StreamBody =
        pack === undefined
          ? commands
          : Buffer.isBuffer(pack)
            ? Buffer.concat([commands, pack])
            : streamedBody(commands, pack.file, pack.length);
      this.stats.requests++;
      let report: Map<string, string>;
      try {
        report = await this.http.run(
          {
            method: "POST",
            path: "/git-receive-pack",
            headers: {
              "content-type": "application/x-git-receive-pack-request",
              accept: "application/x-git-receive-pack-result",
            },
            body,
          },
          async (res) => readReport(res, want.includes("side-band-64k")),
        );
      } catch (err) {
        if (attempt === 0 && err instanceof MesaError && (err.code === "NETWORK" || err.code === "TIMEOUT")) {
          this.logger?.warn({ url: this.url, code: err.code }, "push response lost; checking refs");
          continue;
        }
        throw err;
      }
      const failed = updates.filter((u) => report.get(u.ref) !== "ok");
      if (failed.length === 0) return;
      const after = await this.receivePackRefs();
      if (updates.every((u) => (after.refs.get(u.ref) ?? null) === u.new)) return;
      for (const u of updates) {
        const current = after.refs.get(u.ref) ?? null;
        if (current !== u.old && current !== u.new) throw conflict(u.ref, current);
      }
      const f = failed[0]!;
      throw new MesaError(
        "PROTOCOL",
        `server rejected the update of ${f.ref}: ${report.get(f.ref) ?? "no status"}`,
        {
          details: { ref: f.ref },
        },
      );
    }
  }

  async close(): Promise<void> {
    await this.http.close();
  }
}

/** Sections before "packfile" (acknowledgments, shallow-info, wanted-refs) carry nothing we need. */
async function skipToPackfile(r: PktReader): Promise<void> {
  for (;;) {
    const line = await r.readLine();
    if (line === "packfile") return;
    if (typeof line !== "string" && (line.kind === "flush" || line.kind === "eof")) {
      throw new MesaError("CORRUPT_DATA", "truncated fetch response (no packfile section)");
    }
  }
}

/** A 200 answer that is not from a smart Git server (a login page, a dumb server) is refused early. */
function expectContentType(res: HttpResponse, want: string, url: string): void {
  const got = String(res.headers["content-type"] ?? "");
  if (!got.startsWith(want)) {
    throw new MesaError(
      "PROTOCOL",
      `${url} is not a Git smart HTTP endpoint (content-type '${got.slice(0, 80)}')`,
      {
        hint: "check the service URL",
      },
    );
  }
}

function conflict(ref: string, currentOid: Oid | null): MesaError {
  return new MesaError("CONFLICT", `${ref} moved on the server (now ${currentOid ?? "absent"})`, {
    details: { ref, currentOid },
    hint: "fetch the new state and rebase the change onto it",
  });
}

/** Reads report-status (possibly inside side-band-64k): ref → "ok" or the reason it failed. */
async function readReport(res: HttpResponse, sideband: boolean): Promise<Map<string, string>> {
  let source: AsyncIterable<Uint8Array> = res.body;
  if (sideband) {
    const outer = new PktReader(res.body);
    const chunks: Buffer[] = [];
    for (;;) {
      const p = await outer.read();
      if (p.kind === "flush" || p.kind === "eof") break;
      if (p.kind !== "data") continue;
      const band = p.data[0];
      if (band === 1) chunks.push(Buffer.from(p.data.subarray(1)));
      else if (band === 3) throw serverError(p.data.subarray(1).toString("utf8"));
    }
    source = (async function* () {
      yield Buffer.concat(chunks);
    })();
  }
  const r = new PktReader(source);
  const unpack = await r.readLine();
  if (typeof unpack !== "string" || !unpack.startsWith("unpack ")) {
    throw new MesaError("PROTOCOL", "receive-pack sent no report-status");
  }
  if (unpack !== "unpack ok") {
    throw new MesaError("SERVER", `server failed to store the pushed objects: ${unpack.slice(7)}`);
  }
  const report = new Map<string, string>();
  for (;;) {
    const line = await r.readLine();
    if (typeof line !== "string") break;
    const m = /^(ok|ng) (\S+)(?: (.*))?$/.exec(line);
    if (!m) continue;
    report.set(m[2]!, m[1] === "ok" ? "ok" : (m[3] ?? "rejected"));
  }
  return report;
}

/** The receive-pack request body: the commands, then the spooled pack, read afresh per attempt. */
function streamedBody(commands: Buffer, packFile: string, packLength: number): StreamBody {
  return {
    length: commands.length + packLength,
    open: () =>
      Readable.from(
        (async function* () {
          yield commands;
          yield* createReadStream(packFile, { highWaterMark: 1 << 20 });
        })(),
      ),
  };
}

/**
 * An object-info response, parsed in one pass (20,000 lines read one await at a time took
 * ~10 µs each): `size`, then `<oid> <size>` per object (`<oid> ` when the server lacks it),
 * then a flush.
 */
function parseSizes(body: Buffer): Map<Oid, number> {
  const packets = splitPackets(body);
  const end = packets.findIndex((p) => p.kind !== "data");
  if (end < 0 || packets[end]?.kind !== "flush")
    throw new MesaError("CORRUPT_DATA", "truncated object-info response (no flush)");
  const got = new Map<Oid, number>();
  for (const [i, p] of packets.slice(0, end).entries()) {
    const line = pktText((p as { data: Buffer }).data);
    if (line.startsWith("ERR ")) throw serverError(line.slice(4));
    if (i === 0) {
      if (line !== "size") throw new MesaError("PROTOCOL", "object-info response lacks the size attribute");
      continue;
    }
    const m = /^([0-9a-f]{40}) ?(\d*)$/.exec(line);
    if (!m) throw new MesaError("PROTOCOL", `malformed object-info line '${line.slice(0, 200)}'`);
    if (m[2] !== "") got.set(m[1] as string, Number(m[2]));
  }
  if (end === 0) throw new MesaError("PROTOCOL", "object-info response lacks the size attribute");
  return got;
}
