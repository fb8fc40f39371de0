import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { Decrypter } from "age-encryption";

/**
 * Interactive use: `mesa auth set-key` in a real terminal (a pty from script(1)) asks for
 * the key and, with no keychain reachable, creates the vault after asking for a new
 * passphrase twice — all without echo. The test answers each prompt only after it appears.
 */
const ROOT = join(import.meta.dirname, "..", "..");
const BIN = join(ROOT, "bin", "mesa");
const KEY = "mesa_live_ttyttyttyttytty0_TTYSECRETTTYSECRETTTYSECRETTTYSECRET00";
const PASS = "tty passphrase 42";

test("cli: set-key prompts for the key and a new vault passphrase on the terminal, without echo", async (t) => {
  const home = mkdtempSync(join(tmpdir(), "mesa-tty-"));
  t.after(() => rmSync(home, { recursive: true, force: true }));
  const env = {
    PATH: process.env.PATH ?? "/usr/bin:/bin",
    HOME: home,
    TERM: "dumb",
    MESA_NO_CONFIG_FILE: "1",
    DBUS_SESSION_BUS_ADDRESS: "unix:path=/nonexistent/mesa-test-bus",
  };
  const child = spawn(
    "script",
    ["-qec", `'${process.execPath}' '${BIN}' auth set-key --org acme`, "/dev/null"],
    {
      env,
      detached: true,
      stdio: ["pipe", "pipe", "pipe"],
    },
  );
  let screen = "";
  child.stdout.on("data", (d) => (screen += d));
  child.stderr.on("data", (d) => (screen += d));
  const killer = setTimeout(() => process.kill(-child.pid!, "SIGKILL"), 120_000);
  t.after(() => clearTimeout(killer));
  const exited = new Promise<number | null>((r) => child.on("close", (code) => r(code)));

  const answer = async (prompt: string, text: string) => {
    const deadline = Date.now() + 60_000;
    while (!screen.includes(prompt)) {
      if (Date.now() > deadline) assert.fail(`no prompt ${JSON.stringify(prompt)}; screen:\n${screen}`);
      await new Promise((r) => setTimeout(r, 20));
    }
    // Echo is off once the prompt is shown: what we type must not appear on screen.
    await new Promise((r) => setTimeout(r, 100));
    child.stdin.write(`${text}\r`);
  };
  await answer("API key: ", KEY);
  await answer("New passphrase for the mesa vault: ", PASS);
  await answer("Repeat the passphrase: ", PASS);
  const code = await exited;
  child.stdin.end();
  assert.equal(code, 0, screen);
  assert.match(screen, /stored the key for orgs\/acme in encrypted-file/);
  assert.ok(!screen.includes("TTYSECRET"), `the key was echoed:\n${screen}`);
  assert.ok(!screen.includes(PASS), `the passphrase was echoed:\n${screen}`);

  const d = new Decrypter();
  d.addPassphrase(PASS);
  const text = await d.decrypt(readFileSync(join(home, ".local/share/mesa/secrets.vault.age")), "text");
  assert.ok(text.includes(`"orgs/acme" = "${KEY}"`));
});
