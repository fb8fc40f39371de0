/**
 * Mount table queries and stale-mount cleanup. Nothing here touches a mount point with a
 * synchronous fs call: probes run in a child process with a hard timeout, so a hung mount
 * can never hang the caller (the FUSE WARNING in the team brief).
 */
import { execFile } from "node:child_process";
import { readFile } from "node:fs/promises";
import { resolve } from "node:path";
import { envWithoutSecrets } from "../config/env.js";

/** /proc/mounts escapes spaces, tabs, newlines and backslashes as octal. */
function unescapeMountPath(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(Number.parseInt(o, 8)));
}

export interface MountEntry {
  source: string;
  target: string;
  type: string;
}

export async function mountTable(): Promise<MountEntry[]> {
  const text = await readFile("/proc/mounts", "utf8");
  return text
    .split("\n")
    .filter((l) => l.length > 0)
    .map((l) => {
      const [source, target, type] = l.split(" ");
      return { source, target: unescapeMountPath(target), type };
    });
}

/** The FUSE mount at exactly `mountPoint`, if any. */
export async function fuseMountAt(mountPoint: string): Promise<MountEntry | undefined> {
  const target = resolve(mountPoint);
  return (await mountTable()).find((m) => m.target === target && m.type.startsWith("fuse"));
}

export type ProbeResult = "ok" | "enotconn" | "missing" | "timeout" | "error";

/** stat(1) of the mount point in a child process, killed after `timeoutMs`. */
export function probeMount(mountPoint: string, timeoutMs = 5000): Promise<ProbeResult> {
  return new Promise((done) => {
    execFile(
      "stat",
      ["-c", "%i", "--", mountPoint],
      { timeout: timeoutMs, killSignal: "SIGKILL", env: { ...envWithoutSecrets(), LC_ALL: "C" } },
      (err, _stdout, stderr) => {
        if (!err) return done("ok");
        if ((err as { killed?: boolean }).killed) return done("timeout");
        if (/not connected/i.test(String(stderr))) return done("enotconn");
        if (/No such file/i.test(String(stderr))) return done("missing");
        done("error");
      },
    );
  });
}

function run(cmd: string, args: string[], timeoutMs: number): Promise<{ ok: boolean; stderr: string }> {
  return new Promise((done) => {
    execFile(
      cmd,
      args,
      { timeout: timeoutMs, killSignal: "SIGKILL", env: envWithoutSecrets() },
      (err, _out, stderr) =>
        done({ ok: !err, stderr: String(stderr ?? (err as Error | null)?.message ?? "") }),
    );
  });
}

/** Lazy unmount (`fusermount -uz`, falling back to `umount -l`); true when nothing is mounted after. */
export async function lazyUnmount(mountPoint: string): Promise<boolean> {
  const target = resolve(mountPoint);
  for (const [cmd, args] of [
    ["fusermount", ["-uz", target]],
    ["fusermount3", ["-uz", target]],
    ["umount", ["-l", target]],
  ] as const) {
    if (!(await fuseMountAt(target))) return true;
    await run(cmd, [...args], 10_000);
  }
  return !(await fuseMountAt(target));
}
