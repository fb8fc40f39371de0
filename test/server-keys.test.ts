/**
 * Key management is scoped: an admin key limited to repos lists and revokes only keys within its
 * own rights (others answer 404, as if missing), the last org-wide admin key cannot be revoked,
 * and `mesa serve admin-key` recovers an org-wide admin key from the data dir, server running or
 * not. Also: the framework's own errors (414, 431) have the documented error shape.
 */
import assert from "node:assert/strict";
import { request } from "node:http";
import { after, before, describe, it } from "node:test";
import { fixture } from "./helpers/fixture.js";
import { runMesa, type ServeHandle } from "./helpers/serve.js";

// biome-ignore lint/suspicious/noExplicitAny: response bodies are checked field by field
type Json = any;

let srv: ServeHandle;

async function http(method: string, path: string, key: string, body?: unknown) {
  const headers: Record<string, string> = { authorization: `Bearer ${key}` };
  if (body !== undefined) headers["content-type"] = "application/json";
  const res = await fetch(`${srv.url}${path}`, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(20_000),
  });
  const text = await res.text();
  return { status: res.status, text, json: JSON.parse(text) as Json };
}

async function newKey(creator: string, scopes: string[], repos: string[] | null) {
  const r = await http("POST", "/v1/local/api-keys", creator, { scopes, repos });
  assert.equal(r.status, 201, r.text);
  return { id: r.json.id as string, key: r.json.key as string };
}

const suite = fixture({ after }, "server-keys");

before(async () => {
  srv = await suite.serve();
  for (const name of ["r1", "r2"])
    assert.equal((await http("POST", "/v1/local/repos", srv.adminKey, { name })).status, 201);
});

describe("admin keys limited to repos", () => {
  it("list and revoke only keys within their rights; others are 404 and reveal nothing", async () => {
    const adminId = (await http("GET", "/v1/whoami", srv.adminKey)).json.key_id as string;
    const r1Admin = await newKey(srv.adminKey, ["admin"], ["local/r1"]);
    const r1Read = await newKey(srv.adminKey, ["read"], ["local/r1"]);
    const r2Read = await newKey(srv.adminKey, ["read"], ["local/r2"]);
    const bothRead = await newKey(srv.adminKey, ["read"], ["local/r1", "local/r2"]);
    const orgRead = await newKey(srv.adminKey, ["read"], null);

    const listed = await http("GET", "/v1/local/api-keys", r1Admin.key);
    assert.equal(listed.status, 200);
    assert.deepEqual(
      listed.json.api_keys.map((k: { id: string }) => k.id).sort(),
      [r1Admin.id, r1Read.id].sort(),
    );
    assert.ok(!listed.text.includes("local/r2"), listed.text);
    assert.deepEqual((await http("GET", "/v1/local/public-keys", r1Admin.key)).json.public_keys, []);

    const missing = await http("DELETE", "/v1/local/api-keys/aaaaaaaaaaaaaaaa", r1Admin.key);
    assert.equal(missing.status, 404);
    for (const outside of [adminId, r2Read.id, bothRead.id, orgRead.id]) {
      const r = await http("DELETE", `/v1/local/api-keys/${outside}`, r1Admin.key);
      assert.equal(r.status, 404, outside);
      assert.deepEqual(r.json, {
        error: { code: "NOT_FOUND", message: `API key ${outside} not found` },
      });
    }
    assert.equal((await http("GET", "/v1/whoami", srv.adminKey)).status, 200);
    assert.equal((await http("GET", "/v1/whoami", r2Read.key)).status, 200);

    const revoked = await http("DELETE", `/v1/local/api-keys/${r1Read.id}`, r1Admin.key);
    assert.equal(revoked.status, 200);
    assert.equal(revoked.json.revoked, true);
    assert.equal((await http("GET", "/v1/whoami", r1Read.key)).status, 401);

    // The org-wide admin sees every key.
    const all = (await http("GET", "/v1/local/api-keys?limit=100", srv.adminKey)).json.api_keys;
    for (const id of [adminId, r1Admin.id, r2Read.id, bothRead.id, orgRead.id])
      assert.ok(
        all.some((k: { id: string }) => k.id === id),
        id,
      );
  });
});

describe("org-wide admin keys", () => {
  it("the last one cannot be revoked; another org-wide admin can revoke one; admin-key recovers", async () => {
    const adminId = (await http("GET", "/v1/whoami", srv.adminKey)).json.key_id as string;
    const last = await http("DELETE", `/v1/local/api-keys/${adminId}`, srv.adminKey);
    assert.equal(last.status, 409);
    assert.equal(last.json.error.code, "LAST_ADMIN_KEY");
    assert.equal((await http("GET", "/v1/whoami", srv.adminKey)).status, 200);

    const second = await newKey(srv.adminKey, ["admin"], null);
    assert.equal((await http("DELETE", `/v1/local/api-keys/${adminId}`, second.key)).status, 200);
    assert.equal((await http("GET", "/v1/whoami", srv.adminKey)).status, 401);
    const alone = await http("DELETE", `/v1/local/api-keys/${second.id}`, second.key);
    assert.equal(alone.status, 409);
    assert.equal(alone.json.error.code, "LAST_ADMIN_KEY");

    // Recovery while the server runs: the server takes the new key in at once.
    const minted = await runMesa(["serve", "admin-key", "--org", "local", "--data-dir", srv.dataDir]);
    assert.equal(minted.code, 0, minted.stderr);
    const recovered = /^admin key: (mesa_live_\S+)\n$/.exec(minted.stdout)?.[1];
    assert.ok(recovered, minted.stdout);
    const who = await http("GET", "/v1/whoami", recovered);
    assert.equal(who.status, 200);
    assert.deepEqual([who.json.scopes, who.json.repos], [["read", "write", "admin"], null]);
    assert.equal((await http("DELETE", `/v1/local/api-keys/${second.id}`, recovered)).status, 200);

    const unknown = await runMesa(["serve", "admin-key", "--org", "nope", "--data-dir", srv.dataDir]);
    assert.equal(unknown.code, 1);
    assert.equal(
      unknown.stderr,
      "mesa: organization nope does not exist in this data dir: start the server once with --org nope to create it\n",
    );
  });

  it("admin-key writes the data dir directly when no server runs", async (t) => {
    const fx = fixture(t, "serve-offline");
    const dataDir = fx.dir;
    await (await fx.serve({ dataDir })).stop();
    const minted = await runMesa(["serve", "admin-key", "--org", "local", "--data-dir", dataDir]);
    assert.equal(minted.code, 0, minted.stderr);
    const key = /^admin key: (mesa_live_\S+)\n$/.exec(minted.stdout)?.[1];
    assert.ok(key, minted.stdout);
    const again = await fx.serve({ dataDir });
    const res = await fetch(`${again.url}/v1/whoami`, { headers: { authorization: `Bearer ${key}` } });
    assert.equal(res.status, 200);
    assert.equal(((await res.json()) as Json).repos, null);
  });
});

function rawGet(path: string, headers: Record<string, string>): Promise<{ status: number; body: string }> {
  const url = new URL(srv.url);
  return new Promise((resolve, reject) => {
    const req = request(
      { host: url.hostname, port: url.port, path, method: "GET", headers, timeout: 20_000 },
      (res) => {
        let body = "";
        res.setEncoding("utf8");
        res.on("data", (d: string) => {
          body += d;
        });
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
      },
    );
    req.on("error", reject);
    req.end();
  });
}

describe("framework errors have the documented shape", () => {
  it("414 for an over-long path component, 431 for oversized headers", async () => {
    const long = await rawGet(`/v1/local/${"a".repeat(2000)}`, { authorization: `Bearer ${srv.adminKey}` });
    assert.equal(long.status, 414);
    assert.deepEqual(JSON.parse(long.body), {
      error: { code: "URI_TOO_LONG", message: "a path component is too long" },
    });
    const big = await rawGet("/v1/whoami", { "x-big": "a".repeat(20_000) });
    assert.equal(big.status, 431);
    assert.deepEqual(JSON.parse(big.body), {
      error: { code: "HEADERS_TOO_LARGE", message: "request headers too large" },
    });
  });
});
