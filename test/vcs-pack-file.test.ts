/**
 * Spooled packs for large pushes: a pack holding file blobs is what the real `git index-pack`
 * accepts, and a file that changed after it was hashed aborts the pack instead of sending it
 * under the wrong oid.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { isMesaError } from "../src/errors.js";
import { hashObject } from "../src/vcs/objects.js";
import { hashBlobFile, writePackFile } from "../src/vcs/pack-file.js";

test("a spooled pack of file blobs and in-memory objects is a valid pack for git index-pack", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "mesa-packfile-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const big = Buffer.alloc(3 * 1024 * 1024 + 17);
  for (let i = 0; i + 4 <= big.length; i += 4096) big.writeUInt32LE((i * 2654435761) >>> 0, i);
  writeFileSync(join(dir, "big"), big);
  writeFileSync(join(dir, "empty"), "");
  const bigBlob = await hashBlobFile(join(dir, "big"));
  const emptyBlob = await hashBlobFile(join(dir, "empty"));
  assert.deepEqual(bigBlob, { oid: hashObject("blob", big), size: big.length });
  assert.deepEqual(emptyBlob, { oid: hashObject("blob", Buffer.alloc(0)), size: 0 });
  const small = Buffer.from("small\n");

  const pack = join(dir, "out.pack");
  const length = await writePackFile(
    [
      { type: "blob", file: join(dir, "big"), ...bigBlob },
      { type: "blob", file: join(dir, "empty"), ...emptyBlob },
      { type: "blob", data: small },
    ],
    pack,
  );
  assert.ok(length > 0);
  execFileSync("git", ["init", "-q", "--bare", join(dir, "repo.git")]);
  execFileSync("git", [
    "--git-dir",
    join(dir, "repo.git"),
    "index-pack",
    "--strict",
    "-o",
    join(dir, "out.idx"),
    pack,
  ]);
  const listed = execFileSync("git", ["verify-pack", "-v", join(dir, "out.idx")], { encoding: "utf8" });
  for (const oid of [bigBlob.oid, emptyBlob.oid, hashObject("blob", small)])
    assert.match(listed, new RegExp(`^${oid} blob`, "m"));
});

test("a file changed after hashing aborts the pack with contentChanged", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "mesa-packfile-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, "f"), "before\n");
  const blob = await hashBlobFile(join(dir, "f"));
  writeFileSync(join(dir, "f"), "after!\n");
  await assert.rejects(
    writePackFile([{ type: "blob", file: join(dir, "f"), ...blob }], join(dir, "out.pack")),
    (err: unknown) => isMesaError(err, "ABORTED") && err.details?.contentChanged === true,
  );
});
