import { decode, encode } from 'gpt-tokenizer/encoding/cl100k_base';

/** Token ids of `text` (cl100k_base BPE, the tokenizer of GPT-4-era models). */
export function tokenize(text: string): number[] {
  return encode(text);
}

/** Text of `tokens`. */
export function detokenize(tokens: readonly number[]): string {
  return decode(tokens);
}

/**
 * Turns a stream of token ids into text pieces. A token may end in the middle of a multi-byte
 * character; such a tail is held back until the next token completes it, so the pieces always
 * concatenate to exactly the decoded text of all tokens.
 */
export class IncrementalDetokenizer {
  private pending: number[] = [];

  /** Adds one token; returns the text it completes ('' when it ends mid-character). */
  push(token: number): string {
    this.pending.push(token);
    const text = decode(this.pending);
    if (text.endsWith('\uFFFD') && this.pending.length < 8) return '';
    this.pending = [];
    return text;
  }

  /** Whatever is still held back (at stream end). */
  flush(): string {
    if (this.pending.length === 0) return '';
    const text = decode(this.pending);
    this.pending = [];
    return text;
  }
}
