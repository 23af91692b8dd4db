/**
 * Lets through at most `burst` events per `windowMs` and counts the rest, so one flood of bad
 * input (e.g. garbage puts in discovery) costs a few log lines, not one per message.
 */
export class RateLimiter {
  private windowStart = 0;
  private inWindow = 0;
  private dropped = 0;

  constructor(
    private readonly burst = 5,
    private readonly windowMs = 10_000,
    private readonly now: () => number = Date.now,
  ) {}

  /**
   * Whether this event may be reported; when it may, `suppressed` is how many were held back
   * since the last one reported.
   */
  take(): { ok: false } | { ok: true; suppressed: number } {
    const t = this.now();
    if (t - this.windowStart >= this.windowMs) {
      this.windowStart = t;
      this.inWindow = 0;
    }
    if (this.inWindow >= this.burst) {
      this.dropped++;
      return { ok: false };
    }
    this.inWindow++;
    const suppressed = this.dropped;
    this.dropped = 0;
    return { ok: true, suppressed };
  }
}
