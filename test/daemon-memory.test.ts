import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { test } from "node:test";
import { promisify } from "node:util";
import { startReclaimer } from "../src/daemon/memory.js";

const run = promisify(execFile);
const MEMORY_MODULE = new URL("../src/daemon/memory.js", import.meta.url).href;
const NATIVE_MODULE = new URL("../src/fuse/native.js", import.meta.url).href;

/**
 * In a Node started as `mount -d` starts the daemon (--expose-gc): 24 MB of 64 KB buffers,
 * dropped as soon as made, which by themselves prompt no collection; the reclaimer collects
 * them, trims the C heap, and its stats say so.
 */
const SCRIPT = `
import { startReclaimer } from ${JSON.stringify(MEMORY_MODULE)};
import { loadBinding } from ${JSON.stringify(NATIVE_MODULE)};
const binding = loadBinding();
let trims = 0;
const r = startReclaimer({
  collect: (type) => globalThis.gc({ type }),
  trim: () => { trims++; if (typeof binding.trimMemory() !== "number") throw new Error("trimMemory"); },
  intervalMs: 20,
});
let sink = 0;
const before = process.memoryUsage().arrayBuffers;
for (let i = 0; i < 384; i++) sink += new Uint8Array(64 << 10).length;
const peak = process.memoryUsage().arrayBuffers;
await new Promise((res) => setTimeout(res, 300));
const after = process.memoryUsage().arrayBuffers;
r.stop();
console.log(JSON.stringify({ before, peak, after, sink, trims, stats: r.stats() }));
`;

test("memory reclaimer: dead buffers nothing else collects are collected, and the C heap trimmed", async () => {
  const { stdout } = await run(process.execPath, ["--expose-gc", "--input-type=module", "-e", SCRIPT], {
    timeout: 30_000,
  });
  const o = JSON.parse(stdout) as {
    before: number;
    peak: number;
    after: number;
    trims: number;
    stats: { minor: number; major: number; ms: number };
  };
  // Without the reclaimer the buffers stay (no heap allocation prompts a collection).
  assert.ok(o.peak - o.before >= 16 << 20, `buffers were not held: ${JSON.stringify(o)}`);
  assert.ok(o.stats.minor + o.stats.major >= 1, `no collection: ${JSON.stringify(o)}`);
  assert.ok(o.after - o.before < 4 << 20, `buffers still held: ${JSON.stringify(o)}`);
  assert.ok(o.trims >= 1, `never trimmed: ${JSON.stringify(o)}`);
});

test("memory reclaimer: a full collection per heap step, at most one a second; young ones for buffers", async () => {
  let heap = 40 << 20;
  let buffers = 0;
  const calls: string[] = [];
  const r = startReclaimer({
    usage: () => ({ heap, buffers }),
    collect: (type) => {
      calls.push(type);
      if (type === "major") heap = 40 << 20;
      buffers = 0;
    },
    trim: () => calls.push("trim"),
    intervalMs: 10,
    minMajorGapMs: 200,
  });
  try {
    const tick = () => new Promise((res) => setTimeout(res, 40));
    heap += 15 << 20; // below the step (16 MB; a quarter of 40 MB is less)
    await tick();
    assert.deepEqual(calls, []);
    heap += 2 << 20;
    await tick();
    assert.deepEqual(calls, ["major", "trim"]);
    heap += 20 << 20; // again, but within the gap: a young collection only when buffers grew
    buffers = 9 << 20;
    await tick();
    assert.deepEqual(calls, ["major", "trim", "minor", "trim"]);
    await new Promise((res) => setTimeout(res, 250));
    assert.deepEqual(calls.slice(4), ["major", "trim"]);
    assert.deepEqual({ ...r.stats(), ms: 0 }, { minor: 1, major: 2, ms: 0 });
  } finally {
    r.stop();
  }
});

test("memory reclaimer: without gc (a foreground daemon) it trims once per step", async () => {
  let heap = 40 << 20;
  let trims = 0;
  const r = startReclaimer({
    usage: () => ({ heap, buffers: 0 }),
    trim: () => trims++,
    intervalMs: 10,
    minMajorGapMs: 0,
  });
  try {
    heap += 17 << 20;
    await new Promise((res) => setTimeout(res, 100));
    assert.equal(trims, 1);
    assert.deepEqual(r.stats(), { minor: 0, major: 0, ms: 0 });
  } finally {
    r.stop();
  }
});
