import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { parse as parseToml } from "smol-toml";
import { formatSize, loadConfig, parseSize } from "../src/config/index.js";
import { SETTINGS } from "../src/config/settings.js";
import { isMesaError, type MesaError } from "../src/errors.js";

const ROOT = join(import.meta.dirname, "..", "..");

function tempHome(t: { after(fn: () => void): void }): string {
  const home = mkdtempSync(join(tmpdir(), "mesa-config-"));
  t.after(() => rmSync(home, { recursive: true, force: true }));
  return home;
}

function withFile(home: string, text: string): string {
  const path = join(home, "config.toml");
  writeFileSync(path, text);
  return path;
}

/** loadConfig must throw one CONFIG_INVALID listing these problems (substrings). */
function problemsOf(fn: () => unknown): string[] {
  try {
    fn();
  } catch (err) {
    assert.ok(isMesaError(err, "CONFIG_INVALID"), String(err));
    assert.equal((err as MesaError).exitCode, 2);
    return (err as MesaError).details!.problems as string[];
  }
  assert.fail("expected CONFIG_INVALID");
}

test("config: defaults under the given home", (t) => {
  const home = tempHome(t);
  const c = loadConfig({ env: { MESA_NO_CONFIG_FILE: "1" }, home });
  assert.equal(c.mountPoint, `${home}/.local/share/mesa/mnt`);
  assert.equal(c.dataDir, `${home}/.local/share/mesa`);
  assert.equal(c.cache.path, `${home}/.cache/mesa`);
  assert.equal(c.cache.maxSize, 10e9);
  assert.equal(c.cache.maxMemorySize, 320e6);
  assert.equal(c.cache.enabled, true);
  assert.deepEqual(c.prefetch, { enabled: true, maxDepth: null, maxConcurrency: 8, cachePressureLimit: 0.8 });
  assert.equal(c.daemon.logFile, `${home}/.local/share/mesa/logs/mesa.log`);
  assert.equal(c.daemon.runtimeDir, `${home}/.local/share/mesa/run`);
  assert.equal(c.daemon.pollIntervalMs, 1000);
  assert.equal(c.daemon.tokenTtlSeconds, 3600);
  assert.equal(c.daemon.logColor, "auto");
  assert.equal(c.serviceUrl, "http://127.0.0.1:7878");
  assert.equal(c.uid, process.getuid!());
  assert.equal(c.gid, process.getgid!());
  assert.equal(c.secrets.backend, undefined);
  assert.equal(c.mesaignorePath, undefined);
  assert.deepEqual(c.organizations, {});
  assert.deepEqual(c.env, { orgs: [] });
  assert.equal(c.file, undefined);
  assert.ok(Object.values(c.sources).every((s) => s === "default"));
  const withXdg = loadConfig({ env: { MESA_NO_CONFIG_FILE: "1", XDG_RUNTIME_DIR: "/run/user/7" }, home });
  assert.equal(withXdg.daemon.runtimeDir, "/run/user/7/mesa");
});

test("config: default < file < env, per key, with sources", (t) => {
  const home = tempHome(t);
  const file = withFile(
    home,
    `mount-point = "~/m"
[cache]
max-size = "2GB"
max-memory-size = "1.5GiB"
[prefetch]
max-concurrency = 3
[daemon]
log-color = "never"
`,
  );
  const c = loadConfig({
    configPath: file,
    env: { MESA_CACHE_MAX_SIZE: "512MB", MESA_POLL_INTERVAL: "250", MESA_PREFETCH_ENABLED: "false" },
    home,
  });
  assert.equal(c.file, file);
  assert.equal(c.mountPoint, `${home}/m`);
  assert.equal(c.sources["mount-point"], "file");
  assert.equal(c.cache.maxSize, 512e6);
  assert.equal(c.sources["cache.max-size"], "env");
  assert.equal(c.cache.maxMemorySize, 1.5 * 2 ** 30);
  assert.equal(c.sources["cache.max-memory-size"], "file");
  assert.equal(c.prefetch.maxConcurrency, 3);
  assert.equal(c.prefetch.enabled, false);
  assert.equal(c.sources["prefetch.enabled"], "env");
  assert.equal(c.daemon.pollIntervalMs, 250);
  assert.equal(c.daemon.logColor, "never");
  assert.equal(c.cache.path, `${home}/.cache/mesa`);
  assert.equal(c.sources["cache.path"], "default");
});

test("config: search order and MESA_NO_CONFIG_FILE", (t) => {
  const home = tempHome(t);
  const xdg = join(home, "xdg");
  for (const [dir, url] of [
    [join(xdg, "mesa"), "http://xdg.example:1"],
    [join(home, ".config", "mesa"), "http://home.example:2"],
  ] as const) {
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, "config.toml"), `service-url = "${url}"\n`);
  }
  assert.equal(loadConfig({ env: { XDG_CONFIG_HOME: xdg }, home }).serviceUrl, "http://xdg.example:1");
  assert.equal(loadConfig({ env: {}, home }).serviceUrl, "http://home.example:2");
  const none = loadConfig({ env: { MESA_NO_CONFIG_FILE: "1", XDG_CONFIG_HOME: xdg }, home });
  assert.equal(none.serviceUrl, "http://127.0.0.1:7878");
  assert.equal(none.file, undefined);
  // An explicit --config-path must exist.
  const p = problemsOf(() => loadConfig({ configPath: join(home, "missing.toml"), env: {}, home }));
  assert.match(p[0]!, /missing\.toml: cannot read the file \(it does not exist\)/);
});

test("config: organizations, repos, revs and environment orgs", (t) => {
  const home = tempHome(t);
  const change = "k".repeat(16) + "z".repeat(16);
  const file = withFile(
    home,
    `[organizations.acme]
mount = "explicit"
[organizations.acme.repos.app]
rev = { bookmark = "main" }
[organizations.acme.repos.pinned]
rev = { change-id = "${change}" }
[organizations.acme.repos.fork]
branched-from = { bookmark = "main", as = "agent-1" }
[organizations.beta]
`,
  );
  const c = loadConfig({
    configPath: file,
    env: {
      MESA_ORG: "gamma",
      MESA_API_KEY: "k-env",
      MESA_ORGS: "delta:k1,acme:k2",
      MESA_REPO_REVS: `acme/fork=bookmark:dev,zeta/r=change-id:${change}`,
    },
    home,
  });
  assert.deepEqual(c.organizations.acme, {
    name: "acme",
    mount: "explicit",
    repos: {
      app: { rev: { bookmark: "main" }, readOnly: false },
      pinned: { rev: { changeId: change }, readOnly: true },
      fork: { rev: { bookmark: "dev" }, readOnly: false },
    },
  });
  assert.deepEqual(c.organizations.beta, { name: "beta", mount: "all", repos: {} });
  assert.deepEqual(c.organizations.gamma, { name: "gamma", mount: "all", repos: {} });
  assert.deepEqual(c.organizations.delta, { name: "delta", mount: "all", repos: {} });
  assert.deepEqual(c.organizations.zeta!.repos.r, { rev: { changeId: change }, readOnly: true });
  assert.equal(c.sources["organizations.acme"], "file");
  assert.equal(c.sources["organizations.gamma"], "env");
  assert.equal(c.sources["organizations.acme.repos.fork.rev"], "env");
  assert.deepEqual(c.env, {
    org: "gamma",
    apiKey: "k-env",
    orgs: [
      { org: "delta", key: "k1" },
      { org: "acme", key: "k2" },
    ],
  });
});

test("config: sizes", () => {
  assert.equal(parseSize("10GB"), 10e9);
  assert.equal(parseSize("512MB"), 512e6);
  assert.equal(parseSize("1.5GiB"), 1.5 * 2 ** 30);
  assert.equal(parseSize("4096"), 4096);
  assert.equal(parseSize(4096), 4096);
  assert.equal(parseSize("2 kib"), 2048);
  for (const bad of ["-1GB", "ten", "1XB", "", "1.5.2GB", -5, 1.5, "GB"]) {
    const r = parseSize(bad);
    assert.equal(typeof r, "object", `${JSON.stringify(bad)} should be rejected`);
  }
  assert.equal(formatSize(10e9), "10GB");
  assert.equal(formatSize(2 ** 30), "1GiB");
  assert.equal(formatSize(1234), "1234B");
});

test("config: malformed TOML names line and column", (t) => {
  const home = tempHome(t);
  const file = withFile(home, `mount-point = "/x"\n[cache]\nmax-size = = 3\n`);
  const p = problemsOf(() => loadConfig({ configPath: file, env: {}, home }));
  assert.equal(p.length, 1);
  assert.match(p[0]!, new RegExp(`^${file.replace(/[.]/g, "\\.")}: line 3, column \\d+: `));
});

test("config: every problem in file and environment is reported at once", (t) => {
  const home = tempHome(t);
  const file = withFile(
    home,
    `bogus = 1
uid = "root"
service-url = "ftp://x"
[cache]
max-size = "-5GB"
max-memory-size = "lots"
enabled = "yes"
[prefetch]
cache-pressure-limit = 1.5
[daemon]
log-color = "pink"
[organizations.".."]
[organizations.acme]
mount = "some"
[organizations.acme.repos."a/b"]
[organizations.acme.repos.app]
rev = { change-id = "abc" }
extra = true
[organizations.acme.repos.two]
rev = { bookmark = "main", change-id = "${"z".repeat(32)}" }
`,
  );
  const p = problemsOf(() =>
    loadConfig({
      configPath: file,
      env: {
        MESA_CACHE_MAX_SIZE: "1XB",
        MESA_PREFETCH_MAX_CONCURRENCY: "many",
        MESA_CACHE_ENABLED: "maybe",
        MESA_ORGS: "acme:k1,broken",
        MESA_REPO_REVS: "acme/app=tag:v1",
        MESA_ORG: "../etc",
      },
      home,
    }),
  );
  const expect = [
    [file, "bogus", "unknown key"],
    [file, "uid", "expected number"],
    [file, "service-url", "http"],
    [file, "cache.max-size", "negative"],
    [file, "cache.max-memory-size", "not a size"],
    [file, "cache.enabled", "expected boolean"],
    [file, "prefetch.cache-pressure-limit", "at most 1"],
    [file, "daemon.log-color", "must be one of"],
    [file, 'organizations."..": invalid organization name', "relative path"],
    [file, "organizations.acme.mount", "must be one of"],
    [file, 'organizations.acme.repos."a/b": invalid repository name', "path separator"],
    [file, "organizations.acme.repos.app.rev", "32 characters"],
    [file, "organizations.acme.repos.app.extra", "unknown key"],
    [file, "organizations.acme.repos.two.rev", "exactly one"],
    ["environment", "MESA_CACHE_MAX_SIZE", "not a size"],
    ["environment", "MESA_PREFETCH_MAX_CONCURRENCY", "whole number"],
    ["environment", "MESA_CACHE_ENABLED", "true or false"],
    ["environment", "MESA_ORGS: entry 2", "expected org:key"],
    ["environment", "MESA_REPO_REVS", "org/repo=bookmark:NAME"],
    ["environment", "MESA_ORG", "invalid organization name"],
  ];
  for (const [where, key, reason] of expect) {
    assert.ok(
      p.some((line) => line.startsWith(`${where}: ${key}`) && line.includes(reason!)),
      `missing ${where}: ${key}: …${reason}… in\n${p.join("\n")}`,
    );
  }
  assert.equal(p.length, expect.length, p.join("\n"));
});

test("config: bad names, keys and pins in the environment never echo a key", (t) => {
  const home = tempHome(t);
  const secret = "mesa_live_0123456789abcdef_SECRETSECRETSECRETSECRETSECRETSECRET00";
  const cases: Record<string, string>[] = [
    { MESA_ORGS: secret }, // no colon: the whole entry might be a key
    { MESA_ORGS: `acme:${secret} x` }, // whitespace in key
    { MESA_ORGS: "acme:" }, // empty key
    { MESA_API_KEY: `${secret}\n` },
    { MESA_ORG: secret.slice(0, 5) + "/x" },
    { MESA_ORGS: `a\0b:${secret}` },
    { MESA_ORGS: `${"x".repeat(101)}:${secret}` },
  ];
  for (const env of cases) {
    let err: unknown;
    try {
      loadConfig({ env: { MESA_NO_CONFIG_FILE: "1", ...env }, home });
    } catch (e) {
      err = e;
    }
    assert.ok(isMesaError(err, "CONFIG_INVALID"), JSON.stringify(env));
    assert.ok(!(err as Error).message.includes("SECRETSECRET"), (err as Error).message);
  }
  for (const revs of [
    "../x/r=bookmark:main",
    "a/r=bookmark:..",
    "a/r=change-id:ABC",
    "a/r",
    "a\0/r=bookmark:m",
  ]) {
    const p = problemsOf(() => loadConfig({ env: { MESA_NO_CONFIG_FILE: "1", MESA_REPO_REVS: revs }, home }));
    assert.equal(p.length, 1, revs);
    assert.match(p[0]!, /^environment: MESA_REPO_REVS: /);
  }
});

test("config: config.example.toml documents every key and parses into the defaults", (t) => {
  const home = tempHome(t);
  const example = join(ROOT, "config.example.toml");
  const text = readFileSync(example, "utf8");
  for (const s of SETTINGS) {
    const key = s.key.split(".").pop()!;
    assert.match(text, new RegExp(`^#? ?${key} = `, "m"), `config.example.toml lacks ${s.key}`);
    if (s.env) assert.ok(text.includes(s.env), `config.example.toml lacks ${s.env}`);
  }
  // Uncommenting every optional line still gives a valid file.
  const uncommented = text.replace(/^# ((?:[a-z-]+) = .*)$/gm, "$1").replace(/^rev = \{ change-id.*$/m, "");
  assert.doesNotThrow(() => parseToml(uncommented));
  const full = withFile(home, uncommented);
  assert.doesNotThrow(() => loadConfig({ configPath: full, env: {}, home }));

  const fromExample = loadConfig({ configPath: example, env: {}, home });
  const defaults = loadConfig({ env: { MESA_NO_CONFIG_FILE: "1" }, home });
  const { sources: _a, file: _b, organizations, ...rest } = fromExample;
  const { sources: _c, file: _d, organizations: _e, ...restDefaults } = defaults;
  assert.deepEqual(rest, restDefaults, "the example's values are the defaults");
  assert.equal(organizations.acme!.repos.scratch!.branchedFrom!.as, "agent-1");
});

test("config: paths expand ~ and resolve relative to the file or the working directory", (t) => {
  const home = tempHome(t);
  const file = withFile(home, `[cache]\npath = "rel/cache"\n[daemon]\nlog-file = "~/l.log"\n`);
  const c = loadConfig({ configPath: file, env: { MESA_RUNTIME_DIR: "run" }, home, cwd: "/srv" });
  assert.equal(c.cache.path, join(home, "rel/cache"));
  assert.equal(c.daemon.logFile, join(home, "l.log"));
  assert.equal(c.daemon.runtimeDir, "/srv/run");
  const p = problemsOf(() =>
    loadConfig({ env: { MESA_NO_CONFIG_FILE: "1", MESA_CACHE_PATH: "~bob/x" }, home }),
  );
  assert.match(p[0]!, /environment: MESA_CACHE_PATH: only ~/);
});
