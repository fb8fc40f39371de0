/**
 * `mesa serve` under hostile or stuck clients: a git that hangs is killed and reported as
 * 500, oversized bodies are refused before they are read, a stalled client does not block
 * others; plus `mesa repo list [--all]` against the server.
 */
import assert from "node:assert/strict";
import { writeFile } from "node:fs/promises";
import net from "node:net";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { RestClient } from "../src/vcs/rest.js";
import { fixture } from "./helpers/fixture.js";
import { runMesa, type ServeHandle } from "./helpers/serve.js";

let srv: ServeHandle;
let api: RestClient;
let tmp: string;

/** Sends raw bytes and returns the first response line, or "closed"/"timeout". */
function rawRequest(
  head: string,
  body: string,
  waitMs: number,
): Promise<{ status: string; socket: net.Socket }> {
  const u = new URL(srv.url);
  return new Promise((resolve) => {
    const socket = net.connect(Number(u.port), u.hostname);
    let data = "";
    const timer = setTimeout(() => resolve({ status: "timeout", socket }), waitMs);
    socket.on("data", (d) => {
      data += d.toString("latin1");
      const line = data.split("\r\n")[0]!;
      if (data.includes("\r\n")) {
        clearTimeout(timer);
        resolve({ status: line, socket });
      }
    });
    socket.on("error", () => {});
    socket.on("close", () => {
      clearTimeout(timer);
      resolve({ status: data.split("\r\n")[0] || "closed", socket });
    });
    socket.write(head + body);
  });
}

const suite = fixture({ after }, "safety");

before(async () => {
  srv = await suite.serve({ args: ["--git-timeout", "2"] });
  api = suite.use(new RestClient({ serviceUrl: srv.url, credential: srv.adminKey, timeoutMs: 20_000 }));
  await api.createRepo("local", "app");
  tmp = suite.dir;
});

describe("safety", () => {
  it("a git process that stalls is killed after the timeout and reported as 500", async () => {
    const auth = Buffer.from(`t:${srv.adminKey}`).toString("base64");
    const head =
      "POST /local/app.git/git-upload-pack HTTP/1.1\r\n" +
      `Host: x\r\nAuthorization: Basic ${auth}\r\n` +
      "Content-Type: application/x-git-upload-pack-request\r\nContent-Length: 1000\r\n\r\n";
    const started = Date.now();
    const { status, socket } = await rawRequest(head, "0032want ", 15_000);
    socket.destroy();
    assert.match(status, /^HTTP\/1\.1 500/);
    assert.ok(Date.now() - started < 12_000);
    assert.match(srv.logs(), /git http-backend failed/);
    assert.ok(!srv.logs().includes(srv.adminKey), "the key must never be logged");
    // The server keeps serving.
    assert.equal((await api.whoami()).org.slug, "local");
  });

  it("an oversized body is refused before it is read", async () => {
    const head =
      "POST /v1/local/repos HTTP/1.1\r\nHost: x\r\n" +
      `Authorization: Bearer ${srv.adminKey}\r\nContent-Type: application/json\r\nContent-Length: 500000000\r\n\r\n`;
    const { status, socket } = await rawRequest(head, "{", 10_000);
    socket.destroy();
    assert.match(status, /^HTTP\/1\.1 413/);
  });

  it("a client that stalls mid-request does not block others", async () => {
    const stalled = net.connect(Number(new URL(srv.url).port), "127.0.0.1");
    stalled.on("error", () => {});
    stalled.write("GET /v1/whoami HTTP/1.1\r\nHost: x\r\n");
    try {
      const results = await Promise.all(Array.from({ length: 20 }, () => api.getRepo("local", "app")));
      assert.equal(results.length, 20);
    } finally {
      stalled.destroy();
    }
  });
});

describe("mesa repo list", () => {
  it("lists the backend's repos; without a daemon none is mounted", async () => {
    await api.createRepo("local", "beta");
    const env = {
      MESA_NO_CONFIG_FILE: "1",
      MESA_ORG: "local",
      MESA_API_KEY: srv.adminKey,
      MESA_SERVICE_URL: srv.url,
    };
    const all = await runMesa(["repo", "list", "--all"], { env });
    assert.equal(all.code, 0, all.stderr);
    // No daemon runs, so nothing is mounted (●): every repo is available (○).
    assert.equal(all.stdout, "○ local/app\n○ local/beta\n");
    assert.equal(all.stderr, "mesa is not running: nothing is mounted (start it with `mesa mount -d`)\n");

    const config = path.join(tmp, "config.toml");
    await writeFile(config, '[organizations.local]\nmount = "explicit"\n[organizations.local.repos.app]\n');
    const envFile = { MESA_ORG: "local", MESA_API_KEY: srv.adminKey, MESA_SERVICE_URL: srv.url };
    const explicit = await runMesa(["-c", config, "repo", "list", "--all"], { env: envFile });
    assert.equal(explicit.code, 0, explicit.stderr);
    assert.equal(explicit.stdout, "○ local/app\n○ local/beta\n");
    const configured = await runMesa(["-c", config, "repo", "list"], { env: envFile });
    assert.equal(configured.stdout, "○ local/app\n", "explicit mode without --all: the configured repos");

    const bad = await runMesa(["repo", "list", "--all"], { env: { ...env, MESA_API_KEY: "wrong" } });
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /^mesa: .*credentials/m);
    assert.ok(!bad.stderr.includes("wrong"));
  });
});
