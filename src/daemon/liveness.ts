/**
 * Is a daemon running for this configuration? The one place every command asks: a pid file
 * whose process is alive and not a zombie, and a control socket that accepts a connection.
 * (A killed daemon whose parent has not reaped it yet still has a pid; it is not running.)
 */
import { readFile } from "node:fs/promises";
import { createConnection } from "node:net";
import type { Config } from "../config/types.js";
import { runtimePaths } from "./paths.js";
import { isAlive, readPid } from "./pidfile.js";

export interface RunningDaemon {
  pid: number;
  socket: string;
}

async function isZombie(pid: number): Promise<boolean> {
  try {
    // /proc/<pid>/stat: "pid (comm) S …"; comm may hold spaces, so read after the last ')'.
    const stat = await readFile(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) === "Z";
  } catch {
    return false;
  }
}

function socketAnswers(path: string, timeoutMs = 2000): Promise<boolean> {
  return new Promise((done) => {
    const conn = createConnection(path);
    const timer = setTimeout(() => {
      conn.destroy();
      done(false);
    }, timeoutMs);
    conn.once("connect", () => {
      clearTimeout(timer);
      conn.end();
      done(true);
    });
    conn.once("error", () => {
      clearTimeout(timer);
      done(false);
    });
  });
}

/** The running daemon of `config`, or undefined when none answers. */
export async function runningDaemon(config: Pick<Config, "daemon">): Promise<RunningDaemon | undefined> {
  const { pidFile, socket } = runtimePaths(config);
  const pid = await readPid(pidFile);
  if (pid === undefined || !isAlive(pid) || (await isZombie(pid))) return undefined;
  return (await socketAnswers(socket)) ? { pid, socket } : undefined;
}
