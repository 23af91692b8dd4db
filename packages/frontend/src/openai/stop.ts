/** The longest stop sequence accepted (characters); the request schema refuses longer ones. */
export const MAX_STOP_LENGTH = 1024;

/** KMP failure table of `s`: `f[k]` is the longest proper border of `s.slice(0, k + 1)`. */
function failureTable(s: string): Int32Array {
  const f = new Int32Array(s.length);
  for (let i = 1, k = 0; i < s.length; i++) {
    while (k > 0 && s.charCodeAt(i) !== s.charCodeAt(k)) k = f[k - 1]!;
    if (s.charCodeAt(i) === s.charCodeAt(k)) k++;
    f[i] = k;
  }
  return f;
}

/**
 * Cuts a streamed text before the first occurrence of any stop sequence. Text that may be the
 * beginning of a stop sequence is held back until the next piece decides it, so no emitted text
 * ever contains (part of) a stop sequence that later completes.
 *
 * Each stop sequence is followed by a KMP automaton over the whole stream, so every character
 * costs O(number of stop sequences) however the text is split and however long the sequences
 * (rescanning the held text with `indexOf` / `endsWith` on each piece was quadratic in them).
 */
export class StopMatcher {
  private readonly stops: string[];
  private readonly fail: Int32Array[];
  /** Per stop sequence: length of its longest prefix that is a suffix of the text so far. */
  private readonly state: number[];
  private held = '';
  /** Stream offset of `held[0]`. */
  private heldAt = 0;
  /** Characters consumed. */
  private pos = 0;
  /** Stream offset where the earliest complete stop sequence seen starts (-1: none yet). */
  private cut = -1;
  private stopped = false;

  constructor(stops: readonly string[]) {
    this.stops = stops.filter((s) => s.length > 0);
    this.fail = this.stops.map(failureTable);
    this.state = this.stops.map(() => 0);
  }

  /** True once a stop sequence was found. */
  get done(): boolean {
    return this.stopped;
  }

  /** Takes the next piece; returns the text safe to emit now and whether a stop sequence ended the stream. */
  push(piece: string): { text: string; stopped: boolean } {
    if (this.stopped) return { text: '', stopped: true };
    if (this.stops.length === 0) return { text: piece, stopped: false };
    let keep = 0;
    for (let i = 0; i < this.stops.length; i++) {
      const s = this.stops[i]!;
      const f = this.fail[i]!;
      let k = this.state[i]!;
      for (let j = 0; j < piece.length; j++) {
        const c = piece.charCodeAt(j);
        while (k > 0 && s.charCodeAt(k) !== c) k = f[k - 1]!;
        if (s.charCodeAt(k) === c) k++;
        if (k === s.length) {
          const start = this.pos + j + 1 - k;
          if (this.cut < 0 || start < this.cut) this.cut = start;
          k = f[k - 1]!;
        }
      }
      this.state[i] = k;
      if (k > keep) keep = k;
    }
    this.pos += piece.length;
    const buf = this.held + piece;
    const pending = this.pos - keep;
    // A complete match cuts the stream unless a longer stop sequence that would start earlier
    // may still complete (stops "ac " and "c" on "ac" then " ": the answer is "", not "a"), so
    // the result never depends on how the text was split into pieces.
    if (this.cut >= 0 && (keep === 0 || pending >= this.cut)) {
      this.stopped = true;
      this.held = '';
      return { text: buf.slice(0, this.cut - this.heldAt), stopped: true };
    }
    const text = buf.slice(0, pending - this.heldAt);
    this.held = buf.slice(pending - this.heldAt);
    this.heldAt = pending;
    return { text, stopped: false };
  }

  /**
   * The text still held back when the stream ends: up to the first stop sequence in it (one that
   * was waiting for an earlier, longer candidate that did not complete), else all of it.
   */
  flush(): string {
    if (this.stopped) return '';
    const rest = this.held;
    const at = this.heldAt;
    this.held = '';
    this.heldAt = this.pos;
    if (this.cut < 0) return rest;
    this.stopped = true;
    return rest.slice(0, this.cut - at);
  }
}
