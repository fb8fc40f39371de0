/**
 * Helpers for the POSIX tests on a real mount: an unprivileged user (created with `useradd`
 * when missing), commands run as any uid/gid through `setpriv`, and a small Python program
 * that calls the syscalls directly and reports each result or errno name.
 */
import { execFileSync } from "node:child_process";
import { type RunResult, run } from "./mount.js";

export interface Who {
  uid: number;
  gid: number;
}

export const ROOT: Who = { uid: 0, gid: 0 };
/** A second unprivileged identity with no passwd entry (setpriv needs none). */
export const STRANGER: Who = { uid: 65533, gid: 65533 };

const USER = "mesa-posix";

/** The unprivileged test user, created if missing. */
export function testUser(): Who {
  const id = (flag: string) => Number(execFileSync("id", [flag, USER], { encoding: "utf8" }).trim());
  try {
    return { uid: id("-u"), gid: id("-g") };
  } catch {
    execFileSync("useradd", ["--system", "--no-create-home", "--shell", "/usr/sbin/nologin", USER]);
    return { uid: id("-u"), gid: id("-g") };
  }
}

const ENV = { PATH: "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin", HOME: "/", LANG: "C" };

/** Runs `sh -c script` in `cwd` as `who` (no supplementary groups), bounded. */
export function shAs(who: Who, cwd: string, script: string, timeoutMs = 60_000): Promise<RunResult> {
  return run(
    "setpriv",
    ["--reuid", String(who.uid), "--regid", String(who.gid), "--clear-groups", "sh", "-c", script],
    { cwd, env: ENV, timeoutMs },
  );
}

const SYSCALLS = `
import errno, json, os, sys, time
def st(p):
    s = os.lstat(p)
    return {"mode": s.st_mode, "uid": s.st_uid, "gid": s.st_gid, "nlink": s.st_nlink, "size": s.st_size,
            "atime": s.st_atime_ns // 1000000, "mtime": s.st_mtime_ns // 1000000,
            "ctime": s.st_ctime_ns // 1000000}
def creat(p, m):
    os.close(os.open(p, os.O_CREAT | os.O_EXCL | os.O_WRONLY, m))
def open_(p):
    os.close(os.open(p, os.O_RDONLY))
def write(p, data):
    fd = os.open(p, os.O_WRONLY | os.O_APPEND)
    os.write(fd, data.encode())
    os.close(fd)
OPS = {"stat": st, "creat": creat, "open": open_, "write": write, "mkdir": os.mkdir, "rmdir": os.rmdir,
       "unlink": os.unlink, "rename": os.rename, "symlink": os.symlink, "link": os.link,
       "mknod": os.mknod, "chmod": os.chmod, "chown": os.chown,
       "utime": lambda p, a, m: os.utime(p, ns=(a * 1000000, m * 1000000)),
       "setxattr": lambda p, n, v: os.setxattr(p, n, v.encode()),
       "namemax": lambda p: os.statvfs(p).f_namemax,
       "sleep": lambda s: time.sleep(s)}
out = []
for op in json.loads(sys.argv[1]):
    try:
        r = OPS[op[0]](*op[1:])
        out.append("ok" if r is None else r)
    except OSError as e:
        out.append(errno.errorcode.get(e.errno, str(e.errno)))
print(json.dumps(out))
`;

export interface StatResult {
  mode: number;
  uid: number;
  gid: number;
  nlink: number;
  size: number;
  atime: number;
  mtime: number;
  ctime: number;
}

export type SyscallResult = "ok" | string | StatResult;

/**
 * Runs syscalls in `cwd` as `who`: each op is `[name, ...args]` (stat, creat, open, write,
 * mkdir, rmdir, unlink, rename, symlink, link, mknod, chmod, chown, utime in ms, setxattr,
 * namemax (statvfs), sleep in s);
 * each result is "ok", an errno name ("EACCES") or a stat.
 */
export async function syscalls(who: Who, cwd: string, ops: unknown[][]): Promise<SyscallResult[]> {
  return JSON.parse(await pythonAs(who, cwd, SYSCALLS, 60_000, [JSON.stringify(ops)])) as SyscallResult[];
}

/** Runs one Python program in `cwd` as `who`; returns stdout (throws with stderr on failure). */
export async function pythonAs(
  who: Who,
  cwd: string,
  program: string,
  timeoutMs = 60_000,
  args: string[] = [],
): Promise<string> {
  const r = await run(
    "setpriv",
    [
      "--reuid",
      String(who.uid),
      "--regid",
      String(who.gid),
      "--clear-groups",
      "/usr/bin/python3",
      "-c",
      program,
      ...args,
    ],
    { cwd, env: ENV, timeoutMs },
  );
  if (r.code !== 0) throw new Error(`python failed (${r.code}): ${r.stderr}`);
  return r.stdout;
}
