/**
 * Worker thread of `PackInflater`: parses a pack stream (inflation, delta resolution, SHA-1 of
 * every object, the pack's trailer) off the main thread and posts the objects back in batches.
 */
import { parentPort, workerData } from "node:worker_threads";
import type { ObjectType, Oid } from "./objects.js";
import { PackParser } from "./pack.js";

export type ToWorker = { t: "chunk"; data: Uint8Array } | { t: "end" };

export interface WorkerOptions {
  /** Object types to post back (default: all). */
  types?: string[];
  /** Bytes of objects kept as delta bases. */
  baseCacheBytes?: number;
}

export interface WorkerObject {
  oid: Oid;
  type: ObjectType;
  data: Uint8Array;
}

export type FromWorker =
  | { t: "objects"; objects: WorkerObject[]; bytes: number }
  | { t: "done"; objects: number; unresolved: number }
  | { t: "error"; message: string; code?: string };

const port = parentPort;
if (port) {
  let batch: WorkerObject[] = [];
  const opts = (workerData ?? {}) as WorkerOptions;
  const wantTypes = opts.types ? new Set(opts.types) : undefined;
  const parser = new PackParser({
    onObject: (oid, type, data) => {
      if (!wantTypes || wantTypes.has(type)) batch.push({ oid, type, data });
    },
    baseCacheBytes: opts.baseCacheBytes,
  });
  let failed = false;
  const fail = (err: unknown) => {
    failed = true;
    const e = err as { message?: string; code?: string };
    port.postMessage({ t: "error", message: e.message ?? String(err), code: e.code } satisfies FromWorker);
  };
  port.on("message", (msg: ToWorker) => {
    if (failed) return;
    try {
      if (msg.t === "chunk") {
        parser.push(msg.data);
        const objects = batch;
        batch = [];
        // The objects are copied into the message: the parser keeps its own as delta bases.
        port.postMessage({ t: "objects", objects, bytes: msg.data.length } satisfies FromWorker);
      } else {
        parser.end();
        const objects = batch;
        batch = [];
        if (objects.length > 0) port.postMessage({ t: "objects", objects, bytes: 0 } satisfies FromWorker);
        port.postMessage({
          t: "done",
          objects: parser.objectsParsed,
          unresolved: parser.unresolved,
        } satisfies FromWorker);
      }
    } catch (err) {
      fail(err);
    }
  });
}
