import assert from "node:assert/strict";
import { test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { ForegroundActivity } from "../src/cache/foreground.js";

/** Calls `fn` every 5 ms until the returned stop function is called. */
function every5ms(fn: () => void): () => void {
  fn();
  const t = setInterval(fn, 5);
  return () => clearInterval(t);
}

test("foreground: a stream waits while listings arrive, goes on when they stop or a read comes, and never waits long", async () => {
  const f = new ForegroundActivity();
  // Nothing going on: no wait.
  let t0 = performance.now();
  await f.quiet();
  assert.ok(performance.now() - t0 < 20, "waited with nothing going on");

  // A walk of 120 ms: the stream goes on only after it.
  const stopWalk = every5ms(() => f.listed());
  t0 = performance.now();
  setTimeout(stopWalk, 120);
  await f.quiet();
  const waited = performance.now() - t0;
  assert.ok(waited >= 110, `went on during the walk (after ${waited.toFixed(0)} ms)`);

  // A read during a walk: the stream is wanted at once.
  const stopAgain = every5ms(() => f.listed());
  try {
    setTimeout(() => f.read(), 30);
    t0 = performance.now();
    await f.quiet();
    assert.ok(performance.now() - t0 < 120, "a read did not end the wait");
    await sleep(2100); // the read is no longer recent
    // A walk that does not end: each wait is bounded.
    t0 = performance.now();
    await f.quiet();
    const bounded = performance.now() - t0;
    assert.ok(bounded >= 200 && bounded < 600, `wait of ${bounded.toFixed(0)} ms`);
  } finally {
    stopAgain();
  }
});

test("foreground: a stream starts after a short grace, at once when something is being read", async () => {
  const f = new ForegroundActivity();
  let t0 = performance.now();
  await f.beforeStream();
  const grace = performance.now() - t0;
  assert.ok(grace >= 140 && grace < 500, `grace of ${grace.toFixed(0)} ms`);
  f.read();
  t0 = performance.now();
  await f.beforeStream();
  assert.ok(performance.now() - t0 < 50, "waited although content was being read");
});
