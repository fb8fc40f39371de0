/**
 * Parses a pack stream in a worker thread, so inflation and SHA-1 checks never hold up the
 * main thread (where FUSE requests are answered). Bytes are pushed as they arrive from the
 * network; objects come back, each already hashed by the worker (its oid is its content's
 * hash). `push` waits while the worker or the consumer is behind, which slows the network
 * read instead of piling data up in memory.
 */
import { Worker } from "node:worker_threads";
import type { StreamedBlob } from "../cache/disk-cache.js";
import { MesaError } from "../errors.js";
import type { ObjectType, Oid } from "./objects.js";
import type { BlobSink, FromWorker, ToWorker, WorkerOptions } from "./pack-worker.js";

/** Wanted blobs go straight to a blob directory; the consumer hears what was stored. */
export interface InflaterSink extends BlobSink {
  onStored(blobs: StreamedBlob[]): void;
  /** Its budget ran out (or a write failed): nothing more is stored. */
  onFull(): void;
}

export interface InflaterOptions extends Omit<WorkerOptions, "sink"> {
  /** Called for every object (of `types`) not given to `sink`; a returned promise counts against `maxPendingBytes`. */
  onObject: (oid: Oid, type: ObjectType, data: Buffer) => void | Promise<void>;
  sink?: InflaterSink;
  /** Pack bytes handed to the worker and not parsed yet, at most (default 2 MiB). */
  maxQueuedBytes?: number;
  /** Object bytes the consumer is still working on (its promises), at most (default 4 MiB). */
  maxPendingBytes?: number;
}

export interface InflaterResult {
  /** Objects in the pack. */
  objects: number;
  /** Deltas skipped because their base was no longer held (fetch those another way). */
  unresolved: number;
}

const WORKER_URL = new URL("./pack-worker.js", import.meta.url);

export class PackInflater {
  private readonly worker: Worker;
  private readonly onObject: InflaterOptions["onObject"];
  private readonly sink?: InflaterSink;
  private sinkFull = false;
  private readonly maxQueued: number;
  private readonly maxPending: number;
  private queued = 0;
  private pending = 0;
  private readonly consumers = new Set<Promise<void>>();
  private error?: MesaError;
  private waiters: Array<() => void> = [];
  private finished?: { resolve: (r: InflaterResult) => void; reject: (e: Error) => void };
  private result?: InflaterResult;
  private terminated = false;
  private exited = false;
  private onStopped?: () => void;

  constructor(opts: InflaterOptions) {
    this.onObject = opts.onObject;
    this.sink = opts.sink;
    this.maxQueued = opts.maxQueuedBytes ?? 2 << 20;
    this.maxPending = opts.maxPendingBytes ?? 4 << 20;
    const s = opts.sink;
    const data: WorkerOptions = {
      types: opts.types,
      baseCacheBytes: opts.baseCacheBytes,
      sink: s && {
        objects: s.objects,
        blockSize: s.blockSize,
        budget: s.budget,
        oids: s.oids,
        segments: s.segments,
      },
    };
    // A small young generation: the worker allocates much short-lived garbage (inflate output),
    // which a large one would let grow into tens of MB of resident memory (1 MB against 4:
    // peak RSS 185-193 against 192-198 MB, the stream no slower, in three pairs of mounts).
    this.worker = new Worker(WORKER_URL, {
      workerData: data,
      resourceLimits: { maxYoungGenerationSizeMb: 1, maxOldGenerationSizeMb: 256 },
    });
    this.worker.on("message", (m: FromWorker) => this.onMessage(m));
    this.worker.on("error", (err) => this.failWith(new MesaError("INTERNAL", `pack worker: ${err.message}`)));
    this.worker.on("exit", () => {
      this.exited = true;
      this.onStopped?.();
      if (!this.result && !this.terminated)
        this.failWith(new MesaError("INTERNAL", "pack worker exited unexpectedly"));
    });
  }

  /** Hands pack bytes to the worker; resolves when more may be pushed. */
  async push(chunk: Uint8Array): Promise<void> {
    if (this.error) throw this.error;
    this.queued += chunk.length;
    // A copy the worker owns: the caller's chunk may be a view into a reused buffer.
    const own = new Uint8Array(chunk);
    this.worker.postMessage({ t: "chunk", data: own } satisfies ToWorker, [own.buffer]);
    while (!this.error && (this.queued > this.maxQueued || this.pending > this.maxPending))
      await new Promise<void>((resolve) => this.waiters.push(resolve));
    if (this.error) throw this.error;
  }

  /** The stream ended: resolves once every object was handed over (and consumed), or rejects. */
  async end(): Promise<InflaterResult> {
    if (this.error) throw this.error;
    const done = new Promise<InflaterResult>((resolve, reject) => {
      this.finished = { resolve, reject };
    });
    this.worker.postMessage({ t: "end" } satisfies ToWorker);
    const r = await done;
    await Promise.all([...this.consumers]);
    if (this.error) throw this.error;
    return r;
  }

  /** Stops the worker (always call it, also after `end`). */
  async close(): Promise<void> {
    // Blobs the worker wrote must be booked before it goes: it posts them all before `stopped`.
    if (this.sink && !this.result && !this.exited) {
      const stopped = new Promise<void>((resolve) => {
        this.onStopped = resolve;
        setTimeout(resolve, 5_000).unref();
      });
      this.worker.postMessage({ t: "stop" } satisfies ToWorker);
      await stopped;
    }
    this.terminated = true;
    await this.worker.terminate();
    this.failWith(new MesaError("ABORTED", "pack stream closed"));
  }

  private onMessage(m: FromWorker): void {
    if (m.t === "objects") {
      this.queued -= m.bytes;
      if (m.stored.length > 0) this.sink?.onStored(m.stored);
      if (m.full && !this.sinkFull) {
        this.sinkFull = true;
        this.sink?.onFull();
      }
      for (const o of m.objects) {
        const data = Buffer.from(o.data.buffer, o.data.byteOffset, o.data.byteLength);
        let r: void | Promise<void>;
        try {
          r = this.onObject(o.oid, o.type, data);
        } catch (err) {
          this.failWith(asMesaError(err));
          return;
        }
        if (r) {
          const size = data.length;
          this.pending += size;
          const p: Promise<void> = r.then(
            () => undefined,
            (err: unknown) => this.failWith(asMesaError(err)),
          );
          this.consumers.add(p);
          void p.finally(() => {
            this.consumers.delete(p);
            this.pending -= size;
            this.wake();
          });
        }
      }
      this.wake();
    } else if (m.t === "stopped") {
      this.onStopped?.();
    } else if (m.t === "done") {
      this.result = { objects: m.objects, unresolved: m.unresolved };
      this.finished?.resolve(this.result);
    } else {
      this.failWith(new MesaError(m.code === "CORRUPT_DATA" ? "CORRUPT_DATA" : "INTERNAL", m.message));
    }
  }

  private failWith(err: MesaError): void {
    if (!this.error) {
      this.error = err;
      if (!this.result) this.finished?.reject(err);
    }
    this.wake();
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const resolve of w) resolve();
  }
}

function asMesaError(err: unknown): MesaError {
  if (err instanceof MesaError) return err;
  return new MesaError("INTERNAL", err instanceof Error ? err.message : String(err));
}
