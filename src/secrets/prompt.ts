import { closeSync, openSync } from "node:fs";
import { ReadStream, WriteStream } from "node:tty";
import { MesaError } from "../errors.js";

/**
 * Reads a secret from the controlling terminal without echo. It talks to /dev/tty, not
 * stdin, so it works while stdin carries other input (e.g. a key piped to set-key);
 * a process without a controlling terminal (daemon, CI) has none to ask.
 */
export function terminalAvailable(): boolean {
  try {
    closeSync(openSync("/dev/tty", "r+"));
    return true;
  } catch {
    return false;
  }
}

export async function promptHidden(question: string): Promise<string> {
  let inFd: number;
  let outFd: number;
  try {
    inFd = openSync("/dev/tty", "r");
    outFd = openSync("/dev/tty", "w");
  } catch {
    throw new MesaError("USAGE", "there is no terminal to ask for the secret");
  }
  // Separate descriptors: each stream closes its own.
  const input = new ReadStream(inFd);
  const output = new WriteStream(outFd);
  // Echo off before the question shows: an answer typed (or sent) at once is never echoed.
  input.setRawMode(true);
  output.write(question);
  try {
    return await new Promise<string>((resolve, reject) => {
      let text = "";
      input.on("data", (chunk: Buffer) => {
        for (const ch of chunk.toString("utf8")) {
          if (ch === "\r" || ch === "\n") return resolve(text);
          if (ch === "\u0003" || (ch === "\u0004" && text === ""))
            return reject(new MesaError("ABORTED", "cancelled at the passphrase prompt"));
          if (ch === "\u007f" || ch === "\b") text = text.slice(0, -1);
          else if (ch >= " ") text += ch;
        }
      });
      input.on("error", reject);
    });
  } finally {
    input.setRawMode(false);
    output.write("\n");
    input.destroy();
    output.destroy();
  }
}
