/**
 * The access token of one org for a mount session, renewed before it expires. A daemon that
 * holds an API key or a private key mints a fresh token ahead of expiry, so no request ever
 * goes out with an expired one; a daemon given a bare access token (a JWT) cannot mint and
 * stops at its expiry, failing closed with a clear `mesa status` line.
 */
import type { Logger } from "../log.js";

export interface MintedCredential {
  credential: string;
  expiresAt?: Date;
}

export interface SessionTokenOptions {
  org: string;
  log: Logger;
  /** Mints a new token from the key the daemon holds; undefined when the credential cannot mint. */
  mint?: () => Promise<MintedCredential>;
}

/** Renew when a third of the token's lifetime is left, at least 1 s and at most 5 min before expiry. */
export function renewalLeadMs(lifetimeMs: number): number {
  return Math.min(5 * 60_000, Math.max(1_000, lifetimeMs / 3));
}

/** After a failed renewal, try again this soon (or sooner, before expiry). */
const RETRY_MS = 5_000;

export class SessionToken {
  private value: MintedCredential;
  private timer?: NodeJS.Timeout;
  private problem?: string;
  private stopped = false;
  /** Successful renewals, for `mesa status` and tests. */
  renewals = 0;

  constructor(
    first: MintedCredential,
    private readonly opts: SessionTokenOptions,
  ) {
    this.value = first;
    this.schedule();
  }

  /** The token to send now. */
  current(): string {
    return this.value.credential;
  }

  get expiresAt(): Date | undefined {
    return this.value.expiresAt;
  }

  /** What `mesa status` should say about this token, if anything. */
  status(): string | undefined {
    return this.problem;
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
  }

  private schedule(): void {
    const exp = this.value.expiresAt;
    if (this.stopped || !exp) return;
    const left = exp.getTime() - Date.now();
    if (!this.opts.mint) {
      // A bare token: nothing to renew with. Say so when it expires.
      this.at(left, () => this.expired());
      return;
    }
    const lifetime = Math.max(0, left);
    this.at(left - renewalLeadMs(lifetime), () => void this.renew());
  }

  private at(ms: number, fn: () => void): void {
    clearTimeout(this.timer);
    // setTimeout's limit is 2^31 - 1 ms (~24.8 days); tokens live at most a day.
    this.timer = setTimeout(fn, Math.min(Math.max(0, ms), 2 ** 31 - 1));
    this.timer.unref();
  }

  private async renew(): Promise<void> {
    if (this.stopped || !this.opts.mint) return;
    const { org, log } = this.opts;
    try {
      const next = await this.opts.mint();
      if (this.stopped) return;
      this.value = next;
      this.renewals++;
      this.problem = undefined;
      log.info({ org, expiresAt: next.expiresAt?.toISOString() }, "access token renewed");
      this.schedule();
    } catch (err) {
      const exp = this.value.expiresAt;
      const left = exp ? exp.getTime() - Date.now() : Number.POSITIVE_INFINITY;
      log.warn({ org, err: (err as Error).message }, "access token renewal failed; retrying");
      if (left <= 0) this.expired(`renewal failed: ${(err as Error).message}`);
      this.at(Math.min(RETRY_MS, left > 0 ? left / 2 : RETRY_MS), () => void this.renew());
    }
  }

  private expired(why?: string): void {
    const at = this.value.expiresAt?.toISOString();
    this.problem = this.opts.mint
      ? `${this.opts.org}: access token expired at ${at} (${why ?? "not renewed"}); retrying every ${RETRY_MS / 1000} s`
      : `${this.opts.org}: access token expired at ${at}; run \`mesa unmount\` and \`mesa mount -d\` to start a new session`;
    this.opts.log.error(
      { org: this.opts.org, expiresAt: at },
      "access token expired; requests will fail with 401",
    );
  }
}
