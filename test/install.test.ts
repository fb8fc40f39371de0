import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import {
  chmodSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { test } from "node:test";
import { generateRepo } from "./helpers/mount.js";
import { type ServeHandle, startServe } from "./helpers/serve.js";

const ROOT = resolve(import.meta.dirname, "../..");
const INSTALL = join(ROOT, "install.sh");

function runInstall(args: string[], env: NodeJS.ProcessEnv = {}) {
  return spawnSync("sh", [INSTALL, ...args], {
    encoding: "utf8",
    env: { ...process.env, ...env },
    timeout: 60_000,
  });
}

test("install.sh --help explains the options and exits 0", () => {
  const r = runInstall(["--help"]);
  assert.equal(r.status, 0);
  for (const word of ["--yes", "--prefix", "MESA_INSTALL_TARBALL", "mesa doctor"])
    assert.match(r.stdout, new RegExp(word));
});

test("install.sh rejects an unknown option with exit 2 and changes nothing", () => {
  const prefix = mkdtempSync(join(tmpdir(), "mesa-inst-"));
  try {
    const r = runInstall(["--bogus", "--prefix", prefix]);
    assert.equal(r.status, 2);
    assert.match(r.stderr, /unknown option: --bogus/);
    assert.deepEqual(readdirSync(prefix), []);
  } finally {
    rmSync(prefix, { recursive: true, force: true });
  }
});

test("install.sh refuses an unsupported system with exit 3 before changing anything", () => {
  const dir = mkdtempSync(join(tmpdir(), "mesa-inst-"));
  try {
    const shims = join(dir, "shims");
    const prefix = join(dir, "prefix");
    mkdirSync(shims);
    mkdirSync(prefix);
    writeFileSync(join(shims, "uname"), '#!/bin/sh\n[ "$1" = "-s" ] && echo Darwin || echo arm64\n');
    chmodSync(join(shims, "uname"), 0o755);
    const r = runInstall(["--yes", "--prefix", prefix], { PATH: `${shims}:${process.env.PATH}` });
    assert.equal(r.status, 3);
    assert.match(r.stderr, /unsupported system: Darwin/);
    assert.deepEqual(readdirSync(prefix), []);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

/** Mount points below `dir`, deepest first. */
function mountsBelow(dir: string): string[] {
  return readFileSync("/proc/mounts", "utf8")
    .split("\n")
    .map((l) => l.split(" ")[1] ?? "")
    .filter((m) => m === dir || m.startsWith(`${dir}/`))
    .sort((a, b) => b.length - a.length);
}

/** FROM/COPY/RUN/ENV… steps of a Dockerfile, continuation lines joined. */
function dockerfileSteps(text: string): Array<{ op: string; arg: string }> {
  return text
    .replace(/\\\n/g, " ")
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith("#"))
    .map((l) => {
      const [op, ...rest] = l.split(/\s+/);
      return { op: op!.toUpperCase(), arg: rest.join(" ") };
    });
}

const canChroot =
  process.getuid?.() === 0 &&
  spawnSync("sh", ["-c", "command -v debootstrap"], { encoding: "utf8" }).status === 0;

test("fresh Debian 12: the Dockerfile's steps (install.sh --yes from a release tarball), mesa --version, mesa doctor, a mount", {
  skip: canChroot ? false : "needs root and debootstrap (CI installs it)",
  timeout: 600_000,
}, async (t) => {
  const work = mkdtempSync(join(tmpdir(), "mesa-fresh-"));
  const root = join(work, "root");
  let serve: ServeHandle | undefined;
  t.after(async () => {
    await serve?.stop();
    // Unmount everything bound into the chroot before deleting it: /dev is a bind of the host's.
    for (const m of mountsBelow(root)) spawnSync("umount", ["-l", m]);
    if (mountsBelow(root).length === 0) rmSync(work, { recursive: true, force: true });
  });

  // The build context: install.sh and the release tarball, as the Dockerfile expects.
  const context = join(work, "context");
  mkdirSync(context);
  copyFileSync(INSTALL, join(context, "install.sh"));
  execFileSync("npm", ["pack", "--silent", "--pack-destination", context], { cwd: ROOT, stdio: "ignore" });
  const tarball = readdirSync(context).find((f) => f.endsWith(".tgz"));
  assert.ok(tarball, "npm pack made a tarball");
  // The tarball carries the FUSE binding prebuilt and nothing that would make npm compile it.
  const listed = execFileSync("tar", ["-tzf", join(context, tarball)], { encoding: "utf8" }).split("\n");
  assert.ok(
    listed.includes(`package/prebuilds/linux-${process.arch}/mesa_fuse.node`),
    "the prebuilt binding is packed",
  );
  assert.ok(!listed.includes("package/binding.gyp"), "no binding.gyp: installing never compiles");

  execFileSync("debootstrap", ["--variant=minbase", "bookworm", root, "http://deb.debian.org/debian"], {
    stdio: "ignore",
    timeout: 300_000,
  });
  copyFileSync("/etc/resolv.conf", join(root, "etc/resolv.conf"));
  // The chroot trusts what this machine trusts (some networks re-sign TLS with a local CA).
  const localCas = "/usr/local/share/ca-certificates";
  if (existsSync(localCas)) {
    mkdirSync(join(root, localCas), { recursive: true });
    for (const f of readdirSync(localCas)) copyFileSync(join(localCas, f), join(root, localCas, f));
  }
  execFileSync("mount", ["-t", "proc", "proc", join(root, "proc")]);
  execFileSync("mount", ["--rbind", "/dev", join(root, "dev")]);
  execFileSync("mount", ["--make-rslave", join(root, "dev")]);
  execFileSync("mount", ["-t", "sysfs", "sys", join(root, "sys")]);

  const env = [
    "HOME=/root",
    "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt",
  ];
  const inChroot = (...cmd: string[]) =>
    spawnSync("chroot", [root, "/usr/bin/env", "-i", ...env, ...cmd], { encoding: "utf8", timeout: 300_000 });
  assert.notEqual(inChroot("sh", "-c", "command -v node").status, 0, "the fresh root has no Node.js");

  // Run the Dockerfile's own steps as `docker build` would (no Docker engine on this machine).
  let installOutput = "";
  for (const step of dockerfileSteps(readFileSync(join(ROOT, "Dockerfile"), "utf8"))) {
    if (step.op === "FROM") assert.match(step.arg, /^debian:bookworm/);
    else if (step.op === "COPY") {
      const parts = step.arg.split(/\s+/);
      const dest = join(root, parts.pop()!);
      mkdirSync(dest, { recursive: true });
      for (const pattern of parts) {
        const re = new RegExp(`^${pattern.replace(/\./g, "\\.").replace(/\*/g, ".*")}$`);
        const matched = readdirSync(context).filter((f) => re.test(f));
        assert.ok(matched.length > 0, `COPY ${pattern} matches a file of the build context`);
        for (const f of matched) copyFileSync(join(context, f), join(dest, f));
      }
    } else if (step.op === "RUN") {
      const r = inChroot("sh", "-c", step.arg);
      assert.equal(r.status, 0, `RUN ${step.arg}\n${r.stderr}${r.stdout}`);
      installOutput += r.stdout;
    }
  }
  assert.match(installOutput, /installed mesa \d+\.\d+\.\d+ to \/usr\/local\/bin\/mesa/);
  assert.match(readFileSync(join(root, "etc/fuse.conf"), "utf8"), /^user_allow_other$/m);

  const version = inChroot("mesa", "--version");
  assert.equal(version.status, 0, version.stderr);
  const pkg = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as { version: string };
  assert.equal(version.stdout.trim(), `mesa ${pkg.version}`);
  // A machine without Node.js gets the private Node.js 24 LTS, and mesa runs on it.
  assert.match(
    readFileSync(join(root, "usr/local/bin/mesa"), "utf8"),
    /^exec "\/usr\/local\/lib\/mesa\/node\/bin\/node" /m,
  );
  assert.match(inChroot("/usr/local/lib/mesa/node/bin/node", "--version").stdout.trim(), /^v24\.\d+\.\d+$/);

  const doctor = inChroot("mesa", "doctor");
  assert.match(
    doctor.stdout,
    /^ok {4}FUSE binding: libfuse 3\.\d+ \(\/usr\/local\/lib\/mesa\/pkg\/.*prebuilds\//m,
  );
  assert.match(doctor.stdout, /^ok {4}fusermount3: /m);

  // It mounts: a repo served by `mesa serve` on this machine's loopback (the chroot shares it),
  // read through the prebuilt binding with no compiler on the machine.
  assert.notEqual(inChroot("sh", "-c", "command -v cc gcc").status, 0, "the fresh root has no compiler");
  serve = await startServe();
  const src = join(work, "src");
  generateRepo(src, { files: 40 });
  await serve.importRepo("local/app", src);
  const up = inChroot(
    "env",
    "MESA_ORG=local",
    `MESA_API_KEY=${serve.adminKey}`,
    `MESA_SERVICE_URL=${serve.url}`,
    "MESA_SECRETS_BACKEND=plaintext-file",
    "mesa",
    "mount",
    "-d",
    "-y",
  );
  assert.equal(up.status, 0, up.stderr + up.stdout);
  const app = "/root/.local/share/mesa/mnt/local/app";
  assert.equal(inChroot("cat", `${app}/README.md`).stdout, "# generated\n");
  assert.equal(
    inChroot("sh", "-c", `cd ${app} && find . | LC_ALL=C sort | sha1sum`).stdout,
    spawnSync("sh", ["-c", "find . -path ./.git -prune -o -print | LC_ALL=C sort | sha1sum"], {
      cwd: src,
      encoding: "utf8",
    }).stdout,
    "the mounted tree lists what the repo holds",
  );
  const down = inChroot("mesa", "unmount");
  assert.equal(down.status, 0, down.stderr);

  // Idempotent: a second run updates in place and leaves one working install.
  copyFileSync(INSTALL, join(root, "tmp/install.sh"));
  copyFileSync(join(context, tarball), join(root, "tmp/mesa.tgz"));
  const second = inChroot("env", "MESA_INSTALL_TARBALL=/tmp/mesa.tgz", "sh", "/tmp/install.sh", "--yes");
  assert.equal(second.status, 0, second.stderr + second.stdout);
  assert.equal(inChroot("mesa", "--version").stdout.trim(), `mesa ${pkg.version}`);
  assert.deepEqual(readdirSync(join(root, "usr/local/lib/mesa")).sort(), ["node", "pkg"]);
});
