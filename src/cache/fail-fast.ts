/**
 * Content reads while the server is unreachable. Once a fetch has failed for a reason worth
 * retrying (network, timeout, 5xx), reads of content that is not stored locally fail at once
 * instead of each waiting out its own retries; one read per second still goes to the network
 * as a probe, and the first probe that succeeds ends the outage. Locally stored content is
 * always served.
 */

import { isRetryable } from "../vcs/errors.js";
import type { ContentProvider } from "../workspace/content.js";

const PROBE_INTERVAL_MS = 1000;

export class ServerUnreachableError extends Error {
  constructor(cause: unknown) {
    super(
      `the server is unreachable (${(cause as Error)?.message ?? String(cause)}); retrying on a later read`,
    );
    this.name = "ServerUnreachableError";
  }
}

export function failFastWhileDown<T extends ContentProvider>(
  content: T,
  isLocal: (oid: string) => boolean,
): T {
  let lastFailure: unknown;
  let probing = false;
  let lastProbe = 0;
  const read: ContentProvider["read"] = async (snap, oid, offset, length) => {
    const probe = lastFailure !== undefined && !isLocal(oid);
    if (probe && (probing || Date.now() - lastProbe < PROBE_INTERVAL_MS))
      throw new ServerUnreachableError(lastFailure);
    if (probe) {
      probing = true;
      lastProbe = Date.now();
    }
    try {
      const data = await content.read(snap, oid, offset, length);
      lastFailure = undefined;
      return data;
    } catch (err) {
      // Only failures that say "the server is not answering" start (or continue) the outage.
      if (isRetryable(err) && !isLocal(oid)) lastFailure = err;
      throw err;
    } finally {
      if (probe) probing = false;
    }
  };
  return Object.assign(Object.create(Object.getPrototypeOf(content)), content, { read }) as T;
}
