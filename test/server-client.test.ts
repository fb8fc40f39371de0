/**
 * RestClient failure mapping against small local servers on 127.0.0.1: refused connections,
 * silent servers, non-JSON bodies, error bodies, and pagination that must terminate.
 */
import assert from "node:assert/strict";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, describe, it } from "node:test";
import { isMesaError } from "../src/errors.js";
import { RestClient } from "../src/vcs/rest.js";

let server: http.Server;
let url: string;
const sockets = new Set<import("node:net").Socket>();

before(async () => {
  server = http.createServer((req, res) => {
    if (req.url?.startsWith("/v1/silent")) return; // never answers
    if (req.url?.startsWith("/v1/html")) {
      res.writeHead(200, { "content-type": "text/html" });
      return res.end("<html>");
    }
    if (req.url?.startsWith("/v1/whoami")) {
      assert.equal(req.headers.authorization, "Bearer secret-cred");
      res.writeHead(409, { "content-type": "application/json" });
      return res.end(
        JSON.stringify({ error: { code: "MERGE_CONFLICT", message: "nope", details: { paths: ["a"] } } }),
      );
    }
    if (req.url?.startsWith("/v1/o/repos")) {
      // A broken server that always says there is more with the same cursor.
      res.writeHead(200, { "content-type": "application/json" });
      return res.end(JSON.stringify({ repos: [{ name: "x" }], next_cursor: "same", has_more: true }));
    }
    res.writeHead(502);
    res.end("bad gateway");
  });
  server.on("connection", (s) => {
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
after(async () => {
  for (const s of sockets) s.destroy();
  await new Promise((r) => server.close(r));
});

async function code(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return "ok";
  } catch (err) {
    assert.ok(isMesaError(err), String(err));
    assert.ok(!err.message.includes("secret-cred"), "the credential must not appear in errors");
    return err.code;
  }
}

describe("RestClient errors", () => {
  it("maps transport failures and statuses to typed errors", async () => {
    const c = new RestClient({ serviceUrl: url, credential: "secret-cred", timeoutMs: 500 });
    try {
      assert.equal(await code(c.request("GET", "/silent")), "TIMEOUT");
      assert.equal(await code(c.request("GET", "/html")), "PROTOCOL");
      assert.equal(await code(c.request("GET", "/other")), "SERVER");
      await assert.rejects(c.whoami(), (e: unknown) => {
        assert.ok(isMesaError(e, "CONFLICT"));
        assert.equal(e.details?.apiCode, "MERGE_CONFLICT");
        assert.deepEqual(e.details?.paths, ["a"]);
        assert.equal(e.details?.status, 409);
        return true;
      });
      const seen: unknown[] = [];
      for await (const r of c.listRepos("o")) seen.push(r);
      assert.equal(seen.length, 2, "a repeated cursor ends the walk");
    } finally {
      await c.close();
    }
    const refused = new RestClient({
      serviceUrl: "http://127.0.0.1:1",
      credential: "secret-cred",
      timeoutMs: 2000,
    });
    try {
      assert.equal(await code(refused.whoami()), "NETWORK");
    } finally {
      await refused.close();
    }
  });
  it("rejects bad service URLs", () => {
    assert.throws(() => new RestClient({ serviceUrl: "nope", credential: "x" }), /invalid service URL/);
    assert.throws(() => new RestClient({ serviceUrl: "ftp://h", credential: "x" }), /http/);
    assert.throws(() => new RestClient({ serviceUrl: "http://u:p@h", credential: "x" }), /credentials/);
  });
});
