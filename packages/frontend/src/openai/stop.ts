/**
 * Cuts a streamed text before the first occurrence of any stop sequence. Text that may be the
 * beginning of a stop sequence is held back until the next piece decides it, so no emitted text
 * ever contains (part of) a stop sequence that later completes.
 */
export class StopMatcher {
  private readonly stops: string[];
  private held = '';
  private stopped = false;

  constructor(stops: readonly string[]) {
    this.stops = stops.filter((s) => s.length > 0);
  }

  /** True once a stop sequence was found. */
  get done(): boolean {
    return this.stopped;
  }

  /** Takes the next piece; returns the text safe to emit now and whether a stop sequence ended the stream. */
  push(piece: string): { text: string; stopped: boolean } {
    if (this.stopped) return { text: '', stopped: true };
    if (this.stops.length === 0) return { text: piece, stopped: false };
    const buf = this.held + piece;
    const cut = this.firstMatch(buf);
    const keep = this.partialSuffix(buf);
    const pending = buf.length - keep;
    // A complete match cuts the stream unless a longer stop sequence that would start earlier
    // may still complete (stops "ac " and "c" on "ac" then " ": the answer is "", not "a"), so
    // the result never depends on how the text was split into pieces.
    if (cut >= 0 && (keep === 0 || pending >= cut)) {
      this.stopped = true;
      this.held = '';
      return { text: buf.slice(0, cut), stopped: true };
    }
    this.held = buf.slice(pending);
    return { text: buf.slice(0, pending), stopped: false };
  }

  /**
   * The text still held back when the stream ends: up to the first stop sequence in it (one that
   * was waiting for an earlier, longer candidate that did not complete), else all of it.
   */
  flush(): string {
    const rest = this.held;
    this.held = '';
    const cut = this.firstMatch(rest);
    if (cut < 0) return rest;
    this.stopped = true;
    return rest.slice(0, cut);
  }

  /** Index of the earliest complete stop sequence in `buf`, or -1. */
  private firstMatch(buf: string): number {
    let cut = -1;
    for (const s of this.stops) {
      const i = buf.indexOf(s);
      if (i >= 0 && (cut < 0 || i < cut)) cut = i;
    }
    return cut;
  }

  /** Length of the longest suffix of `buf` that is a proper prefix of a stop sequence. */
  private partialSuffix(buf: string): number {
    let best = 0;
    for (const s of this.stops) {
      for (let n = Math.min(s.length - 1, buf.length); n > best; n--) {
        if (buf.endsWith(s.slice(0, n))) {
          best = n;
          break;
        }
      }
    }
    return best;
  }
}
